"""bench_deploy.py on a tiny batch: every way to run the detector is timed, and each gives the
eager model's probabilities within 1e-5 (the guarantee its speed comes with)."""

import pytest
from helpers.bench import bench_report

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_every_candidate_is_timed_and_agrees_with_eager(tmp_path):
    record = bench_report("bench_deploy.py", ["--batch-size", "2", "--size", "32", "--repeats", "2"], tmp_path)
    rows = {row["candidate"]: row for row in record["rows"]}
    assert set(rows) == {"eager", "fast_detector", "fast_detector+compile", "onnxruntime", "pt2"}
    assert all(row["images_per_s"] > 0 for row in rows.values())
    assert rows["eager"]["vs_eager"] == 1.0 and rows["eager"]["max_abs_prob_diff"] == 0.0
    assert all(row["max_abs_prob_diff"] <= 1e-5 for row in rows.values())
