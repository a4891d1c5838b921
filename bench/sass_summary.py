"""A per-kernel summary of the CUDA machine code in the built extension, readable without a GPU.

Runs ``cuobjdump -sass`` on npr_cuda._C for one architecture and counts, for every kernel
instance: instructions, CALLs (the 64-bit division routine shows up as one), local-memory
accesses (LDL/STL: spills), 128-bit global loads and stores, and the other global accesses.

    python bench/sass_summary.py [--arch sm_90] [--markdown] [--check]

``--check`` exits 1 when any instance has a CALL or local memory. cuobjdump comes from the
CUDA toolkit or, where it lacks it, from ``pip install nvidia-cuda-cuobjdump
nvidia-cuda-nvdisasm`` (found in that wheel's folder).
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

import npr_cuda._C


def find_tool(name: str) -> str:
    """`name` on PATH, else in the nvidia wheels' bin folders."""
    found = shutil.which(name)
    if found:
        return found
    import nvidia

    for root in nvidia.__path__:
        for candidate in glob.glob(os.path.join(root, "*", "bin", name)):
            return candidate
    sys.exit(f"sass_summary: {name} not found (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def short_name(demangled: str) -> str:
    """`kernel<Pass, T, ...>` without namespaces and argument lists."""
    name = demangled.removeprefix("void ").replace("(anonymous namespace)::", "")
    name = re.sub(r"\([^()]*\)$", "", name)  # the argument list
    name = re.sub(r"npr_cuda::(cuda::)?", "", name)
    name = name.replace("(Pass)0", "forward").replace("(Pass)1", "backward")
    name = name.replace("Pass::kForward", "forward").replace("Pass::kBackward", "backward")
    name = re.sub(r"c10::(BFloat16|Half)", r"\1", name)
    return re.sub(r"\(Access\)(\d)", lambda m: ["pack", "scalar"][int(m.group(1))], name)


def summarise(sass: str):
    """{mangled kernel name: Counter of the instruction classes}."""
    kernels, current = {}, None
    for line in sass.splitlines():
        match = re.search(r"Function : (\S+)", line)
        if match:
            current = kernels.setdefault(match.group(1), Counter())
            continue
        match = re.search(r"/\*[0-9a-f]{4}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
        if current is None or not match:
            continue
        op = match.group(1)
        current["instructions"] += 1
        base = op.split(".")[0]
        if base == "CALL":
            current["CALL"] += 1
        elif base in ("LDL", "STL"):
            current["local"] += 1
        elif base == "LDG":
            current["LDG.128" if ".128" in op else "LDG other"] += 1
        elif base == "STG":
            current["STG.128" if ".128" in op else "STG other"] += 1
    return kernels


COLUMNS = ["instructions", "CALL", "local", "LDG.128", "LDG other", "STG.128", "STG other"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 if any instance has a CALL or local memory")
    args = parser.parse_args(argv)
    cuobjdump = find_tool("cuobjdump")
    env = {**os.environ, "PATH": os.path.dirname(find_tool("nvdisasm")) + os.pathsep + os.environ.get("PATH", "")}
    sass = subprocess.run(
        [cuobjdump, "-sass", "-arch", args.arch, npr_cuda._C.__file__], capture_output=True, text=True, env=env
    )
    if sass.returncode != 0 or "Function :" not in sass.stdout:
        sys.exit(f"sass_summary: no {args.arch} code in {npr_cuda._C.__file__}: {sass.stderr.strip()}")
    kernels = summarise(sass.stdout)
    names = [short_name(n) for n in demangle(list(kernels))]
    rows = sorted(zip(names, kernels.values()))
    width = max(len(name) for name, _ in rows)
    if args.markdown:
        print("| kernel | " + " | ".join(COLUMNS) + " |")
        print("| --- |" + " ---: |" * len(COLUMNS))
        for name, counts in rows:
            print(f"| `{name}` | " + " | ".join(str(counts[c]) for c in COLUMNS) + " |")
    else:
        print(f"{'kernel':{width}} " + " ".join(f"{c:>12}" for c in COLUMNS))
        for name, counts in rows:
            print(f"{name:{width}} " + " ".join(f"{counts[c]:12d}" for c in COLUMNS))
    print(f"{len(rows)} kernel instances, {args.arch}")
    bad = [name for name, counts in rows if counts["CALL"] or counts["local"]]
    if args.check and bad:
        sys.exit(f"sass_summary: {len(bad)} instances with a CALL or local memory: {', '.join(bad)}")


if __name__ == "__main__":
    main()
