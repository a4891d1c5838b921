"""Everything a lent GPU should run, in one call, within a budget of seconds.

Device time is about 15 minutes for a whole task, the machine's start and any rerun included. The
steps run in priority order, each with its own time limit; a step whose limit no longer fits the
budget left is skipped. $OUT/summary.json, rewritten after every step (a run cut short still
leaves it), records each step's name, limit, status ("ok", "failed", "skipped" or "not on cpu"),
seconds and log; the logs and reports lie beside it.

    bash bench/gpu_session.sh [--budget 660]   # on the GPU machine: builds for its GPU first
    bash bench/gpu_session.sh --cpu            # the same steps on the CPU, tiny: tries the script

The steps, in order: the GPU and the build; every kernel instance bitwise against the rule, the
official formula and the CPU op, again with every launch on its 64-bit-index instance; every test
marked cuda, a skip counted as a failure; compute-sanitizer memcheck, initcheck, racecheck and
synccheck; more than 2^31 elements; one launch per call; the bandwidth tables against clone and
torch.compile; the detector end to end; ncu's global sectors and requests for the host memory
model's cases.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
DEFAULT_BUDGET_S = 660
# What ncu counts of each kernel's global loads and stores: 32-byte sectors and requests (warp
# instructions), as the host memory model counts them (tests/cpp/memory_model.h).
NCU_SECTORS = ",".join(
    f"l1tex__t_{what}_pipe_lsu_mem_global_op_{op}.sum" for op in ("ld", "st") for what in ("sectors", "requests")
)


class Session:
    """The steps' runner: time limits, the budget, the logs and the summary."""

    def __init__(self, out, budget_s, cpu):
        self.out, self.budget_s, self.cpu = out, budget_s, cpu
        self.start = time.monotonic()
        self.steps = []
        os.makedirs(out, exist_ok=True)

    def left_s(self):
        return self.budget_s - (time.monotonic() - self.start)

    def record(self, **step):
        self.steps.append(step)
        with open(os.path.join(self.out, "summary.json.tmp"), "w") as f:
            json.dump({"budget_s": self.budget_s, "cpu": self.cpu, "steps": self.steps}, f, indent=1)
        os.replace(os.path.join(self.out, "summary.json.tmp"), os.path.join(self.out, "summary.json"))
        line = f"== {step['name']}: {step['status']}"
        print(line + (f" ({step['seconds']:.0f} s)" if "seconds" in step else f": {step.get('why', '')}"), flush=True)

    def run(self, name, limit_s, command, gpu_only=False, when=True, why="", **extra):
        """Runs `command` (a list) with a time limit, its log in $OUT/<name>.log, unless it
        needs a GPU on --cpu, `when` is false (skipped, for `why`), or the budget is spent.
        Returns whether it passed."""
        if gpu_only and self.cpu:
            self.record(name=name, limit_s=limit_s, status="not on cpu", **extra)
            return False
        if not when or limit_s > self.left_s():
            why = why if not when else f"budget: {self.left_s():.0f} s left, the step may take {limit_s} s"
            self.record(name=name, limit_s=limit_s, status="skipped", why=why, **extra)
            return False
        log = os.path.join(self.out, f"{name}.log")
        began = time.monotonic()
        with open(log, "w") as f:
            try:
                rc = subprocess.run(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=limit_s).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        status = "ok" if rc == 0 else "failed"
        self.record(
            name=name, limit_s=limit_s, status=status, seconds=time.monotonic() - began, exit=rc, log=log, **extra
        )
        with open(log) as f:
            print("".join(f.readlines()[-8:]), end="", flush=True)
        return status == "ok"


def have(tool):
    return shutil.which(tool) is not None


def gpu_arch_list():
    """The visible GPU's architecture, as TORCH_CUDA_ARCH_LIST spells it ("9.0")."""
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True
    ).stdout
    caps = sorted({line.strip() for line in out.splitlines() if re.fullmatch(r"\d+\.\d+", line.strip())})
    return ";".join(caps) or "9.0"


