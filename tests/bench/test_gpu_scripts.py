"""The GPU session's scripts run here in their CPU mode, so that a lent GPU's few minutes are
not spent on a script's own bugs (bench/gpu_session.sh --cpu runs them all; these are quick)."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from helpers.bench import ROOT


def run(*args):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("check", ["parity", "launch-each", "large", "kernels"])
def test_cuda_checks_in_cpu_mode(check):
    result = run(sys.executable, "bench/cuda_checks.py", check, "--device", "cpu")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"cuda_checks {check}: 0 failed" in result.stdout
    assert "FAILED" not in result.stdout
    assert "the CPU op" not in result.stdout  # on the CPU the CPU op is what is checked: no self-comparison


def test_cuda_checks_parity_covers_the_shape_list():
    result = run(sys.executable, "bench/cuda_checks.py", "parity", "--device", "cpu")
    with open(os.path.join(ROOT, "tests", "kernel_shapes.txt")) as f:
        # "model" lines: the memory model's cases, not parity's
        lines = [line for line in f if line.strip() and not line.startswith(("#", "model"))]
    windows = [line for line in lines if line.startswith("window ")]
    shapes = len(lines) - len(windows)
    assert shapes >= 20 and len(windows) >= 6
    # per shape on the CPU: 4 dtypes x 2 ops x (the rule and the official formula for the default
    # window, the rule for each of the file's others); no comparison with the CPU op, which it is
    assert result.stdout.count("ok ") == shapes * 4 * 2 * (2 + len(windows))


def gpu_session_cpu(out, *args):
    env = {**os.environ, "OUT": str(out)}
    result = subprocess.run(
        ["bash", "bench/gpu_session.sh", "--cpu", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    with open(out / "summary.json") as f:
        return result, json.load(f)["steps"]


def test_gpu_session_runs_every_step_in_cpu_mode(tmp_path):
    result, steps = gpu_session_cpu(tmp_path)
    by_name = {step["name"]: step for step in steps}
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert [step["name"] for step in steps if step["status"] == "failed"] == []
    assert sum(step["limit_s"] for step in steps) <= 720  # fits the device time with a rerun's start
    for name in ("gpu", "build", "memcheck", "initcheck", "ncu"):
        assert by_name[name]["status"] == "not on cpu"
    ran = ("build_info", "parity", "parity_index64", "pytest_cuda", "large", "kernels", "bench_default", "end_to_end")
    for name in ran:
        assert by_name[name]["status"] == "ok", name
    collected = run(
        sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"
    )
    selected = int(re.search(r"(\d+)(?:/\d+)? tests? (?:collected|selected)", collected.stdout).group(1))
    assert by_name["pytest_cuda"]["tests_selected"] == selected > 1000


def test_gpu_session_skips_what_the_budget_cannot_hold(tmp_path):
    _, steps = gpu_session_cpu(tmp_path, "--budget", "30")
    by_name = {step["name"]: step for step in steps}
    assert by_name["parity"]["status"] == "skipped" and "budget" in by_name["parity"]["why"]
    assert by_name["build_info"]["status"] == "ok"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure where no GPU is there")
def test_require_cuda_fails_the_tests_marked_cuda():
    result = run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-m", "cuda", "--require-cuda",
        "tests/test_npr_op.py",
    )  # fmt: skip
    assert result.returncode != 0 and "--require-cuda: no CUDA GPU visible" in result.stdout
