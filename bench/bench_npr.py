"""Microbenchmark of the NPR op against its memory floor and its peers.

For each device present (CPU always, CUDA when a GPU is visible), shape and dtype, it times the
forward and the backward of:

    clone      x.clone() (forward) / g.clone() (backward): the same bytes moved, the floor
    npr_cuda   npr_cuda.npr(x) / npr_cuda.npr_backward(g): the fused kernels
    +autograd  the backward as training runs it: torch.autograd.grad through npr_cuda.npr
    eager      the official formula, its backward through autograd (for another --window or
               --anchor: the author's padding formula, npr_cuda.reference.author_padding_npr)
    compiled   torch.compile of the same formula, its backward through autograd

Candidates are interleaved round by round; every call reads the next of enough copies of the
inputs that none is still in cache when its turn comes again (256 MiB of them, or on CPU twice
the last-level cache where that is larger; with --quick on CPU, 64 MiB, which keeps its peak
memory under 2 GB, with a note in the header where twice the last-level cache is larger, as
inputs may then be partly in cache; `--warm`: one input, read by every call, so that it stays in
cache where it fits); CUDA is timed with events. It prints the machine and the build, a legend, the table
(medians, the effective bandwidth of clone and npr_cuda, the ratio to clone, the speedups of
npr_cuda over eager and compiled), and a verdict per case. `--json` writes the same with the
machine's details. Needs only torch and npr_cuda (an op-only install).

    python bench/bench_npr.py --quick            # about a minute on a 2-core CPU
    python bench/bench_npr.py --json bench/out/cpu.json
    python bench/bench_npr.py --window 4 --anchor 1,3 --shapes 32x3x224x224
"""

import argparse
import functools
import glob
import math
import os
import platform
import statistics
import sys
import time

import torch
from run_record import write_report

import npr_cuda
from npr_cuda.cli.argument_types import int_pair
from npr_cuda.reference import author_padding_npr, official_npr

SHAPES = [(1, 3, 224, 224), (32, 3, 224, 224), (128, 3, 256, 256), (8, 3, 1024, 1024)]
QUICK_SHAPES = [(1, 3, 224, 224), (32, 3, 224, 224)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Inputs cycled over the calls: at least this much, past any GPU's L2 and most CPUs' last-level
# cache; on CPU at least twice that cache (rotation_bytes).
MIN_ROTATION_BYTES = 256 << 20
# --quick on CPU, whatever the last-level cache: the run's peak memory grows with the rotation
# (bench/RESULTS.md, "--quick's memory"), so a quick run keeps to this and says so where the
# cache is larger.
QUICK_CPU_ROTATION_BYTES = 64 << 20
# glibc returns large freed blocks to the OS and maps fresh (zero-filled, faulting) pages for the
# next: every candidate's output allocation would then time the kernel's page faults as much as
# its memory traffic, and unevenly. Keeping freed memory for reuse times the traffic alone.
GLIBC_KEEP_FREED_MEMORY = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, fewer repeats: about a minute on 2 CPU cores")
    parser.add_argument("--devices", default=None, help="comma-separated, default: cpu and cuda if visible")
    parser.add_argument("--dtypes", default=None, help="default: float32,bfloat16 (and float16 on CUDA)")
    parser.add_argument("--shapes", default=None, help="e.g. 32x3x224x224,8x3x1024x1024")
    parser.add_argument("--channels-last", action="store_true", help="channels_last inputs instead of NCHW")
    parser.add_argument("--window", type=int_pair, default=(2, 2), metavar="L or LH,LW", help="NPR window (default 2)")
    parser.add_argument(
        "--anchor", type=int_pair, default=(0, 0), metavar="R,C", help="anchor in the window (default 0,0)"
    )
    parser.add_argument(
        "--no-compiled",
        action="store_true",
        help="leave out torch.compile of the official formula (compiles take time)",
    )
    parser.add_argument(
        "--no-eager",
        action="store_true",
        help="leave out the eager formula (its slow calls limit the rounds: many more without it)",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="time budget per candidate and case (default 0.4, quick 0.1)"
    )
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--markdown", action="store_true", help="also print a condensed Markdown table (as in RESULTS.md)"
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="time every call on the same input, in cache where it fits, instead of rotating cold copies",
    )
    parser.add_argument(
        "--system-allocator",
        action="store_true",
        help="keep glibc's default of unmapping freed large blocks (timings then include page faults)",
    )
    return parser.parse_args(argv)


