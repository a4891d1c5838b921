"""A/B of two builds of npr_cuda: bench_npr.py in alternating processes, one build each.

On a shared machine one build's ratios drift between runs by more than many changes are worth
(bench/RESULTS.md); two builds timed in alternation, round by round and in both orders, drift
together. Every process runs this checkout's bench_npr.py, so both builds are timed by the same
code, with the build's checkout first on PYTHONPATH; the table gives, per case, each build's
median npr_cuda x clone over the rounds and every round's value. The other checkout needs its
extension built in place:

    git worktree add --detach /tmp/base <commit>
    (cd /tmp/base && python setup.py build_ext --inplace)  # or pip install --no-build-isolation -e .
    python bench/ab_builds.py /tmp/base --rounds 4 -- --devices cpu --dtypes bfloat16 \\
        --shapes 32x3x224x224 --window 3 --anchor 1,2 --no-compiled --no-eager --seconds 0.3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_NPR = os.path.join(ROOT, "bench", "bench_npr.py")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Arguments after -- go to bench/bench_npr.py."
    )
    parser.add_argument("other", help="a checkout of npr_cuda with its extension built in place")
    parser.add_argument("--rounds", type=int, default=3, help="bench_npr.py runs per build (default 3)")
    args, rest = parser.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not os.path.isdir(args.other):
        parser.error(f"{args.other} is not a folder")
    if os.path.realpath(args.other) == os.path.realpath(ROOT):
        parser.error(f"{args.other} is this checkout: name the other build's")
    return args, rest


def environment(checkout):
    """This process's environment with `checkout` first on PYTHONPATH."""
    path = [checkout] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def check_build(checkout):
    """Exits with a message unless `import npr_cuda` resolves inside `checkout` with it first on
    PYTHONPATH: a checkout without the package there would silently time the installed one."""
    script = "import os, npr_cuda; print(os.path.realpath(npr_cuda.__file__))"
    # -P: the current folder not first on sys.path, as for bench_npr.py (its own folder first).
    command = [sys.executable, "-P", "-c", script]
    result = subprocess.run(command, env=environment(checkout), capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        sys.exit(f"ab_builds: import npr_cuda from {checkout} failed: {lines[-1] if lines else result.returncode}")
    found = result.stdout.strip()
    if not found.startswith(os.path.realpath(checkout) + os.sep):
        sys.exit(f"ab_builds: npr_cuda imports from {found}, not from {checkout}: build it there in place")


def run_bench(checkout, bench_args):
    """One bench_npr.py run with `checkout`'s build: {(device, dtype, shape, pass): npr_cuda x clone}."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        command = [sys.executable, BENCH_NPR, *bench_args, "--json", report]
        result = subprocess.run(command, env=environment(checkout), capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"ab_builds: bench_npr.py failed with {checkout}'s build:\n{result.stderr[-2000:]}")
        with open(report) as f:
            rows = json.load(f)["rows"]
    return {
        (r["device"], r["dtype"], r["shape"], r["pass"]): r["x_clone"] for r in rows if r["candidate"] == "npr_cuda"
    }


def alternate(checkouts, rounds, run):
    """run(checkout) for both checkouts in every round, the order reversed every other round, so
    that neither build always runs first: {checkout: [run's result, round by round]}."""
    results = {checkout: [] for checkout in checkouts}
    for r in range(rounds):
        for checkout in checkouts if r % 2 == 0 else checkouts[::-1]:
            print(f"round {r + 1}/{rounds}: {checkout}", file=sys.stderr)
            results[checkout].append(run(checkout))
    return results


def markdown_table(results):
    """Per case, each checkout's median ratio over the rounds, then the rounds in order."""
    checkouts = list(results)
    header = "| device | dtype | shape | pass | " + " | ".join(f"{c}: median (rounds)" for c in checkouts) + " |"
    lines = [header, "| --- | --- | --- | --- | " + " | ".join("---:" for _ in checkouts) + " |"]
    for case in results[checkouts[0]][0]:
        cells = []
        for checkout in checkouts:
            ratios = [round_result[case] for round_result in results[checkout]]
            cells.append(f"{statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})")
        lines.append("| " + " | ".join(case) + " | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    args, bench_args = parse_args(argv)
    checkouts = [ROOT, os.path.abspath(args.other)]
    for checkout in checkouts:
        check_build(checkout)
    results = alternate(checkouts, args.rounds, lambda checkout: run_bench(checkout, bench_args))
    print(markdown_table(results))


if __name__ == "__main__":
    main()
