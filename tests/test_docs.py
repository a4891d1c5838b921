"""The README and the manual in docs/: every relative link and every #anchor resolves to a file
and a heading (GitHub's anchor rule), every --flag a page gives an npr-* tool is in that tool's
--help, and the README stays a front page."""

import contextlib
import functools
import importlib
import io
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(
    os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md")
)
MANUAL = ["op", "detector", "demo", "deploy", "benchmarks", "gpu-session", "development"]
README_MAX_LINES = 200

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# A tool by its command (npr-eval) or its module (python -m npr_cuda.cli.eval), then its flags.
TOOL = re.compile(r"(?<![\w-])(?:npr-|npr_cuda\.cli\.)(eval|detect|train|demo|export)(?![\w-])")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")


def read(page: str, root: str = ROOT) -> str:
    with open(os.path.join(root, page), encoding="utf-8") as f:
        return f.read()


def split_blocks(text: str):
    """(prose paragraphs, code block lines): paragraphs joined into one line each, so that a link
    or a code span that wraps is whole; fenced code apart."""
    paragraphs, code, current, fenced = [], [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            code.append(line)
        elif line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs, code


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: its text (link targets, backticks and emphasis dropped),
    lower case, every character but letters, digits, '_', '-' and spaces removed, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set:
    """The anchors of a page's headings outside code blocks; a repeated one gets -1, -2, ..."""
    seen, found, fenced = {}, set(), False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            anchor = github_anchor(match[2])
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def broken_links(page: str, root: str = ROOT) -> list:
    """Every relative link of `page` whose file, or whose #anchor in that file, does not exist."""
    paragraphs, _ = split_blocks(read(page, root))
    problems = []
    for paragraph in paragraphs:
        for target in LINK.findall(CODE_SPAN.sub("", paragraph)):
            if SCHEME.match(target):
                continue  # http(s), mailto: not checked offline
            path, _, anchor = target.partition("#")
            file = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            full = os.path.join(root, file)
            if file.startswith("..") or not os.path.exists(full):
                problems.append(f"{page}: ({target}): no file {file} in the repository")
            elif anchor and (not file.endswith(".md") or anchor not in anchors(read(file, root))):
                problems.append(f"{page}: ({target}): no heading with anchor #{anchor} in {file}")
    return problems


def tool_flags(page: str, root: str = ROOT) -> list:
    """(tool, flag) for every --flag after a tool's name, in the same code span or code line."""
    paragraphs, code = split_blocks(read(page, root))
    pieces = code + [span for paragraph in paragraphs for span in CODE_SPAN.findall(paragraph)]
    found = []
    for piece in pieces:
        mentions = [(match.start(), match[1]) for match in TOOL.finditer(piece)]
        for flag in FLAG.finditer(piece):
            before = [tool for start, tool in mentions if start < flag.start()]
            if before:
                found.append((before[-1], flag[0]))
    return found


@functools.lru_cache(maxsize=None)
def help_flags(tool: str) -> frozenset:
    """The flags in `python -m npr_cuda.cli.<tool> --help` (its parser, run in this process)."""
    module = importlib.import_module(f"npr_cuda.cli.{tool}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.parse_args(["--help"])
    return frozenset(FLAG.findall(out.getvalue()))


def unknown_flags(page: str, root: str = ROOT) -> list:
    return [f"{page}: npr-{tool} {flag}" for tool, flag in tool_flags(page, root) if flag not in help_flags(tool)]


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES)
def test_every_flag_given_to_a_tool_is_in_its_help(page):
    assert unknown_flags(page) == []


def test_the_readme_is_a_front_page_and_maps_the_manual():
    readme = read("README.md")
    assert len(readme.splitlines()) <= README_MAX_LINES
    for name in MANUAL:
        assert os.path.exists(os.path.join(ROOT, "docs", f"{name}.md")), name
        assert f"](docs/{name}.md)" in readme, f"the README's map of the manual lacks docs/{name}.md"


def test_the_lines_ci_reads_stay_in_the_readme():
    """.ci/run runs the line after '# Run the tests'; tests/test_build.py reads '# Build a wheel'."""
    lines = read("README.md").splitlines()
    for label in ("# Run the main job (the microbenchmark against clone, eager and torch.compile)", "# Run the tests"):
        command = lines[lines.index(label) + 1]
        assert command.startswith("python -m pip install -r requirements.txt && "), command
    assert lines[lines.index("# Build a wheel") + 1].endswith("bash .ci/build_wheel.sh")


def test_github_anchors():
    assert github_anchor("Deploy: ONNX, AOTInductor, C++") == "deploy-onnx-aotinductor-c"
    assert github_anchor("Evaluating: `npr-eval`") == "evaluating-npr-eval"
    assert github_anchor("Any window and anchor (the paper's ablation)") == "any-window-and-anchor-the-papers-ablation"
    assert github_anchor("Speed, and what stays exact") == "speed-and-what-stays-exact"
    assert anchors("# A\n```\n# not a heading\n```\n## A\n### A b_c\n") == {"a", "a-1", "a-b_c"}


def test_the_checks_find_a_broken_link_and_an_unknown_flag(tmp_path):
    """A planted broken file link, a broken anchor and an unknown flag are each reported; the
    same page without them passes."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Deploy: ONNX, AOTInductor, C++\n")
    good = (
        "# Top\n\nSee [the page](docs/page.md#deploy-onnx-aotinductor-c) and [top](#top).\n\n"
        "```sh\nnpr-detect photos/ --weights NPR.pth --jsonl  # or --model FILE\n```\n\n"
        "Run `python -m npr_cuda.cli.train DATA --npr-window 3` after `torchrun --nproc_per_node=2`.\n"
    )
    (tmp_path / "README.md").write_text(good)
    assert broken_links("README.md", str(tmp_path)) == []
    assert unknown_flags("README.md", str(tmp_path)) == []
    planted = good + (
        "\nA [broken file](docs/nowhere.md), a [broken\nanchor](docs/page.md#deploy) here.\n\n"
        "```sh\nnpr-export --weights NPR.pth --output m.onnx && npr-detect m/ --model m.onnx --no-such-flag\n```\n"
    )
    (tmp_path / "README.md").write_text(planted)
    problems = broken_links("README.md", str(tmp_path))
    assert len(problems) == 2 and "no file docs/nowhere.md" in problems[0] and "#deploy in docs/page.md" in problems[1]
    assert unknown_flags("README.md", str(tmp_path)) == ["README.md: npr-detect --no-such-flag"]
