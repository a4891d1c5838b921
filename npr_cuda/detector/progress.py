"""Progress of long runs: a tqdm bar on a terminal, one line per stage anywhere else.

tqdm redraws its bar with a carriage return at every update; where the output goes to a file,
every redraw stays in it (``npr-demo > demo.log`` once wrote about 1,100 of them, 129 KB, into a
13-line log). So the bar is drawn only where stderr is a terminal; elsewhere a stage (an epoch,
a generator's images, a seed's training) prints one line when it ends: what it did, how long
it took, and the values the bar would have shown.
"""

import sys
import time

from tqdm import tqdm


def progress_bar(iterable=None, *, desc: str, unit: str, total=None, initial=0, disable=False, leave=True, stream=None):
    """A tqdm bar over `iterable` (or updated by hand) where `stream` (default stderr) is a
    terminal; otherwise a :class:`StageLine` with the same methods. `disable`: neither."""
    stream = sys.stderr if stream is None else stream
    if not disable and is_terminal(stream):
        return tqdm(iterable, desc=desc, unit=unit, total=total, initial=initial, leave=leave, file=stream)
    return StageLine(iterable, desc, unit, total, initial, stream=None if disable else stream)


def is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # not a file, or a closed one
        return False


class StageLine:
    """What the tools use of a tqdm bar (iterate, ``update``, ``set_postfix``, ``write``,
    ``close``, ``n``, ``total``), printing one line at ``close`` (at the end of the iteration, as tqdm closes):
    ``desc: n/total units in T s (rate units/s), key=value, ...``. Prints nothing without a stream."""

    def __init__(self, iterable, desc: str, unit: str, total=None, initial=0, stream=None):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:  # an iterable without a length
                total = None
        self.iterable, self.desc, self.unit, self.total, self.stream = iterable, desc, unit, total, stream
        self.n, self.initial = initial, initial
        self.postfix = {}
        self.start = time.perf_counter()
        self.closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def update(self, n=1):
        self.n += n

    def set_postfix(self, **values):
        self.postfix = values

    def write(self, text: str, file=None):
        """A message between the stage lines, as tqdm.write prints one above its bar."""
        print(text, file=file or self.stream or sys.stderr, flush=True)

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.stream is not None:
            print(self.line(time.perf_counter() - self.start), file=self.stream, flush=True)

    def line(self, seconds: float) -> str:
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        rate = (self.n - self.initial) / seconds if seconds > 0 else 0.0
        values = "".join(f", {key}={value}" for key, value in self.postfix.items())
        return f"{self.desc}: {done} {plural(self.unit, self.n)} in {seconds:.1f} s ({rate:.1f} {self.unit}/s){values}"


def plural(unit: str, count: int) -> str:
    if count == 1:
        return unit
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")
