"""The CUDA kernels checked on a GPU, step by step for bench/gpu_session.sh.

    python bench/cuda_checks.py parity        # every instance, bitwise vs the rule, the official formula, the CPU op
    python bench/cuda_checks.py launch-each   # each instance once, small (for compute-sanitizer)
    python bench/cuda_checks.py large         # > 2^31 elements (64-bit indices): first and last rows
    python bench/cuda_checks.py kernels       # kernel launches per call, from the profiler
    python bench/cuda_checks.py slowest bench/out/*.json   # run the case slowest against clone (for ncu)
    python bench/cuda_checks.py memory        # each memory-model case once (for ncu's sector counts)

The cases are tests/kernel_shapes.txt's, the list the host test of the kernel bodies runs
(tests/cpp/test_cuda_bodies.cpp): between them they steer the launcher to every pack width and
the element path, NCHW and channels_last. Every result is compared only with what it is not: the
pure-PyTorch rule, the official formula and, for a GPU's result, the CPU op. `--device cpu` runs
the same code on the CPU, to try the script on a machine without a GPU. Exits 1 when a check
fails.
"""

import argparse
import json
import math
import os
import sys

import torch

import npr_cuda
from npr_cuda.reference import npr_reference
from npr_cuda.testing import bit_differences, official_expected, official_gradient, window_gradient, with_special_values

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SHAPES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kernel_shapes.txt")


def read_kernel_cases(path=SHAPES_FILE):
    """tests/kernel_shapes.txt: its shapes, (shape NCHW, channels_last, offset), and its windows
    besides the default, ((rows, columns), (anchor row, anchor column))."""
    return read_kernel_lists(path)[:2]


def read_kernel_lists(path=SHAPES_FILE):
    """All four lists of tests/kernel_shapes.txt: the shapes and windows every instance is checked
    on, and the memory model's shapes ("model" lines) and windows ("model-window" lines)."""
    lists = {"": [], "window": [], "model": [], "model-window": []}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split()
            kind = fields.pop(0) if fields[0] in lists else ""
            if kind.endswith("window"):
                rows, cols, row, col = (int(v) for v in fields)
                lists[kind].append(((rows, cols), (row, col)))
            else:
                n, c, h, w, layout, offset = fields
                lists[kind].append(((int(n), int(c), int(h), int(w)), layout == "nhwc", int(offset)))
    return lists[""], lists["window"], lists["model"], lists["model-window"]


def make_input(shape, channels_last, offset, dtype, device, gen):
    """Random values with NaN, +-Inf and -0 sprinkled in, `offset` elements into the storage."""
    numel = math.prod(shape)
    values = with_special_values(torch.randn(numel, generator=gen, dtype=torch.float64), gen)
    storage = torch.empty(numel + offset, dtype=dtype, device=device)
    flat = storage[offset:]
    flat.copy_(values)
    n, c, h, w = shape
    return flat.view(n, h, w, c).permute(0, 3, 1, 2) if channels_last else flat.view(shape)


def same_bits(actual, expected):
    """(number of elements that differ bit for bit, of those how many only in a zero's sign)."""
    differ, zero_sign, _ = bit_differences(actual, expected)
    return differ, zero_sign


class Report:
    def __init__(self):
        self.failures = 0

    def check(self, ok, what):
        print(("ok      " if ok else "FAILED  ") + what, flush=True)
        self.failures += not ok


def references(op, x, window, anchor, on_gpu):
    """(name, expected, zero signs may differ) for op(x, window, anchor): each reference the
    result is not itself. The pure-PyTorch rule (npr_reference, window_gradient) always; the
    official formula for the default window; the CPU op where x is on a GPU."""
    x_cpu = x.cpu()
    default = tuple(window) == (2, 2) and tuple(anchor) == (0, 0)
    found = []
    if op is npr_cuda.npr:
        found.append(("the pure-PyTorch rule", npr_reference(x_cpu, window, anchor), False))
        if default:
            found.append(("the official formula's values", official_expected(x_cpu), False))
    else:
        found.append(("the rule spelled out", window_gradient(x_cpu.contiguous(), window, anchor), False))
        if default:
            found.append(("the official formula's autograd", official_gradient(torch.zeros_like(x_cpu), x_cpu), True))
    if on_gpu:
        found.append(("the CPU op", op(x_cpu, window, anchor), False))
    return found


def parity(args, report, gen):
    """Every shape of tests/kernel_shapes.txt, every dtype, both ops, the default window and the
    file's others: bitwise against each of references(). launch-each: one launch of each,
    unchecked beyond the CPU op (for compute-sanitizer)."""
    on_gpu = args.device != "cpu"
    shapes, windows = read_kernel_cases()
    for shape, channels_last, offset in shapes:
        for dtype in DTYPES:
            x = make_input(shape, channels_last, offset, dtype, args.device, gen)
            name = f"{str(dtype)[6:]} {'x'.join(map(str, shape))} {'NHWC' if channels_last else 'NCHW'} +{offset}"
            for window, anchor in [((2, 2), (0, 0)), *windows]:
                for op in (npr_cuda.npr, npr_cuda.npr_backward):
                    out = op(x, window, anchor)
                    if args.launch_each_only:
                        continue
                    for what, expected, zero_sign_free in references(op, x, window, anchor, on_gpu):
                        differ, zero_sign = same_bits(out, expected)
                        ok = differ == (zero_sign if zero_sign_free else 0)
                        report.check(
                            ok,
                            f"{op.__name__} window {window} anchor {anchor} {name}: bitwise equal to {what} "
                            f"({differ} differ, {zero_sign} only in a zero's sign)",
                        )