def device_details(device):
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return {
            "name": props.name,
            "multiprocessors": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1),
        }
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"name": name, "threads": torch.get_num_threads()}


def cache_size_bytes(text) -> int:
    """A cache size as Linux's sysfs writes it ("48K", "2048K", "32M")."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip()
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def last_level_cache_bytes() -> int:
    """The largest of the first CPU's caches, from sysfs (0 where there is none to read)."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as f:
                sizes.append(cache_size_bytes(f.read()))
        except (OSError, ValueError):
            continue
    return max(sizes, default=0)


def rotation_bytes(device, quick: bool = False) -> int:
    """How many bytes of input copies the calls cycle over. On CPU, twice the last-level cache
    where that is past MIN_ROTATION_BYTES: a copy is read again only after the others have
    pushed it out (some hosts have 480 MiB of L3)."""
    if device != "cpu":
        return MIN_ROTATION_BYTES
    if quick:
        return QUICK_CPU_ROTATION_BYTES
    return max(MIN_ROTATION_BYTES, 2 * last_level_cache_bytes())


class Clock:
    """Times one call: host clock on CPU, a pair of CUDA events on the GPU."""

    def __init__(self, device):
        self.cuda = device == "cuda"

    def measure(self, fn, arg):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(arg)
            end.record()
            return (start, end)
        begin = time.perf_counter()
        fn(arg)
        return time.perf_counter() - begin

    def seconds(self, samples):
        if self.cuda:
            torch.cuda.synchronize()
            return [start.elapsed_time(end) / 1e3 for start, end in samples]
        return samples

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()


class Ops:
    """What is timed, for one window and anchor: npr_cuda's two ops, the peer formula (the
    official one for the default 2x2 window, else the author's padding formula, unless
    --no-eager) and its torch.compile (None with --no-compiled)."""

    def __init__(self, window, anchor, compiled: bool, eager: bool = True):
        self.default = window == (2, 2) and anchor == (0, 0)
        self.npr = functools.partial(npr_cuda.npr, window=window, anchor=anchor)
        self.npr_backward = functools.partial(npr_cuda.npr_backward, window=window, anchor=anchor)
        self.peer = (
            official_npr if self.default else functools.partial(author_padding_npr, window=window, anchor=anchor)
        )
        self.compiled_peer = torch.compile(self.peer, dynamic=False) if compiled else None
        self.eager = eager

    def peer_runs(self, shape) -> bool:
        """The official formula needs even H and W; the author's runs on any size."""
        return not self.default or (shape[-1] % 2 == 0 and shape[-2] % 2 == 0)


def candidates_for(pass_name, ops: Ops, shape):
    """name -> (prepare(x, g) -> argument, fn(argument)) for one pass; no "compiled" without a
    compiled peer, no "eager" with --no-eager, neither where the peer cannot run (odd H or W)."""

    def grad_through(op):
        def prepare(x, g):
            leaf = x.detach().requires_grad_(True)
            return (op(leaf), leaf, g)

        return prepare

    def run_backward(args):
        out, leaf, g = args
        return torch.autograd.grad(out, leaf, g, retain_graph=True)

    if pass_name == "forward":
        candidates = {
            "clone": (lambda x, g: x, torch.clone),
            "npr_cuda": (lambda x, g: x, ops.npr),
            "eager": (lambda x, g: x, ops.peer),
            "compiled": (lambda x, g: x, ops.compiled_peer),
        }
    else:
        candidates = {
            "clone": (lambda x, g: g, torch.clone),
            "npr_cuda": (lambda x, g: g, ops.npr_backward),
            "npr_cuda+autograd": (grad_through(ops.npr), run_backward),
            "eager": (grad_through(ops.peer), run_backward),
            "compiled": (grad_through(ops.compiled_peer), run_backward),
        }
    if ops.compiled_peer is None or not ops.peer_runs(shape):
        del candidates["compiled"]
    if not ops.eager or not ops.peer_runs(shape):
        del candidates["eager"]
    return candidates


