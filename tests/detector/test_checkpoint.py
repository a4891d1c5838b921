"""Writing checkpoints: atomically, with a clear word when the disk is full; reading them:
weights with NaN or Inf are refused."""

import errno
import os
import shutil

import pytest
import torch

from npr_cuda.detector import CheckpointError, load_detector, npr_resnet50
from npr_cuda.detector.checkpoint import CheckpointWriteError, save_atomically


def test_atomic_write_keeps_the_previous_checkpoint_when_interrupted(tmp_path, monkeypatch):
    path = str(tmp_path / "last.pth")
    save_atomically({"model": {"w": torch.ones(3)}, "epoch": 1}, path)
    real_save = torch.save

    def save_half_then_die(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_atomically({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    kept = torch.load(path, weights_only=True)
    assert kept["epoch"] == 1 and torch.equal(kept["model"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["last.pth"]  # no temporary file left behind


@pytest.mark.parametrize("failure", ["unexpected pos", "ENOSPC"])
def test_a_full_disk_is_named_and_the_previous_checkpoint_kept(tmp_path, monkeypatch, failure):
    path = str(tmp_path / "last.pth")
    save_atomically({"model": {"w": torch.ones(3)}, "epoch": 1}, path)

    def save_until_the_disk_is_full(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        if failure == "ENOSPC":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    real_usage = shutil.disk_usage
    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    if failure == "unexpected pos":  # torch's writer does not say why: the free space does
        monkeypatch.setattr(shutil, "disk_usage", lambda p: real_usage(p)._replace(free=0))
    with pytest.raises(CheckpointWriteError, match=f"could not write checkpoint {path}: the disk is full .*kept"):
        save_atomically({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.pth"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_with_nan_or_inf_are_refused(tmp_path, bad):
    state = npr_resnet50().state_dict()
    state["fc1.weight"][0, 3] = bad
    torch.save(state, tmp_path / "diverged.pth")
    with pytest.raises(CheckpointError, match=r"NaN or Inf values \(1\): fc1.weight"):
        load_detector(str(tmp_path / "diverged.pth"))


class RunsCodeWhenUnpickled:
    """An object whose unpickling calls a function: what a checkpoint must never be able to do."""

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path):
    payload = RunsCodeWhenUnpickled()
    payload.marker = str(tmp_path / "code_ran")
    torch.save({"model": npr_resnet50().state_dict(), "extra": payload}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights_only=True failed"):
        load_detector(str(tmp_path / "evil.pth"))
    assert not os.path.exists(payload.marker)