def large(args, report, gen):
    """bfloat16, 2 x 32768 x 32770 = 2^31 + 131072 elements: the 64-bit index path, of the
    default window's kernels and of the window kernels (3 x 3 at (1, 2)); their first and last
    rows, in whole windows (the rule is local to a window row)."""
    shape = (1, 2, 32768, 32770) if args.device != "cpu" else (1, 2, 64, 66)
    x = torch.randn(shape, generator=gen).to(torch.bfloat16).to(args.device)
    on_gpu = args.device != "cpu"
    height = shape[2]
    print(f"{math.prod(shape)} elements ({'more' if math.prod(shape) > 2**31 else 'fewer'} than 2^31)")
    for window, anchor in (((2, 2), (0, 0)), ((3, 3), (1, 2))):
        rows = window[0]
        last_band = (height - 1) // rows * rows  # the first row of the last window row
        for op in (npr_cuda.npr, npr_cuda.npr_backward):
            out = op(x, window, anchor)
            for plane in (0, shape[1] - 1):
                for band in (slice(0, 2 * rows), slice(last_band - rows, height)):
                    got = out[0, plane, band]
                    for what, expected, zero_sign_free in references(op, x[0, plane, band], window, anchor, on_gpu):
                        differ, zero_sign = same_bits(got, expected)
                        report.check(
                            differ == (zero_sign if zero_sign_free else 0),
                            f"{op.__name__} window {window}: plane {plane}, rows {band.start}-{band.stop - 1} "
                            f"bitwise equal to {what}",
                        )
            del out


def kernels_per_call(args, report, gen):
    activity = torch.profiler.ProfilerActivity.CUDA if args.device != "cpu" else torch.profiler.ProfilerActivity.CPU
    for shape, channels_last, offset in read_kernel_cases()[0]:
        x = make_input(shape, channels_last, offset, torch.float32, args.device, gen)
        for op in (npr_cuda.npr, npr_cuda.npr_backward):
            op(x)
            with torch.profiler.profile(activities=[activity]) as prof:
                op(x)
                if args.device != "cpu":
                    torch.cuda.synchronize()
            if args.device != "cpu":
                launched = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
            else:
                launched = [e.name for e in prof.events() if e.name.startswith("npr_cuda::")]
            report.check(len(launched) == 1, f"{op.__name__} {shape} {'NHWC' if channels_last else 'NCHW'}: {launched}")


def slowest(args, report, gen):
    """Runs, a few times, the npr_cuda case of bench_npr.py's JSON reports that is slowest
    against clone: what ncu should look at."""
    worst = None
    for path in args.reports:
        with open(path) as f:
            report_json = json.load(f)
        for row in report_json["rows"]:
            if row["candidate"] == "npr_cuda" and (worst is None or row["x_clone"] > worst[0]["x_clone"]):
                worst = (
                    row,
                    report_json["layout"],
                    report_json.get("window", [2, 2]),
                    report_json.get("anchor", [0, 0]),
                )
    if worst is None:
        sys.exit("cuda_checks slowest: no npr_cuda rows in the reports")
    row, layout, window, anchor = worst
    print(
        f"slowest: {row['pass']} {row['dtype']} {row['shape']} {layout}, window {window} anchor {anchor}: "
        f"{row['x_clone']:.2f}x clone"
    )
    shape = tuple(int(n) for n in row["shape"].split("x"))
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(shape, device=args.device).to(getattr(torch, row["dtype"])).contiguous(memory_format=fmt)
    op = npr_cuda.npr if row["pass"] == "forward" else npr_cuda.npr_backward
    for _ in range(5):
        op(x, window, anchor)
    if args.device != "cpu":
        torch.cuda.synchronize()


def memory(args, report, gen):
    """Each memory-model case of tests/kernel_shapes.txt (the host model's cases, memory_model.h)
    run once, in the model's order: for Nsight Compute to count sectors and requests per kernel
    (bench/gpu_session.py's ncu_sectors step), beside the model's figures."""
    _, _, shapes, windows = read_kernel_lists()
    for shape, channels_last, offset in shapes:
        for window, anchor in [((2, 2), (0, 0)), *windows]:
            for op in (npr_cuda.npr, npr_cuda.npr_backward):
                for dtype in (torch.float32, torch.bfloat16):
                    x = make_input(shape, channels_last, offset, dtype, args.device, gen)
                    op(x, window, anchor)
                    layout = "NHWC" if channels_last else "NCHW"
                    name = f"{op.__name__} {str(dtype)[6:]} {'x'.join(map(str, shape))} {layout} +{offset}"
                    print(f"case {name} window {window} anchor {anchor}")
    if args.device != "cpu":
        torch.cuda.synchronize()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=["parity", "launch-each", "large", "kernels", "slowest", "memory"])
    parser.add_argument("reports", nargs="*", help="bench_npr.py JSON reports (slowest)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_intermixed_args(argv)
    args.launch_each_only = args.check == "launch-each"
    if args.device != "cpu" and not (torch.cuda.is_available() and npr_cuda.cuda_kernels_built()):
        sys.exit(f"cuda_checks: --device {args.device}: no GPU or no CUDA kernels ({npr_cuda.build_info()})")
    gen = torch.Generator().manual_seed(args.seed)
    report = Report()
    checks = {
        "parity": parity,
        "launch-each": parity,
        "large": large,
        "kernels": kernels_per_call,
        "slowest": slowest,
        "memory": memory,
    }
    checks[args.check](args, report, gen)
    print(f"cuda_checks {args.check}: {report.failures} failed")
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