def bench_case(device, dtype, shape, channels_last, seconds, ops: Ops, warm=False, rotation=None):
    """Median seconds per call for every candidate of both passes, on one input shape; the calls
    cycle over `rotation` bytes of inputs (default: rotation_bytes(device))."""
    clock = Clock(device)
    element_bytes = torch.empty((), dtype=dtype).element_size()
    tensor_bytes = math.prod(shape) * element_bytes
    rotation = rotation or rotation_bytes(device)
    copies = 1 if warm else max(2, min(512, math.ceil(rotation / tensor_bytes)))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    # Copies of one random tensor: the op's time does not depend on the values, and drawing every
    # copy anew took most of a case's time (about 11 of 12 s at 8x3x1024x1024 bfloat16 on CPU).
    x0 = torch.randn(shape, device=device).to(dtype).contiguous(memory_format=fmt)
    g0 = torch.randn(shape, device=device).to(dtype).contiguous(memory_format=fmt)
    xs = [x0] + [x0.clone() for _ in range(copies - 1)]
    gs = [g0] + [g0.clone() for _ in range(copies - 1)]
    results = {}
    for pass_name in ("forward", "backward"):
        candidates = candidates_for(pass_name, ops, shape)
        args = {name: [prepare(x, g) for x, g in zip(xs, gs)] for name, (prepare, _) in candidates.items()}
        fns = {name: fn for name, (_, fn) in candidates.items()}
        # Warm up (compiles, allocator pools) and estimate a call's time to size the rounds.
        estimate = {}
        for name, fn in fns.items():
            for arg in args[name][:3]:
                fn(arg)
            clock.sync()
            estimate[name] = statistics.median(clock.seconds([clock.measure(fn, arg) for arg in args[name][:3]]))
        rounds = int(min(1000, max(7, seconds / max(estimate.values()))))
        samples = {name: [] for name in fns}
        names = list(fns)
        for r in range(rounds):
            for k in range(len(names)):  # interleaved, a different candidate first each round
                name = names[(r + k) % len(names)]
                # The next copy at every call: sharing one within a round would time every
                # candidate but the first on an input that the one before had left in cache.
                call = r * len(names) + k
                samples[name].append(clock.measure(fns[name], args[name][call % copies]))
        for name in names:
            results[(pass_name, name)] = statistics.median(clock.seconds(samples[name]))
        del args
    return results, 2 * tensor_bytes


def make_rows(device, dtype_name, shape, timings, moved_bytes):
    """A row per (pass, candidate). A peer's speedup is against npr_cuda called the same way: in
    the backward, eager and compiled run through autograd, so against npr_cuda+autograd."""
    rows = []
    for (pass_name, name), t in timings.items():  # candidates in their order, forward first
        clone = timings[(pass_name, "clone")]
        ours = timings[(pass_name, "npr_cuda")]
        if name in ("eager", "compiled"):
            ours = timings.get((pass_name, "npr_cuda+autograd"), ours)
        rows.append(
            {
                "device": device,
                "dtype": dtype_name,
                "shape": "x".join(map(str, shape)),
                "pass": pass_name,
                "candidate": name,
                "median_ms": t * 1e3,
                # Effective bandwidth, one read and one write of the tensor: what clone and
                # npr_cuda move; the peers move more, so none is given for them.
                "gb_per_s": moved_bytes / t / 1e9 if name in ("clone", "npr_cuda") else None,
                "x_clone": t / clone,
                "npr_cuda_speedup": t / ours,
            }
        )
    return rows


