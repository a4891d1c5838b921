"""A per-kernel summary of the CUDA machine code in the built extension, readable without a GPU.

Runs ``cuobjdump -sass`` on npr_cuda._C for one architecture and counts, for every kernel
instance: instructions, CALLs (the 64-bit division routine shows up as one), local-memory
accesses (LDL/STL: spills), 128-bit global loads and stores, and the other global accesses.

    python bench/sass_summary.py [--arch sm_90] [--markdown] [--check]

``--check`` exits 1 when any instance has a CALL or local memory, or works on 16-byte packs with no
128-bit global load or store. cuobjdump comes from the
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


INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*)")


def kernel_listings(sass: str):
    """{mangled kernel name: [(address, opcode, operands)]}, from cuobjdump -sass."""
    kernels, current = {}, None
    for line in sass.splitlines():
        match = re.search(r"Function : (\S+)", line)
        if match:
            current = kernels.setdefault(match.group(1), [])
            continue
        match = INSTRUCTION.search(line)
        if current is not None and match:
            current.append((int(match.group(1), 16), match.group(2), match.group(3).strip()))
    return kernels


def calls_routines(listing) -> bool:
    """Whether the kernel's CALLs reach routines (the 64-bit division's, with spills around it):
    a routine returns (RET). sm_80 also writes CALL.REL.NOINC within a kernel's own code, with no
    routine and no RET, where threads of a warp leave a loop at different times."""
    return any(op.split(".")[0] == "RET" for _, op, _ in listing)


def summarise(sass: str):
    """{mangled kernel name: Counter of the instruction classes}."""
    kernels = {}
    for name, listing in kernel_listings(sass).items():
        counts = kernels[name] = Counter()
        routines = calls_routines(listing)
        for _, op, _ in listing:
            counts["instructions"] += 1
            base = op.split(".")[0]
            if base == "CALL" and routines:
                counts["CALL"] += 1
            elif base in ("LDL", "STL"):
                counts["local"] += 1
            elif base == "LDG":
                counts["LDG.128" if ".128" in op else "LDG other"] += 1
            elif base == "STG":
                counts["STG.128" if ".128" in op else "STG other"] += 1
    return kernels


COLUMNS = ["instructions", "CALL", "local", "LDG.128", "LDG other", "STG.128", "STG other"]
ELEMENT_BYTES = {"float": 4, "double": 8, "Half": 2, "BFloat16": 2}


def moves_16_byte_packs(name: str) -> bool:
    """Whether instance `name` (kernel<pass, T, index, V, ...>) works on 16-byte packs."""
    match = re.match(r"\w+<\w+, (\w+), [\w ]+, (\d+),", name)
    return bool(match) and ELEMENT_BYTES.get(match.group(1), 0) * int(match.group(2)) == 16


def problems(name: str, counts: Counter) -> list:
    """What --check refuses in an instance: a CALL, local memory, and for one on 16-byte packs,
    no 128-bit global load or store (the compiler split the pack)."""
    found = [what for what in ("CALL", "local") if counts[what]]
    if moves_16_byte_packs(name):
        found += [f"no {what}" for what in ("LDG.128", "STG.128") if not counts[what]]
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 on a CALL, local memory or a split 16-byte pack")
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
    bad = [f"{name} ({', '.join(problems(name, counts))})" for name, counts in rows if problems(name, counts)]
    if args.check and bad:
        sys.exit(f"sass_summary: {len(bad)} instances with a CALL, local memory or a split pack: {', '.join(bad)}")


if __name__ == "__main__":
    main()
