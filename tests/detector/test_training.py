"""npr-train: the recipe learns, resumes exactly (after epochs and after an interruption inside
one), writes checkpoints atomically, and runs on two processes with gloo."""

import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers.cli import exit_message
from helpers.image_folders import write_dataset
from helpers.training import assert_same_weights, log_of, one_process_validation, signal_at_step, train_args, weights_of

import npr_cuda.detector.training as training
from npr_cuda import npr
from npr_cuda.cli import train as train_cli
from npr_cuda.detector import CheckpointError, load_detector, npr_resnet50
from npr_cuda.detector.training import decayed_lr
from npr_cuda.reference import formula_npr


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(str(tmp_path_factory.mktemp("data")))


def test_training_lowers_the_loss_and_logs_every_epoch(data, tmp_path):
    train_cli.main(train_args(data, tmp_path, "--niter", "6", "--lr", "1e-3"))
    log = log_of(tmp_path)
    assert [r["epoch"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert log[-1]["train_loss"] < 0.8 * log[0]["train_loss"]
    assert all(0 <= r["val_acc"] <= 1 and 0 <= r["val_ap"] <= 1 and r["images_per_s"] > 0 for r in log)
    state = torch.load(os.path.join(tmp_path, "last.pth"), weights_only=True)
    assert state["epoch"] == 6 and state["step"] == 0 and set(state) >= {"model", "optimizer", "epoch"}
    load_detector(os.path.join(tmp_path, "last.pth"))  # what npr-eval and npr-detect read


def test_learning_rate_schedule(data, tmp_path):
    train_cli.main(train_args(data, tmp_path, "--niter", "3", "--delr-freq", "1", "--val-split", ""))
    assert [r["lr"] for r in log_of(tmp_path)] == pytest.approx([2e-4, 1.8e-4, 1.62e-4])
    assert decayed_lr(1.05e-6) == 1e-6 and decayed_lr(1e-6) == 1e-6


def test_resume_after_an_epoch_continues_exactly(data, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_cli.main(train_args(data, straight, "--niter", "2"))
    train_cli.main(train_args(data, split, "--niter", "1"))
    train_cli.main(train_args(data, split, "--niter", "2", "--resume", str(split / "last.pth")))
    assert_same_weights(weights_of(straight), weights_of(split))
    assert [r["train_loss"] for r in log_of(straight)] == [r["train_loss"] for r in log_of(split)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_inside_an_epoch_saves_and_resume_continues_exactly(data, tmp_path, monkeypatch, signum):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train_cli.main(train_args(data, straight, "--niter", "2", "--val-split", ""))

    real_loss = signal_at_step(monkeypatch, signum, 3)  # during step 1 of 2 of the second epoch
    handler_before = signal.getsignal(signum)  # SIG_IGN for SIGINT in a background job: kept so
    if handler_before is signal.SIG_IGN:
        pytest.skip(f"{signal.Signals(signum).name} is ignored in this process (test_an_ignored_sigint_stays_ignored)")
    with pytest.raises(SystemExit) as stopped:
        train_cli.main(train_args(data, interrupted, "--niter", "2", "--val-split", ""))
    assert stopped.value.code == 128 + signum  # 130 for Ctrl-C, 143 for SIGTERM
    saved = torch.load(interrupted / "last.pth", weights_only=True)
    assert (saved["epoch"], saved["step"]) == (1, 1)  # the step in flight was completed, then saved
    monkeypatch.setattr(training.F, "binary_cross_entropy_with_logits", real_loss)
    train_cli.main(
        train_args(data, interrupted, "--niter", "2", "--val-split", "", "--resume", str(interrupted / "last.pth"))
    )
    assert_same_weights(weights_of(straight), weights_of(interrupted))
    assert signal.getsignal(signum) is handler_before  # the handler found before the run, restored


class FailsOnSecondFetch:
    """An epoch's loader whose second fetch fails, as when a signal has also ended its data workers."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for index, batch in enumerate(self.loader):
            if index == 1:
                raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly")
            yield batch


def test_a_stop_this_process_alone_saw_checkpoints_with_no_collective(data, tmp_path, monkeypatch):
    """A signal, then a failed fetch: a stop the other processes may meet at another step, so its
    checkpoint is written without the collective that shares the main process's outcome."""
    signal_at_step(monkeypatch, signal.SIGTERM, 1)
    real_loader = training._Training.epoch_loader
    monkeypatch.setattr(training._Training, "epoch_loader", lambda self: FailsOnSecondFetch(real_loader(self)))

    def collective(procs, value):
        raise AssertionError("a collective in a stop that only this process saw")

    monkeypatch.setattr(training.Processes, "main_says", collective)
    with pytest.raises(SystemExit) as stopped:
        train_cli.main(train_args(data, tmp_path, "--niter", "2", "--val-split", ""))
    assert stopped.value.code == 128 + signal.SIGTERM
    saved = torch.load(tmp_path / "last.pth", weights_only=True)
    assert (saved["epoch"], saved["step"]) == (0, 1)


def test_data_workers_do_not_change_the_result(data, tmp_path):
    for workers in ("0", "2"):
        args = train_args(
            data, tmp_path / workers, "--niter", "1", "--val-split", "", "--jpeg-prob", "0.5", "--blur-prob", "0.5"
        )
        args[args.index("--workers") + 1] = workers
        train_cli.main(args)
    assert_same_weights(weights_of(tmp_path / "0"), weights_of(tmp_path / "2"))


def test_an_ignored_sigint_stays_ignored(data, tmp_path, monkeypatch):
    """A job started in the background of a script has SIGINT ignored: training neither installs
    its handler nor stops on it, and leaves it ignored."""
    signal_at_step(monkeypatch, signal.SIGINT, 1)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        train_cli.main(train_args(data, tmp_path, "--niter", "1", "--val-split", ""))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [r["epoch"] for r in log_of(tmp_path)] == [1]


def test_two_processes_with_gloo(data, tmp_path):
    torchrun = shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "npr_cuda.cli.train",
            *train_args(data, tmp_path, "--niter", "2"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = log_of(tmp_path)
    assert [r["epoch"] for r in log] == [1, 2]  # one writer: rank 0
    assert torch.load(tmp_path / "last.pth", weights_only=True)["epoch"] == 2
    # 16 training images, global batch 8 over 2 processes: 2 steps an epoch.
    assert log[-1]["steps"] == 4
    # Validation shared by the processes: every image scored, the metrics one process gives.
    assert log[-1]["val_images"] == 16 and log[-1]["val_skipped_images"] == []
    alone = one_process_validation(os.path.join(data, "val"), tmp_path / "last.pth", load_size=40, crop_size=32)
    assert log[-1]["val_acc"] == pytest.approx(alone["acc"], abs=1e-6)
    assert log[-1]["val_ap"] == pytest.approx(alone["ap"], abs=1e-6)


def test_bad_arguments(data, tmp_path, capsys):
    exit_message(capsys, 2, train_cli.main, train_args(tmp_path / "nowhere", tmp_path / "out"), "no such folder")
    exit_message(capsys, 2, train_cli.main, train_args(data, tmp_path / "out", "--jpeg-quality", "90,30"), "LOW")


@pytest.mark.parametrize(
    "options,match",
    [
        (["--delr-freq", "0"], "--delr-freq: expected at least 1"),
        (["--niter", "0"], "--niter: expected at least 1 epoch"),
        (["--lr", "-1"], "--lr: expected a finite number above 0"),
        (["--lr", "nan"], "--lr: expected a finite number above 0"),
        (["--batch-size", "0"], "--batch-size: .*expected at least 1"),
        (["--batch-size", "-1"], "--batch-size: .*expected at least 1"),
        (["--workers", "-1"], "--workers: .*expected at least 0"),
        (["--load-size", "16"], "--load-size: expected at least crop_size"),
        (["--blur-prob", "2"], "--blur-prob: expected a probability"),
        (["--save-every", "-5"], "--save-every: expected 0 or more"),
        (["--classes", "car,dog"], "holds 0_real/1_fake itself"),
    ],
)
def test_bad_settings_are_refused_before_the_first_step(data, tmp_path, capsys, options, match):
    output = tmp_path / "out"
    exit_message(capsys, 2, train_cli.main, train_args(data, output, *options), match)
    assert not os.path.exists(output / "log.jsonl") and not os.path.exists(output / "last.pth")


def test_output_that_is_a_file_is_refused_at_once(data, tmp_path, capsys):
    (tmp_path / "out").write_text("a file")
    exit_message(capsys, 2, train_cli.main, train_args(data, tmp_path / "out"), "--output: expected a folder")


@pytest.mark.parametrize("kind", ["missing", "folder", "truncated", "text", "weights only"])
def test_bad_resume_files_are_one_line_naming_the_file(data, tmp_path, capsys, kind):
    path = tmp_path / "resume.pth"
    if kind == "folder":
        path.mkdir()
    elif kind == "truncated":
        train_cli.main(train_args(data, tmp_path / "run", "--niter", "1", "--val-split", ""))
        whole = (tmp_path / "run" / "last.pth").read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "text":
        path.write_text("hello")
    elif kind == "weights only":
        torch.save(npr_resnet50().state_dict(), path)
    argv = train_args(data, tmp_path / "out", "--resume", str(path))
    exit_message(capsys, 2, train_cli.main, argv, f"npr-train: .*{path}")


def test_resume_with_another_batch_size_skips_the_images_done(data, tmp_path, monkeypatch):
    """Stopped after 3 steps of 4 images (12 of 16 done), resumed at batch 8: the 4 images left
    are one partial batch, trained on; counting in steps would have skipped 3 x 8 = 24 images,
    and counting nothing, retrained 12."""
    real_loss = signal_at_step(monkeypatch, signal.SIGTERM, 3)
    args = train_args(data, tmp_path, "--niter", "2", "--val-split", "")
    args[args.index("--batch-size") + 1] = "4"
    with pytest.raises(SystemExit):
        train_cli.main(args)
    saved = torch.load(tmp_path / "last.pth", weights_only=True)
    assert (saved["epoch"], saved["samples_done"]) == (0, 12)
    monkeypatch.setattr(training.F, "binary_cross_entropy_with_logits", real_loss)
    train_cli.main(
        train_args(data, tmp_path, "--niter", "2", "--val-split", "", "--resume", str(tmp_path / "last.pth"))
    )
    log = log_of(tmp_path)
    assert [(r["epoch"], r["images"], r["steps"]) for r in log] == [(1, 4, 4), (2, 16, 6)]


def test_ctrl_c_to_the_process_group_stops_once(data, tmp_path):
    """Ctrl-C in a terminal signals every process of the group, data workers included: one
    message, a checkpoint, exit 130."""
    command = [sys.executable, "-m", "npr_cuda.cli.train", *train_args(data, tmp_path, "--niter", "100")]
    command[command.index("--workers") + 1] = "2"
    command[command.index("--save-every") + 1] = "1"
    # As a terminal's job: a suite started in the background of a script has SIGINT ignored,
    # which children inherit and Python then leaves ignored; the job here starts with the default.
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(tmp_path / "last.pth") and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err[-2000:]
    assert err.count("stopping after this step") == 1, err[-2000:]
    assert "resume with --resume" in err


def record_npr_calls(monkeypatch):
    """Wraps every NPR implementation the model can be built with: each call records which one ran,
    the autocast dtype in force (None without autocast) and the memory format of its input."""
    calls = []

    def recording(name, impl):
        def npr(x, *args, **kwargs):
            amp = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else None
            channels_last = x.is_contiguous(memory_format=torch.channels_last)
            layout = "NCHW" if x.is_contiguous() else "channels_last" if channels_last else "strided"
            calls.append((name, amp, layout))
            return impl(x, *args, **kwargs)

        return npr

    for name, impl in list(training.NPR_IMPLEMENTATIONS.items()):
        monkeypatch.setitem(training.NPR_IMPLEMENTATIONS, name, recording(name, impl))
    return calls


@pytest.mark.parametrize(
    "options,seen",
    [
        ([], ("npr_cuda", None, "channels_last")),
        (["--amp", "bf16"], ("npr_cuda", torch.bfloat16, "channels_last")),
        (["--no-channels-last"], ("npr_cuda", None, "NCHW")),
        (["--npr", "official"], ("official", None, "channels_last")),
    ],
)
def test_training_options_take_effect(data, tmp_path, monkeypatch, options, seen):
    """Each option reaches the model: the NPR implementation called, the autocast dtype in force
    inside the model, the memory format of the batch (validation runs without autocast)."""
    calls = record_npr_calls(monkeypatch)
    train_cli.main(train_args(data, tmp_path, "--niter", "1", "--val-split", "", *options))
    assert calls and set(calls) == {seen}
    record = log_of(tmp_path)[0]
    assert math.isfinite(record["train_loss"])
    load_detector(os.path.join(tmp_path, "last.pth"))


def test_a_compiled_training_step_learns_what_the_eager_one_does(data, tmp_path, capsys):
    """--compile on (auto leaves runs this short uncompiled): same losses within rounding, which
    Adam's normalised steps amplify from epoch to epoch."""
    for mode in ("on", "off"):
        train_cli.main(train_args(data, tmp_path / mode, "--niter", "2", "--compile", mode, "--val-split", ""))
    compiled, eager = log_of(tmp_path / "on"), log_of(tmp_path / "off")
    assert compiled[0]["train_loss"] == pytest.approx(eager[0]["train_loss"], rel=1e-4)
    assert compiled[1]["train_loss"] == pytest.approx(eager[1]["train_loss"], rel=2e-3)
    assert "torch.compile failed" not in capsys.readouterr().err


def test_npr_window_is_trained_recorded_and_checked(data, tmp_path, capsys):
    """npr-train --npr-window/--npr-anchor: the model uses them, the checkpoint records them,
    load_detector takes them from it, and a different window is refused, not overridden."""
    run = tmp_path / "w3"
    train_cli.main(train_args(data, run, "--niter", "1", "--val-split", "", "--npr-window", "3", "--npr-anchor", "1,2"))
    checkpoint = str(run / "last.pth")
    model = load_detector(checkpoint)
    assert (model.window, model.anchor) == ((3, 3), (1, 2))
    assert load_detector(checkpoint, window=3, anchor=(1, 2)).window == (3, 3)
    with pytest.raises(CheckpointError, match=r"trained with NPR window \(3, 3\), not \(2, 2\)"):
        load_detector(checkpoint, window=2)
    argv = train_args(data, run, "--niter", "2", "--val-split", "", "--resume", checkpoint)  # default window 2
    exit_message(capsys, 2, train_cli.main, argv, r"--npr-window: .*was trained with \(3, 3\)")
    exit_message(capsys, 2, train_cli.main, train_args(data, tmp_path / "bad", "--npr-anchor", "2,0"), "--npr-anchor")


def test_the_detector_with_another_window_is_the_op_inside(gen):
    torch.manual_seed(0)
    model = npr_resnet50(window=(4, 3), anchor=(3, 1)).eval()
    x = torch.randn(2, 3, 30, 29, generator=gen)
    assert torch.equal(model.features(x), npr(x, (4, 3), (3, 1)) * 2.0 / 3.0)  # no crop to even
    published = npr_resnet50(npr_impl=formula_npr, window=(4, 3), anchor=(3, 1)).eval()
    published.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(model(x), published(x))  # the author's padding formula, bit for bit
