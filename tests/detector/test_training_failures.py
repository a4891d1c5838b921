"""npr-train ends one way or the other, never both: a run that cannot work is one line and its
exit status (2 before any work, 1 for a failed run), never a hang, a traceback or a run that
trained on nothing. Broken files under two processes, the seed, one class only, NaN in validation
and a diverged model, a resume into fp16, the schedule's help, the last partial batch."""

import math
import os
import signal
import subprocess
import time

import pytest
import torch
from helpers.cli import exit_message
from helpers.image_folders import write_broken_files, write_dataset
from helpers.training import (
    assert_no_process_left,
    change_loss_at_step,
    kill_run,
    log_of,
    run_torchrun,
    torchrun_train,
    train_args,
)

import npr_cuda.detector.training as training
from npr_cuda.cli import train as train_cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def broken_data(tmp_path_factory):
    """8 training images and 2 broken files: 10 files, 5 for each of two processes."""
    root = write_dataset(str(tmp_path_factory.mktemp("broken")), per_class=4)
    write_broken_files(os.path.join(root, "train", "1_fake"))
    return root


def one_per_process(data, output, *extra):
    """Two processes, one file each per step: a step where one holds a broken file and the other
    a good one is certain, as is one where only broken files are read, on one or on both."""
    args = train_args(data, output, "--val-split", "", *extra)
    args[args.index("--batch-size") + 1] = "2"
    return args


# ------------------------------------------------------------------------- two processes
def epochs_logged(output):
    return len(log_of(output)) if os.path.exists(os.path.join(output, "log.jsonl")) else 0


def test_two_processes_with_broken_files_finish_and_leave_no_worker(broken_data, tmp_path):
    """A process whose batch holds only broken files still takes part in every collective, in
    the same order as the others: the run ends (it hung for good before), every worker with it."""
    status, err = run_torchrun(one_per_process(broken_data, tmp_path, "--niter", "2"), str(tmp_path), timeout=120)
    assert status == 0, err[-3000:]
    log = log_of(tmp_path)
    assert [r["epoch"] for r in log] == [1, 2]
    for record in log:  # every process's skipped files, not only the main one's
        assert sorted(os.path.basename(p) for p in record["skipped_images"]) == ["not_an_image.jpg", "truncated.png"]
        assert record["images"] == 8