LEGEND = (
    "median ms per call; GB/s: effective, one read and one write of the tensor (clone and npr_cuda only); "
    "x clone: time / clone's, 1.00 is the memory floor; faster by: the peer's time / npr_cuda's "
    "(backward: npr_cuda+autograd's, as the peers run through autograd)"
)


def print_table(rows, file=sys.stdout):
    header = (
        f"{'device':6} {'dtype':8} {'shape':15} {'pass':8} {'candidate':18} {'median ms':>10} {'GB/s':>8} "
        f"{'x clone':>8} {'npr_cuda faster by':>18}"
    )
    print(header, file=file)
    print("-" * len(header), file=file)
    for row in rows:
        speedup = "" if row["candidate"] in ("npr_cuda", "clone") else f"{row['npr_cuda_speedup']:.2f}x"
        bandwidth = "" if row["gb_per_s"] is None else f"{row['gb_per_s']:.2f}"
        print(
            f"{row['device']:6} {row['dtype']:8} {row['shape']:15} {row['pass']:8} {row['candidate']:18} "
            f"{row['median_ms']:10.4f} {bandwidth:>8} {row['x_clone']:8.2f} {speedup:>18}",
            file=file,
        )


def verdicts(rows):
    """One line per case: npr_cuda's ratio to clone in each pass, and how much faster it is than
    each peer that ran."""
    cases = {}
    for row in rows:
        cases.setdefault((row["device"], row["dtype"], row["shape"]), {})[(row["pass"], row["candidate"])] = row
    lines = []
    for (device, dtype, shape), c in cases.items():
        line = (
            f"{device} {dtype} {shape}: npr_cuda {c['forward', 'npr_cuda']['x_clone']:.2f}x clone forward, "
            f"{c['backward', 'npr_cuda']['x_clone']:.2f}x backward"
        )
        faster = [
            f"{c['forward', peer]['npr_cuda_speedup']:.1f}x / {c['backward', peer]['npr_cuda_speedup']:.1f}x "
            f"faster than {peer}"
            for peer in ("eager", "compiled")
            if ("forward", peer) in c and ("backward", peer) in c
        ]
        lines.append(line + ("; " + ", ".join(faster) + " (forward / backward)" if faster else ""))
    return lines


def run_header(devices):
    """Where the numbers come from: the devices, threads, torch, and what this build of npr_cuda has."""
    info = npr_cuda.build_info()
    cpu = device_details("cpu")
    lines = [f"CPU: {cpu['name']}, {cpu['threads']} threads; npr_cuda CPU kernels: {info['cpu_isa']}"]
    if "cuda" in devices:
        lines.append(f"GPU: {device_details('cuda')['name']}; CUDA kernels for {info['cuda_arch_list']}")
    lines.append(f"torch {torch.__version__}; CUDA kernels built: {'yes' if info['cuda'] else 'no'}")
    return lines


def peer(case, name) -> str:
    """A peer's median time and npr_cuda's speedup over it, or '-' where it was not run."""
    if name not in case:
        return "-"
    return f"{case[name]['median_ms']:.3f} ({case[name]['npr_cuda_speedup']:.2f}x)"


