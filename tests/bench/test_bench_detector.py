"""The detector's benchmarks on tiny inputs: bench_detector.py's end-to-end mode runs both paths
over the same images, and the official evaluation path and npr-eval's agree (the guarantee its
speed-up comes with); bench_decode.py times both decoders, which give the same tensors."""

import subprocess
import sys

from helpers.bench import ROOT, bench_report


def test_end_to_end_mode_times_both_paths_and_they_agree(tmp_path):
    args = ["--end-to-end", "--device", "cpu", "--images", "12", "--size", "48", "--batch-size", "4", "--workers", "0"]
    record = bench_report("bench_detector.py", args, tmp_path)
    jobs = {(row["job"], row["path"]): row for row in record["rows"]}
    assert set(jobs) == {("eval", "official"), ("eval", "npr-eval"), ("train", "official"), ("train", "npr-train")}
    assert all(row["images_per_s"] > 0 and row["seconds"] > 0 for row in jobs.values())
    assert jobs["eval", "npr-eval"]["images"] == 12 and jobs["train", "npr-train"]["images"] == 12
    agreement = record["agreement"]
    assert agreement["same_images"] and agreement["max_abs_prob_diff"] <= 1e-5
    assert agreement["official"]["acc"] == agreement["npr-eval"]["acc"]
    assert abs(agreement["official"]["ap"] - agreement["npr-eval"]["ap"]) <= 1e-9


def test_decode_benchmark_times_both_decoders_and_they_agree():
    result = subprocess.run(
        [sys.executable, "bench/bench_decode.py", "--images", "4", "--size", "32", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "same tensors: True" in result.stdout
    assert "PIL" in result.stdout and "torchvision.io" in result.stdout
