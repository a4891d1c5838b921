"""npr-demo end to end, at a tiny size."""

import json

from npr_cuda.cli import demo as demo_cli
from npr_cuda.detector.synthetic_fakes import FAMILIES, TEST_PHOTOS


def test_demo_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "demo.json"
    tiny = "--crops 2 --size 16 --epochs 1 --batch-size 8 --device cpu".split()
    demo_cli.main([*tiny, "--figure", str(tmp_path / "demo.png"), "--json", str(out)])
    table = capsys.readouterr().out
    assert "NPR detector trained on transposed_conv up-sampling" in table
    rows = json.load(open(out))["rows"]
    assert [r["family"] for r in rows] == FAMILIES and [r["trained_on"] for r in rows] == [False, False, True, False]
    assert all(r["n"] == 2 * 2 * len(TEST_PHOTOS) for r in rows)
    assert (tmp_path / "demo.png").exists()
