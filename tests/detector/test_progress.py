"""Progress output: a tqdm bar on a terminal; to a pipe or a file, one line per stage and no
carriage return (tqdm's redraws would all stay in a log file)."""

import io
import os
import pty

from tqdm import tqdm

from npr_cuda.detector.progress import StageLine, progress_bar


def run_stage(stream):
    """A stage of 3 batches with a postfix, as the tools run one."""
    bar = progress_bar(range(3), desc="gan_a", unit="batch", stream=stream)
    for step in bar:
        bar.set_postfix(loss=f"{0.5 / (step + 1):.4f}")
    return bar


def test_to_a_pipe_one_line_per_stage_and_no_carriage_return():
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as pipe:
        bar = run_stage(pipe)
        assert isinstance(bar, StageLine)
    with os.fdopen(read_end) as pipe:
        written = pipe.read()
    assert "\r" not in written
    lines = written.splitlines()
    assert len(lines) == 1, written
    assert lines[0].startswith("gan_a: 3/3 batches in ") and lines[0].endswith(", loss=0.1667"), lines[0]


def test_on_a_terminal_a_tqdm_bar():
    controller, terminal = pty.openpty()
    with os.fdopen(terminal, "w") as stream:
        bar = run_stage(stream)
        assert isinstance(bar, tqdm)
    os.close(controller)


def test_by_hand_resumed_and_closed_once():
    stream = io.StringIO()
    bar = progress_bar(desc="epoch 2/5", unit="batch", total=10, initial=6, stream=stream)
    bar.update()
    bar.set_postfix(loss="0.6931", img_s="90.9")
    bar.write("a message between stages", file=stream)
    bar.close()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "a message between stages"
    assert len(lines) == 2 and lines[1].startswith("epoch 2/5: 7/10 batches in ") and "\r" not in stream.getvalue()
    assert lines[1].endswith(", loss=0.6931, img_s=90.9")


def test_disabled_prints_nothing_and_still_iterates():
    stream = io.StringIO()
    assert list(progress_bar(iter(range(4)), desc="quiet", unit="step", disable=True, stream=stream)) == [0, 1, 2, 3]
    assert stream.getvalue() == ""


def test_an_iterable_without_a_length_counts_what_it_gave():
    stream = io.StringIO()
    assert list(progress_bar((i for i in range(2)), desc="walk", unit="step", stream=stream)) == [0, 1]
    assert stream.getvalue().startswith("walk: 2 steps in ")
