"""bench_npr.py on tiny inputs: which input each timed call reads (the next copy every call, or
one copy with --warm), its report's rows, and what a newcomer's --quick run prints and needs."""

import os
import subprocess
import sys

import torch
from helpers.bench import ROOT, bench_report

sys.path.insert(0, os.path.join(ROOT, "bench"))

import bench_npr  # noqa: E402


def inputs_read(monkeypatch, warm):
    """The storage of the input (x or g) that each timed call of one case reads, in call order."""
    read = []

    def measure(self, fn, arg):
        tensor = arg[2] if isinstance(arg, tuple) else arg  # autograd candidates: (out, leaf, g)
        read.append(tensor.data_ptr())
        fn(arg)
        return 1e-3

    monkeypatch.setattr(bench_npr.Clock, "measure", measure)
    ops = bench_npr.Ops((3, 3), (1, 2), compiled=False)
    timings, moved = bench_npr.bench_case("cpu", torch.float32, (1, 2, 6, 7), False, 0.02, ops, warm=warm)
    assert moved == 2 * 2 * 6 * 7 * 4
    assert {pass_name for pass_name, _ in timings} == {"forward", "backward"}
    return read


def test_every_call_reads_another_copy(monkeypatch):
    read = inputs_read(monkeypatch, warm=False)
    assert len(read) > 20
    assert all(a != b for a, b in zip(read, read[1:]))


def test_warm_reads_one_input(monkeypatch):
    read = inputs_read(monkeypatch, warm=True)
    assert len(set(read)) == 2  # x for the forward, g for the backward


def test_cache_sizes_as_sysfs_writes_them():
    assert bench_npr.cache_size_bytes("48K\n") == 48 << 10
    assert bench_npr.cache_size_bytes("491520K") == 480 << 20
    assert bench_npr.cache_size_bytes("32M") == 32 << 20


def test_cpu_inputs_rotate_past_twice_the_last_level_cache(monkeypatch):
    monkeypatch.setattr(bench_npr, "last_level_cache_bytes", lambda: 480 << 20)
    assert bench_npr.rotation_bytes("cpu") == 960 << 20
    assert bench_npr.rotation_bytes("cuda") == bench_npr.MIN_ROTATION_BYTES
    assert bench_npr.rotation_bytes("cpu", quick=True) == bench_npr.QUICK_CPU_ROTATION_BYTES  # peak memory first
    monkeypatch.setattr(bench_npr, "last_level_cache_bytes", lambda: 0)  # sysfs says nothing
    assert bench_npr.rotation_bytes("cpu") == bench_npr.MIN_ROTATION_BYTES
    assert bench_npr.rotation_bytes("cpu", quick=True) == bench_npr.QUICK_CPU_ROTATION_BYTES


def test_report_rows(tmp_path):
    args = ["--devices", "cpu", "--dtypes", "bfloat16", "--shapes", "2x3x10x9", "--window", "4", "--anchor", "1,3"]
    record = bench_report("bench_npr.py", [*args, "--seconds", "0.01", "--no-compiled", "--no-eager"], tmp_path)
    assert record["inputs"] == "rotated"
    assert record["rotation_mib"]["cpu"] >= bench_npr.MIN_ROTATION_BYTES >> 20
    assert record["window"] == [4, 4] and record["anchor"] == [1, 3]
    candidates = {(row["pass"], row["candidate"]) for row in record["rows"]}
    assert candidates == {
        ("forward", "clone"),
        ("forward", "npr_cuda"),
        ("backward", "clone"),
        ("backward", "npr_cuda"),
        ("backward", "npr_cuda+autograd"),
    }
    assert all(row["median_ms"] > 0 for row in record["rows"])


def test_a_visible_gpu_without_cuda_kernels_leaves_its_rows_out(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench_npr.npr_cuda, "cuda_kernels_built", lambda: False)
    assert bench_npr.default_devices() == ["cpu"]
    assert "no CUDA kernels: CUDA rows skipped" in capsys.readouterr().err
    monkeypatch.setattr(bench_npr.npr_cuda, "cuda_kernels_built", lambda: True)
    assert bench_npr.default_devices() == ["cpu", "cuda"]


def test_main_honours_its_argv(monkeypatch, capsys):
    monkeypatch.setenv("GLIBC_TUNABLES", bench_npr.GLIBC_KEEP_FREED_MEMORY)  # no re-exec
    args = ["--devices", "cpu", "--dtypes", "float32", "--shapes", "1x2x6x8", "--seconds", "0.01", "--no-compiled"]
    bench_npr.main(args)
    out = capsys.readouterr().out
    assert "cpu float32 1x2x6x8: npr_cuda " in out and "faster than eager" in out
    assert "32x3x224x224" not in out  # the argv given, not the process's


BLOCK_DETECTOR_EXTRAS = """
import resource, runpy, sys
for name in ("tqdm", "torchvision", "PIL", "sklearn", "skimage", "npr_cuda.detector", "npr_cuda.cli.common"):
    sys.modules[name] = None  # an op-only install has none of them
sys.path.insert(0, "bench")  # as running the script puts its folder first
sys.argv = ["bench/bench_npr.py", "--quick"]
runpy.run_path("bench/bench_npr.py", run_name="__main__")
print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_quick_run_for_a_newcomer_op_only_and_under_2_gb():
    """--quick as the README's first command runs it, with the detector's extras blocked: the
    header names the machine and the build, a legend explains the columns, a verdict closes each
    case, and the process peaks under 2 GB."""
    env = {**os.environ, "GLIBC_TUNABLES": bench_npr.GLIBC_KEEP_FREED_MEMORY}  # as after its re-exec
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_DETECTOR_EXTRAS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("CPU: ") and "threads; npr_cuda CPU kernels: " in lines[0]
    assert any(line.startswith("torch ") and "CUDA kernels built: " in line for line in lines)
    assert any(line.startswith("Legend: ") for line in lines)
    cache = bench_npr.last_level_cache_bytes()
    assert any(line.startswith("Note: the CPU inputs cycle over 64 MiB") for line in lines) == (cache > 32 << 20)
    verdicts = [line for line in lines if ": npr_cuda " in line and "x clone forward" in line]
    assert len(verdicts) == 4  # float32 and bfloat16 at two shapes
    peak_kib = int(lines[-1].removeprefix("peak_kib "))
    assert peak_kib < 2 << 20, f"peak {peak_kib >> 10} MiB"