def markdown_table(rows) -> str:
    """One line per (device, dtype, shape, pass): clone's time, then npr_cuda's with its ratio to
    clone, and eager's and compiled's with npr_cuda's speedup over them."""
    by_case = {}
    for row in rows:
        by_case.setdefault((row["device"], row["dtype"], row["shape"], row["pass"]), {})[row["candidate"]] = row
    lines = [
        "| device | dtype | shape | pass | clone ms | npr_cuda ms (x clone) | eager ms (npr_cuda faster by) "
        "| compiled ms (npr_cuda faster by) |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for (device, dtype, shape, pass_name), c in by_case.items():
        lines.append(
            f"| {device} | {dtype} | {shape} | {pass_name} | {c['clone']['median_ms']:.3f} | "
            f"{c['npr_cuda']['median_ms']:.3f} ({c['npr_cuda']['x_clone']:.2f}x) | "
            f"{peer(c, 'eager')} | {peer(c, 'compiled')} |"
        )
    return "\n".join(lines)


def default_devices():
    """The CPU, and the GPU where one is visible and this build has the CUDA kernels; a visible GPU
    without them is said in one line, and its rows are left out."""
    if not torch.cuda.is_available():
        return ["cpu"]
    if not npr_cuda.cuda_kernels_built():
        print(
            "bench_npr: a GPU is visible, but this npr_cuda build has no CUDA kernels: CUDA rows skipped "
            "(rebuild with NPR_BUILD_CUDA=1 pip install --no-build-isolation -e .)",
            file=sys.stderr,
        )
        return ["cpu"]
    return ["cpu", "cuda"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if sys.platform == "linux" and not args.system_allocator and "GLIBC_TUNABLES" not in os.environ:
        command = [sys.executable, os.path.abspath(__file__), *argv]
        os.execve(sys.executable, command, {**os.environ, "GLIBC_TUNABLES": GLIBC_KEEP_FREED_MEMORY})
    devices = args.devices.split(",") if args.devices else default_devices()
    shapes = (
        [tuple(int(n) for n in s.split("x")) for s in args.shapes.split(",")]
        if args.shapes
        else (QUICK_SHAPES if args.quick else SHAPES)
    )
    seconds = args.seconds if args.seconds is not None else (0.1 if args.quick else 0.4)
    if "cuda" in devices and not (torch.cuda.is_available() and npr_cuda.cuda_kernels_built()):
        sys.exit("bench_npr: --devices cuda needs a visible GPU and a build with the CUDA kernels")
    # Every (shape, dtype) is a new specialisation of the compiled formula: allow them all.
    torch._dynamo.config.cache_size_limit = 256
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = 256
    ops = Ops(args.window, args.anchor, compiled=not args.no_compiled, eager=not args.no_eager)

    cases = []
    for device in devices:
        names = (
            args.dtypes.split(",")
            if args.dtypes
            else ["float32", "bfloat16"] + (["float16"] if device == "cuda" else [])
        )
        cases += [(device, name, shape) for name in names for shape in shapes]
    rotation = {device: rotation_bytes(device, args.quick) for device in devices}
    rows = []
    for i, (device, dtype_name, shape) in enumerate(cases):
        case = f"{device} {dtype_name} {'x'.join(map(str, shape))}"
        print(f"bench_npr: case {i + 1}/{len(cases)}: {case}", file=sys.stderr)
        timings, moved = bench_case(
            device, DTYPES[dtype_name], shape, args.channels_last, seconds, ops, args.warm, rotation[device]
        )
        rows += make_rows(device, dtype_name, shape, timings, moved)

    layout = "channels_last" if args.channels_last else "NCHW"
    inputs = "one input, warm" if args.warm else "rotated inputs"
    print("\n".join(run_header(devices)))
    print(f"window {args.window[0]}x{args.window[1]}, anchor {args.anchor}; {layout}; {inputs}")
    if "cpu" in rotation and not args.warm and rotation["cpu"] < 2 * last_level_cache_bytes():
        print(
            f"Note: the CPU inputs cycle over {rotation['cpu'] >> 20} MiB, less than twice the last-level cache "
            f"({last_level_cache_bytes() >> 20} MiB): some may be read from cache (run without --quick to avoid it)"
        )
    print(f"Legend: {LEGEND}")
    print_table(rows)
    print("\n".join(verdicts(rows)))
    if args.markdown:
        print(markdown_table(rows))
    if args.json:
        write_report(
            args.json,
            "bench/bench_npr.py",
            argv,
            layout="channels_last" if args.channels_last else "contiguous",
            window=list(args.window),
            anchor=list(args.anchor),
            inputs="warm" if args.warm else "rotated",
            rotation_mib={device: size >> 20 for device, size in rotation.items()},
            glibc_tunables=os.environ.get("GLIBC_TUNABLES", ""),
            devices={device: device_details(device) for device in devices},
            rows=rows,
        )


if __name__ == "__main__":
    main()
