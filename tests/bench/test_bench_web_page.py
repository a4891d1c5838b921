"""bench_web_page.py on tiny images: the page is timed as a plain static server serves it (one
WASM thread), cross-origin isolated, where onnxruntime-web runs on threads and still answers, and
opened from its folder (file://)."""

import os

import pytest
from helpers.bench import bench_report
from helpers.browser import require_browser

pytest.importorskip("onnxscript")


def test_every_setting_is_timed_and_isolation_gives_threads(tmp_path):
    require_browser()
    args = ["--sizes", "32,48", "--images", "2", "--repeats", "1"]
    record = bench_report("bench_web_page.py", args, tmp_path)
    rows = {(row["setting"], row["size"]): row for row in record["rows"]}
    assert set(rows) == {(setting, size) for setting in ("plain", "isolated", "file") for size in (32, 48)}
    assert all(row["images_per_s"] > 0 and row["images"] == 2 for row in rows.values())
    assert rows["plain", 32]["threads"] == rows["file", 32]["threads"] == 1
    assert all(row["ready_s"] > 0 for row in rows.values())
    assert rows["isolated", 32]["threads"] == min(8, os.cpu_count())
    assert "HeadlessChrome" in record["device"]
