"""Reading and steering npr-train runs in the tests: the log and weights a run left, and a
signal sent in the middle of a chosen training step."""

import json
import os

import torch

import npr_cuda.detector.training as training
from npr_cuda.detector import read_state_dict


def log_of(output):
    with open(os.path.join(output, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def weights_of(output):
    return read_state_dict(os.path.join(output, "last.pth"))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def signal_at_step(monkeypatch, signum, step):
    """Makes training step number `step` (from 1, over the whole run) send `signum` to this
    process while it computes the loss; returns the real loss function, to undo it with."""
    real_loss, calls = training.F.binary_cross_entropy_with_logits, []

    def loss_with_a_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            os.kill(os.getpid(), signum)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(training.F, "binary_cross_entropy_with_logits", loss_with_a_signal)
    return real_loss
