"""Running one of bench/'s scripts in a fresh process and reading the JSON report it writes."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bench_report(script, args, tmp_path):
    """Runs `python bench/<script> *args --json <file>` from the repository root; it must succeed.
    Returns the report it wrote."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, os.path.join("bench", script), *args, "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with open(report) as f:
        return json.load(f)
