"""npr-demo end to end, at a tiny size: several seeds, the summary and the per-seed rows."""

import json

from npr_cuda.cli import demo as demo_cli
from npr_cuda.detector.synthetic_fakes import FAMILIES, TEST_PHOTOS


def test_demo_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "demo.json"
    tiny = "--crops 2 --size 16 --epochs 1 --batch-size 8 --device cpu --seeds 2 --seed 5".split()
    demo_cli.main([*tiny, "--figure", str(tmp_path / "demo.png"), "--json", str(out)])
    table = capsys.readouterr().out
    assert "NPR detector (window 2x2, anchor (0, 0)) trained on transposed_conv up-sampling" in table
    assert "over 2 seed(s)" in table
    report = json.load(open(out))
    assert [run["seed"] for run in report["per_seed"]] == [5, 6]
    for run in report["per_seed"]:
        assert [r["family"] for r in run["rows"]] == FAMILIES
        assert [r["trained_on"] for r in run["rows"]] == [False, False, True, False]
        assert all(r["n"] == 2 * 2 * len(TEST_PHOTOS) for r in run["rows"])
    for index, row in enumerate(report["summary"]):
        values = [run["rows"][index]["acc"] for run in report["per_seed"]]
        assert row["acc"]["min"] == min(values) and row["acc"]["max"] == max(values)
        assert abs(row["acc"]["mean"] - sum(values) / 2) < 1e-12
        assert f"{row['family']:16} {100 * row['acc']['mean']:5.1f} [" in table
    assert (tmp_path / "demo.png").exists()
