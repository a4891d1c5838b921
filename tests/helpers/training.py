"""npr-train in the tests: its arguments for tiny runs, its strict JSON log and its weights, a
loss that acts at a given step, and runs under torchrun (two processes, gloo) whose workers must
all be gone."""

import json
import os
import signal
import subprocess
import sys
import time

import torch

import npr_cuda.detector.training as training
from npr_cuda.detector import load_detector, read_state_dict
from npr_cuda.detector.data import ImageDataset, Protocol, eval_transform, make_loader, real_fake_samples
from npr_cuda.detector.metrics import binary_metrics
from npr_cuda.detector.predict import predict


def train_args(data, output, *extra, resize=True):
    """A tiny run on the CPU: global batch 8, 40x40 resized (unless `resize` is False: the
    GenImage recipe tiles instead), 32x32 crops, no data workers."""
    resized = ["--load-size", "40"] if resize else []
    return [
        str(data),
        "--output",
        str(output),
        "--batch-size",
        "8",
        *resized,
        "--crop-size",
        "32",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--save-every",
        "0",
        *extra,
    ]


def refuse_constant(name):
    raise ValueError(f"log.jsonl holds {name}, which strict JSON parsers reject")


def log_of(output):
    """OUTPUT/log.jsonl, one record per line, read as strict JSON (no NaN or Infinity)."""
    with open(os.path.join(output, "log.jsonl")) as f:
        return [json.loads(line, parse_constant=refuse_constant) for line in f]


def weights_of(output):
    return read_state_dict(os.path.join(output, "last.pth"))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def one_process_validation(val_root, checkpoint, load_size, crop_size):
    """Accuracy and AP of `checkpoint` on `val_root` as npr-train's validation defines them
    (resize, centre crop), computed here in one process from the parts the tools share."""
    samples = real_fake_samples(str(val_root), [], [], [])
    protocol = Protocol(resize=True, crop=True, load_size=load_size, crop_size=crop_size)
    loader = make_loader(ImageDataset(samples, eval_transform(protocol)), batch_size=64, workers=0)
    with torch.no_grad():
        scores = predict(load_detector(str(checkpoint)), loader, progress=False)
    return binary_metrics(scores.labels, scores.probs)


def change_loss_at_step(monkeypatch, step, change):
    """Training step number `step` (from 1, over the whole run) calls `change(loss)` on its loss
    and uses what it returns; returns the real loss function, to undo it with."""
    real_loss, calls = training.F.binary_cross_entropy_with_logits, []

    def loss_with_a_change(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return change(loss) if len(calls) == step else loss

    monkeypatch.setattr(training.F, "binary_cross_entropy_with_logits", loss_with_a_change)
    return real_loss


def signal_at_step(monkeypatch, signum, step):
    """Makes training step number `step` send `signum` to this process while it computes the loss."""

    def send(loss):
        os.kill(os.getpid(), signum)
        return loss

    return change_loss_at_step(monkeypatch, step, send)


def torchrun_train(argv):
    """The command that trains with two processes (gloo on the CPU) under torchrun."""
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return [*run, "-m", "npr_cuda.cli.train", *argv]


def processes_mentioning(marker):
    """The ids of the live processes, other than this one, whose command line holds `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:  # ended meanwhile
            continue
        if marker in command and not zombie:
            found.append(int(entry))
    return found


def kill_run(process, marker):
    """Kills torchrun (`process`, in its own session) and its workers (in sessions of their own,
    found by `marker`): the workers hold torchrun's stderr, which is read to its end after."""
    os.killpg(process.pid, signal.SIGKILL)
    for pid in processes_mentioning(marker):
        os.kill(pid, signal.SIGKILL)
    process.communicate()


def assert_no_process_left(marker, grace=10.0):
    """Every process whose command line holds `marker` ends within `grace` seconds; any left
    is killed (by its id) and the test fails."""
    deadline = time.monotonic() + grace
    while processes_mentioning(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = processes_mentioning(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"


def run_torchrun(argv, marker, timeout):
    """Runs torchrun_train(argv) in its own session; returns (exit status, stderr) once it and
    every worker (found by `marker` in their command lines) have ended. A run past `timeout`
    seconds is killed, leftovers with it, and fails the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(torchrun_train(argv), stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_run(process, marker)
        raise AssertionError(f"torchrun still running after {timeout} s") from None
    assert_no_process_left(marker)
    return process.returncode, err
