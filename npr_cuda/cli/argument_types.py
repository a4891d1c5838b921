"""argparse types the tools share. Only the standard library: the op's benchmark, which an
op-only install (no detector extras) runs, uses them too."""

import argparse


def int_at_least(low: int):
    """An argparse type: an integer of at least `low`."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected at least {low}, got {text}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def int_pair(text):
    """An argparse type: N (meaning N,N) or A,B, non-negative integers."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected N or A,B (integers >= 0), got {text!r}")
    return values * 2 if len(values) == 1 else values
