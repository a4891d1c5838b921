"""What every benchmark's JSON records about the run: when, at which commit, with which torch and
npr_cuda build, by which command; and writing that JSON."""

import datetime
import json
import os
import subprocess
import sys

import torch

import npr_cuda


def git_commit() -> str:
    """The short commit of this checkout, with "+dirty" when tracked files are changed."""
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def write_report(path: str, script: str, argv, **fields) -> None:
    """Writes {date, commit, torch, npr_cuda_build, command, **fields} to `path` as JSON."""
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "torch": torch.__version__,
        "npr_cuda_build": npr_cuda.build_info(),
        "command": " ".join(["python", script, *(sys.argv[1:] if argv is None else argv)]),
        **fields,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {path}")