def cuda_tests_selected():
    """How many tests `pytest -m cuda tests` selects."""
    out = subprocess.run(
        [PY, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"(\d+)(?:/\d+)? tests? (?:collected|selected)", out)
    return int(match.group(1)) if match else 0


def sizes(cpu):
    """Per mode: the device, the bench shapes, dtypes, seconds, and the detector's sizes."""
    if cpu:
        return dict(
            dev="cpu", big="1x3x64x64", small="1x3x32x32,1x3x31x31", dtypes="float32,bfloat16", seconds="0.02",
            batch="2", size="64", images="8", image_size="48", e2e_batch="4", workers="0",
        )  # fmt: skip
    return dict(
        dev="cuda", big="8x3x1024x1024,32x3x1024x1024", small="32x3x224x224,8x3x1023x1023",
        dtypes="float32,bfloat16", seconds="0.1", batch="64", size="224", images="512", image_size="256",
        e2e_batch="32", workers="8",
    )  # fmt: skip


def bench_steps(s, z):
    """The bandwidth tables: the default window against clone and torch.compile, and l = 3 and 8."""
    common = ["--devices", z["dev"], "--dtypes", z["dtypes"], "--seconds", z["seconds"], "--markdown"]
    tables = [  # (name, limit, options): torch.compile's compiles take most of the first two
        ("bench_default", 70, ["--shapes", f"{z['big']},{z['small']}"]),
        ("bench_default_cl", 50, ["--shapes", z["big"], "--channels-last"]),
        ("bench_window3", 30, ["--shapes", z["big"], "--window", "3", "--anchor", "1,2", "--no-compiled"]),
        ("bench_window8", 30, ["--shapes", z["big"], "--window", "8", "--anchor", "5,6", "--no-compiled"]),
    ]
    for name, limit_s, options in tables:
        json_path = os.path.join(s.out, f"{name}.json")
        s.run(name, limit_s, [PY, "bench/bench_npr.py", *common, *options, "--json", json_path])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="the same steps on the CPU, tiny")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for all steps (default 660)")
    args = parser.parse_args(argv)
    out = os.environ.get("OUT") or os.path.join(ROOT, "bench", "out", "gpu_session")
    s, z = Session(out, args.budget, args.cpu), sizes(args.cpu)
    dev = z["dev"]

    # 1. The GPU and the build for it.
    s.run("gpu", 15, ["nvidia-smi"], gpu_only=True)
    build_env = ["env", f"TORCH_CUDA_ARCH_LIST={gpu_arch_list() if not args.cpu else ''}", "MAX_JOBS=16"]
    s.run("build", 90, [*build_env, "NPR_BUILD_CUDA=1", PY, "-m", "pip", "install", "-q", "--no-build-isolation",
                         "--no-deps", "-e", "."], gpu_only=True)  # fmt: skip
    s.run("build_info", 20, [PY, "-c", "import npr_cuda; print(npr_cuda.build_info())"])
    s.run("sass", 20, [PY, "bench/sass_summary.py", "--markdown", "--check"], gpu_only=True, when=have("cuobjdump"),
          why="no cuobjdump")  # fmt: skip
    # 2-3. Correctness, then every test marked cuda.
    s.run("parity", 45, [PY, "bench/cuda_checks.py", "parity", "--device", dev])
    # The same with every launch on its 64-bit-index instance (NPR_CUDA_INDEX64, npr_cuda.cu).
    s.run("parity_index64", 45, ["env", "NPR_CUDA_INDEX64=1", PY, "bench/cuda_checks.py", "parity", "--device", dev])
    pytest = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"]
    s.run("pytest_cuda", 55, [*pytest, "--require-cuda"] if not args.cpu else pytest,
          tests_selected=cuda_tests_selected())  # fmt: skip
    # 4. Memory safety.
    sanitizer = have("compute-sanitizer")
    # racecheck and synccheck: the window kernels share a tile through shared memory, behind one
    # barrier, which the host run orders by construction and so cannot check.
    for tool, limit_s in (("memcheck", 35), ("initcheck", 35), ("racecheck", 30), ("synccheck", 30)):
        s.run(tool, limit_s, ["compute-sanitizer", "--tool", tool, "--error-exitcode", "1", PY, "bench/cuda_checks.py",
                              "launch-each"], gpu_only=True, when=sanitizer, why="no compute-sanitizer")  # fmt: skip
    # 5-6. Past 2^31 elements; one launch per call.
    s.run("large", 40, [PY, "bench/cuda_checks.py", "large", "--device", dev])
    s.run("kernels", 20, [PY, "bench/cuda_checks.py", "kernels", "--device", dev])
    # 7. Bandwidth.
    bench_steps(s, z)
    # 8. The detector end to end against the official paths.
    s.run("end_to_end", 30, [PY, "bench/bench_detector.py", "--end-to-end", "--device", dev, "--images", z["images"],
                             "--size", z["image_size"], "--batch-size", z["e2e_batch"], "--workers", z["workers"],
                             "--json", os.path.join(out, "end_to_end.json")])  # fmt: skip
    # 9. ncu: global sectors and requests of every memory-model case's kernel (any kernel of ours:
    # their names hold npr_cuda), beside the host model's figures (bench/memory_model.py).
    s.run("ncu", 30, ["ncu", "--csv", "--log-file", os.path.join(out, "ncu_sectors.csv"), "--metrics", NCU_SECTORS,
                      "--kernel-name-base", "demangled", "--kernel-name", "regex:npr_cuda", PY, "bench/cuda_checks.py",
                      "memory", "--device", dev],
          gpu_only=True, when=have("ncu"), why="no ncu")  # fmt: skip
    failed = [step["name"] for step in s.steps if step["status"] == "failed"]
    print(f"gpu_session: {len(s.steps)} steps, failed: {', '.join(failed) or 'none'}; {out}/summary.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
