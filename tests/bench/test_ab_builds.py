"""ab_builds.py: its argument checks, the alternating order of the builds, the table, and one real
bench_npr.py run read back."""

import os
import sys

import pytest
from helpers.bench import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))

import ab_builds  # noqa: E402


def test_arguments_after_the_separator_go_to_bench_npr(tmp_path):
    args, rest = ab_builds.parse_args([str(tmp_path), "--rounds", "2", "--", "--window", "3", "--rounds", "5"])
    assert (args.other, args.rounds) == (str(tmp_path), 2)
    assert rest == ["--window", "3", "--rounds", "5"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["/nonexistent/checkout"], "is not a folder"),
        ([ROOT], "is this checkout"),
        ([ROOT, "--rounds", "0"], "at least 1"),
    ],
)
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        ab_builds.parse_args(argv)
    assert message in capsys.readouterr().err


def test_the_order_alternates_round_by_round():
    calls = []
    results = ab_builds.alternate(["a", "b"], 4, lambda checkout: calls.append(checkout) or len(calls))
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert results == {"a": [1, 4, 5, 8], "b": [2, 3, 6, 7]}


def test_the_table_gives_medians_and_rounds():
    case = ("cpu", "bfloat16", "32x3x224x224", "backward")
    table = ab_builds.markdown_table({"new": [{case: 1.3}, {case: 1.1}, {case: 1.2}], "old": [{case: 1.4}] * 3})
    assert (
        table.splitlines()[2]
        == "| cpu | bfloat16 | 32x3x224x224 | backward | 1.20 (1.30, 1.10, 1.20) | 1.40 (1.40, 1.40, 1.40) |"
    )


def test_a_checkout_without_the_build_is_refused(tmp_path):
    # With an empty folder first on PYTHONPATH, npr_cuda still imports: from this checkout's
    # install. That must not pass for the other build.
    with pytest.raises(SystemExit, match="build it there in place"):
        ab_builds.check_build(str(tmp_path))


def test_one_run_is_read_back():
    ab_builds.check_build(ROOT)
    ratios = ab_builds.run_bench(
        ROOT,
        [
            "--devices",
            "cpu",
            "--dtypes",
            "float32",
            "--shapes",
            "1x2x6x7",
            "--window",
            "3",
            "--no-compiled",
            "--no-eager",
            "--seconds",
            "0.01",
        ],
    )
    assert set(ratios) == {("cpu", "float32", "1x2x6x7", p) for p in ("forward", "backward")}
    assert all(r > 0 for r in ratios.values())
