"""Windows far larger than the image, up to int64's largest: both passes give the rule's result
bit for bit, for every dtype, in either axis and both, with anchors up to the window's last row
and column; nothing crashes and nothing is allocated by the window's size (the ops fit a window
to the image first, fit_window in csrc/npr_rule.h).

The cases run in one child process, so that a crash (a division by a size product that wraps to
0 once killed the process with SIGFPE) fails the cases it reached, not the whole suite. Run as a
script, this file is that child: one JSON line per case, then the peak memory it added."""

import json
import os
import resource
import signal
import subprocess
import sys

import pytest
import torch

SIZES = [2**31 - 1, 2**31, 2**32, 2**32 + 1, 10**6, 2**62, 2**63 - 1]
# (window, anchor) per size: rows only, columns only, both, the anchor at the window's last index
# or inside the image.
WINDOWS = [
    win
    for size in SIZES
    for win in (((size, 3), (size - 1, 1)), ((2, size), (1, 3)), ((size, size), (size - 1, size - 1)))
]
# (shape, channels_last): the shape that crashed, odd sizes, channels_last, rank 3.
SHAPES = [((1, 1, 2, 4), False), ((2, 3, 5, 6), True), ((3, 7, 9), False)]
DTYPES = ["float32", "float64", "float16", "bfloat16"]
# Cases whose scratch was once sized by the window: about 1 GB, and std::bad_alloc.
MEMORY_CASES = [("float16", (3, 64, 64), (10**6, 3), (5, 1)), ("float16", (5, 6), (2**40, 1), (7, 0))]
CHILD_TIMEOUT_S = 600


def case_ids():
    for dtype in DTYPES:
        for shape, channels_last in SHAPES:
            for window, anchor in WINDOWS:
                yield f"{dtype} {'x'.join(map(str, shape))}{' NHWC' if channels_last else ''} {window} {anchor}"


def run_child_cases(seed):
    """Every case, bitwise against npr_reference and window_gradient; one JSON line each."""
    from npr_cuda import npr, npr_backward
    from npr_cuda.reference import npr_reference
    from npr_cuda.testing import bit_differences, window_gradient, with_special_values

    gen = torch.Generator().manual_seed(seed)
    start_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ids = iter(case_ids())
    for dtype in DTYPES:
        for shape, channels_last in SHAPES:
            x = with_special_values(torch.randn(shape, generator=gen, dtype=torch.float64), gen)
            x = x.to(getattr(torch, dtype))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            for window, anchor in WINDOWS:
                forward = bit_differences(npr(x, window, anchor), npr_reference(x, window, anchor))[0]
                backward = bit_differences(npr_backward(x, window, anchor), window_gradient(x, window, anchor))[0]
                print(json.dumps({"case": next(ids), "forward": forward, "backward": backward}), flush=True)
    for dtype, shape, window, anchor in MEMORY_CASES:
        x = torch.randn(shape, generator=gen).to(getattr(torch, dtype))
        differ = bit_differences(npr_backward(x, window, anchor), window_gradient(x, window, anchor))[0]
        print(json.dumps({"case": f"memory {dtype} {shape} {window}", "backward": differ}), flush=True)
    added_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_kib
    print(json.dumps({"peak_added_mib": added_kib / 1024}), flush=True)


@pytest.fixture(scope="module")
def child_results():
    seed = int.from_bytes(os.urandom(4), "little")
    run = subprocess.run(
        [sys.executable, __file__, str(seed)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    results = {}
    for line in run.stdout.splitlines():
        record = json.loads(line)
        results[record.get("case", "peak")] = record
    how = signal.Signals(-run.returncode).name if run.returncode < 0 else f"status {run.returncode}"
    ended = f"the child process (seed {seed}) ended with {how}: {run.stderr[-1500:]}"
    return results, ended


@pytest.mark.parametrize("case", list(case_ids()))
def test_huge_window_gives_the_rule(child_results, case):
    results, ended = child_results
    assert case in results, f"no result: {ended}"
    assert results[case]["forward"] == 0 and results[case]["backward"] == 0, results[case]


def test_memory_is_sized_by_the_tensor_not_the_window(child_results):
    results, ended = child_results
    for dtype, shape, window, _ in MEMORY_CASES:
        case = f"memory {dtype} {shape} {window}"
        assert case in results and results[case]["backward"] == 0, results.get(case, ended)
    assert "peak" in results, ended
    assert results["peak"]["peak_added_mib"] < 64, results["peak"]


if __name__ == "__main__":
    run_child_cases(int(sys.argv[1]))
