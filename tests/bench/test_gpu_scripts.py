"""The GPU session's scripts run here in their CPU mode, so that a lent GPU's few minutes are
not spent on a script's own bugs (bench/gpu_session.sh --cpu runs them all; these are quick)."""

import os
import subprocess
import sys

import pytest
from helpers.bench import ROOT


def run(*args):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("check", ["parity", "launch-each", "large", "kernels"])
def test_cuda_checks_in_cpu_mode(check):
    result = run(sys.executable, "bench/cuda_checks.py", check, "--device", "cpu")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"cuda_checks {check}: 0 failed" in result.stdout
    assert "FAILED" not in result.stdout


def test_cuda_checks_parity_covers_the_shape_list():
    result = run(sys.executable, "bench/cuda_checks.py", "parity", "--device", "cpu")
    with open(os.path.join(ROOT, "tests", "kernel_shapes.txt")) as f:
        cases = [line for line in f if line.strip() and not line.startswith("#")]
    # per case: 4 dtypes x 2 ops x (CPU op, official formula, 5 other windows against the CPU op)
    assert result.stdout.count("ok ") == len(cases) * 4 * 2 * (2 + 5)


def test_gpu_session_script_parses():
    assert run("bash", "-n", "bench/gpu_session.sh").returncode == 0