def test_sigterm_to_torchrun_checkpoints_and_ends_every_worker(broken_data, tmp_path):
    """torchrun passes a SIGTERM on to its workers: they finish the step, the main one writes the
    checkpoint, and all of them exit (workers stuck in a collective ignored it before)."""
    argv = one_per_process(broken_data, tmp_path, "--niter", "1000", "--compile", "off")  # auto would compile
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(torchrun_train(argv), stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and epochs_logged(tmp_path) < 2:
            time.sleep(0.2)
        assert process.poll() is None and epochs_logged(tmp_path) >= 2, "the run ended, or hung in epoch 1 or 2"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            kill_run(process, str(tmp_path))
        assert_no_process_left(str(tmp_path))
    assert "SIGTERM: stopped at epoch" in err and "resume with --resume" in err, err[-3000:]
    saved = torch.load(tmp_path / "last.pth", weights_only=True)
    assert saved["epoch"] >= 2


def test_a_checkpoint_the_main_process_cannot_write_ends_every_worker_with_one_line(data, tmp_path):
    """Only the main process writes the checkpoint; when it cannot (a full disk, here a folder in
    its place), every process fails alike, with one line: the others waited in a collective
    before, and ended with a traceback (gloo) or a timeout (NCCL) once the main one exited."""
    os.makedirs(tmp_path / "last.pth")
    argv = train_args(data, tmp_path, "--niter", "2", "--val-split", "", "--compile", "off")
    status, err = run_torchrun(argv, str(tmp_path), timeout=120)
    assert status == 1, err[-3000:]
    said = [line for line in err.splitlines() if line.startswith("npr-train:")]
    assert len(said) == 1 and "could not write checkpoint" in said[0], err[-3000:]
    assert "[rank" not in err, err[-3000:]  # torchrun prefixes a worker's traceback with its rank


# --------------------------------------------------------------------- nothing trained on
def test_a_negative_seed_is_refused_before_any_work(data, tmp_path, capsys):
    """--seed -1 failed inside every image's augmentation, which made each a skipped file."""
    exit_message(capsys, 2, train_cli.main, train_args(data, tmp_path, "--seed", "-1"), r"--seed: expected .*-1")
    assert not os.path.exists(tmp_path / "last.pth")


def test_a_run_that_skips_most_images_fails_with_the_reason(data, tmp_path, capsys, monkeypatch):
    """A fault in the augmentation is no broken file: when most of an epoch's images cannot be
    used, the run fails, saying why, before it writes a checkpoint of untrained weights."""

    def faulty(self, image, gen):
        raise ValueError("the augmentation is broken")

    monkeypatch.setattr(training.TrainTransform, "__call__", faulty)
    err = exit_message(capsys, 1, train_cli.main, train_args(data, tmp_path, "--niter", "2", "--val-split", ""))
    assert "16 of 16 images could not be used" in err and "ValueError: the augmentation is broken" in err
    assert not os.path.exists(tmp_path / "last.pth")


def test_a_few_broken_files_are_skipped_and_training_goes_on(broken_data, tmp_path):
    train_cli.main(train_args(broken_data, tmp_path, "--niter", "1", "--val-split", ""))
    record = log_of(tmp_path)[0]
    assert record["images"] == 8 and len(record["skipped_images"]) == 2


# ----------------------------------------------------------------------------- one class
def test_a_training_set_without_fakes_is_refused_naming_the_folders(tmp_path, capsys):
    root = write_dataset(str(tmp_path / "data"), per_class=2)
    os.rename(os.path.join(root, "train", "1_fake"), os.path.join(root, "train", "1_Fake"))
    argv = train_args(root, tmp_path / "out", "--batch-size", "2")
    err = exit_message(capsys, 2, train_cli.main, argv, r"train: no 1_fake images")
    assert "1_Fake" in err.splitlines()[-1]
    assert not os.path.exists(tmp_path / "out" / "last.pth")


def test_a_validation_set_with_one_class_is_refused(tmp_path, capsys):
    root = write_dataset(str(tmp_path / "data"), per_class=2)
    for name in os.listdir(os.path.join(root, "val", "0_real")):
        os.remove(os.path.join(root, "val", "0_real", name))
    argv = train_args(root, tmp_path / "out", "--batch-size", "2")
    exit_message(capsys, 2, train_cli.main, argv, r"val: no 0_real images.*--val-split ''")


def test_a_class_folder_with_one_label_is_named(tmp_path, capsys):
    """Another class still has both labels, so the run goes on, but the folder is named."""
    root = str(tmp_path / "data")
    for cls in ("car", "cat"):
        write_dataset(os.path.join(root, "classes", cls), per_class=2)
        for split in ("train", "val"):
            os.makedirs(os.path.join(root, split), exist_ok=True)
            os.rename(os.path.join(root, "classes", cls, split), os.path.join(root, split, cls))
    os.rename(os.path.join(root, "train", "cat", "1_fake"), os.path.join(root, "train", "cat", "1_Fake"))
    train_cli.main(train_args(root, tmp_path / "out", "--niter", "1", "--batch-size", "2", "--val-split", ""))
    err = capsys.readouterr().err
    assert "train/cat: no 1_fake images (folders there: 0_real, 1_Fake)" in err
    assert log_of(tmp_path / "out")[0]["images"] == 6


# ----------------------------------------------------------------------- NaN, divergence
def test_nan_in_validation_still_writes_the_checkpoint_and_a_strict_json_log(data, tmp_path, capsys, monkeypatch):
    real_predict = training.predict

    def nan_predictions(*args, **kwargs):
        result = real_predict(*args, **kwargs)
        result.probs = [math.nan] * len(result.probs)
        return result

    monkeypatch.setattr(training, "predict", nan_predictions)
    train_cli.main(train_args(data, tmp_path, "--niter", "1"))
    record = log_of(tmp_path)[0]  # strict JSON: null where the value is not a number
    assert record["val_ap"] is None and record["val_acc"] == 0.5
    assert torch.load(tmp_path / "last.pth", weights_only=True)["epoch"] == 1
    assert "validation: 16 of 16 probabilities are NaN" in capsys.readouterr().err


def test_a_diverged_model_fails_and_keeps_the_last_good_checkpoint(data, tmp_path, capsys, monkeypatch):
    change_loss_at_step(monkeypatch, 3, lambda loss: loss * math.nan)  # epoch 2, step 1: NaN gradients
    argv = train_args(data, tmp_path, "--niter", "3", "--val-split", "")
    exit_message(capsys, 1, train_cli.main, argv, r"npr-train: the model diverged in epoch 2 .*last.pth keeps epoch 1")
    assert [r["epoch"] for r in log_of(tmp_path)] == [1, 2]
    assert log_of(tmp_path)[1]["train_loss"] is None
    assert torch.load(tmp_path / "last.pth", weights_only=True)["epoch"] == 1


# --------------------------------------------------------------------------------- resume
def test_resume_into_fp16_starts_a_fresh_loss_scale(data, tmp_path, capsys):
    train_cli.main(train_args(data, tmp_path, "--niter", "1", "--val-split", ""))
    resume = ["--resume", str(tmp_path / "last.pth"), "--amp", "fp16"]
    train_cli.main(train_args(data, tmp_path, "--niter", "2", "--val-split", "", *resume))
    assert "starts a fresh fp16 loss scale" in capsys.readouterr().err
    assert [r["epoch"] for r in log_of(tmp_path)] == [1, 2]
    assert torch.load(tmp_path / "last.pth", weights_only=True)["scaler"]["scale"] > 0


# ------------------------------------------------------------------------------ schedule
def test_the_schedule_help_says_which_epochs_drop(data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_cli.main(["--help"])
    assert "at the end of epochs N+1, 2N+1, 3N+1" in " ".join(capsys.readouterr().out.split())
    train_cli.main(train_args(data, tmp_path, "--niter", "4", "--delr-freq", "2", "--val-split", ""))
    assert [r["lr"] for r in log_of(tmp_path)] == pytest.approx([2e-4, 2e-4, 1.8e-4, 1.8e-4])  # after epoch 3


# --------------------------------------------------------------------- last partial batch
@pytest.mark.parametrize("batch_size,steps", [("6", 3), ("5", 4), ("32", 1)])
def test_the_last_partial_batch_is_trained_as_the_official_loader_does(data, tmp_path, batch_size, steps):
    """16 images: 6 + 6 + 4, 5 + 5 + 5 + 1 (a batch of one image: BatchNorm still has 4x4 values
    per channel at a crop of 32), and one batch of 16 when the batch is larger than the set."""
    argv = train_args(data, tmp_path, "--niter", "1", "--val-split", "")
    argv[argv.index("--batch-size") + 1] = batch_size
    train_cli.main(argv)
    record = log_of(tmp_path)[0]
    assert (record["images"], record["steps"]) == (16, steps) and math.isfinite(record["train_loss"])


def test_a_crop_too_small_for_a_batch_of_one_is_refused(data, tmp_path, capsys):
    argv = train_args(data, tmp_path, "--crop-size", "8")
    exit_message(capsys, 2, train_cli.main, argv, "--crop-size: expected at least 16")


def test_a_step_weighted_over_processes_is_the_mean_over_their_images():
    """Two processes' steps of 2 and 1 images, each weighted processes / images in the step and
    averaged as DDP averages gradients, equal one step on all 3 images; an empty batch gives zero
    gradients (it only joins the all-reduce). BatchNorm in eval mode keeps the images apart (in
    training mode each process normalises its own batch, as under DDP without SyncBatchNorm)."""

    def gradients(batches, weight):
        torch.manual_seed(0)
        model = training.npr_resnet50().eval()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the step leaves the weights alone
        total = None
        for images, labels in batches:
            training.train_step(model, optimizer, images, labels, weight=weight)
            grads = [p.grad.clone() for p in model.parameters()]
            total = grads if total is None else [t + g for t, g in zip(total, grads)]
        return [g / len(batches) for g in total]

    gen = torch.Generator().manual_seed(1)
    images, labels = torch.randn(3, 3, 32, 32, generator=gen), torch.tensor([0, 1, 1])
    whole = gradients([(images, labels)], weight=None)
    split = gradients([(images[:2], labels[:2]), (images[2:], labels[2:])], weight=2 / 3)
    for a, b in zip(whole, split):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    empty = gradients([(images[:0], labels[:0])], weight=2 / 3)
    assert all(not g.any() for g in empty)


def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(data, tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    argv = train_args(data, tmp_path / "a_file" / "run")
    exit_message(capsys, 2, train_cli.main, argv, r"--output: expected a folder it can write to .*a_file is a file")
