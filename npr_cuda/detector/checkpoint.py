"""The detector's checkpoint format, written and read here only.

Two kinds of file are read:

- a raw state dict (the released ``NPR.pth``);
- a training checkpoint ``{'model': state_dict, 'optimizer', 'scaler', 'epoch', 'step',
  'total_steps', 'config'}``, written by :func:`save_training_state` (the official trainer's
  ``{'model': ...}`` files read the same way for their weights).

Every file is read with ``torch.load(weights_only=True)``: no arbitrary object is ever
unpickled. A ``module.`` prefix (a model saved inside DataParallel or DDP) is removed.
"""

import errno
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from ..reference import window_pair
from .model import DEFAULT_ANCHOR, DEFAULT_WINDOW, NPRResNet, npr_resnet50

__all__ = [
    "CheckpointError",
    "CheckpointWriteError",
    "TrainingState",
    "read_state_dict",
    "load_weights",
    "load_detector",
    "save_atomically",
    "save_training_state",
    "read_training_state",
]

StateDict = Dict[str, Tensor]


class CheckpointError(ValueError):
    """A file that is not an NPR detector checkpoint, or one that does not fit the model."""


def _read(path: str) -> Any:
    """The object in ``path``, loaded safely, or CheckpointError naming the file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path}: not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights_only errors all mean the same here
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise CheckpointError(
            f"checkpoint {path}: not a PyTorch checkpoint of tensors that can be loaded safely "
            f"(torch.load with weights_only=True failed: {type(error).__name__}: {first_line})"
        ) from error


def _model_state(obj: Any, path: str) -> StateDict:
    """The model's state dict inside a loaded checkpoint object (see the module doc)."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(
            f"checkpoint {path}: expected a state dict (names to tensors) or a dict with a 'model' "
            f"state dict, got {type(obj).__name__}"
            + (f" with keys {sorted(obj)[:10]}" if isinstance(obj, dict) else "")
        )
    if all(key.startswith("module.") for key in obj):
        obj = {key[len("module.") :]: value for key, value in obj.items()}
    return obj


def read_state_dict(path: str) -> StateDict:
    """The model's state dict in ``path``: a raw state dict or a training checkpoint."""
    return _model_state(_read(path), path)


def load_weights(model: nn.Module, path: str, state: Optional[StateDict] = None) -> nn.Module:
    """Loads the checkpoint at ``path`` (or its already read ``state``) into ``model`` strictly;
    a mismatch raises :class:`CheckpointError` naming the missing, unexpected and wrongly
    shaped entries, and those holding NaN or Inf (a diverged run: every output would be NaN)."""
    state = read_state_dict(path) if state is None else state
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} (model: {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    not_finite = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if missing or unexpected or wrong_shape or not_finite:

        def first(names):
            return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")

        problems = [
            f"{label} ({len(names)}): {first(names)}"
            for label, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrong shape", wrong_shape),
                ("NaN or Inf values", not_finite),
            )
            if names
        ]
        raise CheckpointError(f"checkpoint {path} does not fit the NPR detector: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model


def npr_settings(obj: Any) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """The NPR window and anchor a loaded checkpoint's model was trained with: its config's
    ``npr_window`` and ``npr_anchor``, or the official (2, 2), (0, 0) where it does not say (a
    raw state dict such as the released NPR.pth)."""
    config = obj.get("config") if isinstance(obj, dict) and isinstance(obj.get("config"), dict) else {}
    return window_pair(config.get("npr_window", DEFAULT_WINDOW)), window_pair(config.get("npr_anchor", DEFAULT_ANCHOR))


def load_detector(path: str, device="cpu", window=None, anchor=None, **kwargs) -> NPRResNet:
    """An :func:`npr_resnet50` with the weights in ``path``, on ``device``, in eval mode, with the
    NPR window and anchor the checkpoint records (npr_settings). A ``window`` or ``anchor``
    given here must agree with it: CheckpointError otherwise, never a silent override."""
    obj = _read(path)
    saved = dict(zip(("window", "anchor"), npr_settings(obj)))
    for name, given in (("window", window), ("anchor", anchor)):
        if given is not None and window_pair(given) != saved[name]:
            raise CheckpointError(
                f"checkpoint {path} holds a detector trained with NPR {name} {saved[name]}, not {window_pair(given)}"
            )
    model = npr_resnet50(window=saved["window"], anchor=saved["anchor"], **kwargs)
    return load_weights(model, path, _model_state(obj, path)).to(device).eval()


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (the previous one, if any, is kept)."""


def save_atomically(obj, path: str) -> None:
    """torch.save to a temporary file in the same folder, flushed to disk, then renamed over
    ``path``: an interruption or a failed write (a full disk) leaves the old file, never half of
    one. A failed write raises CheckpointWriteError saying why, a full disk as such."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as error:  # torch's writer reports a full disk as "unexpected pos" or similar
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        free = shutil.disk_usage(folder).free
        if getattr(error, "errno", None) == errno.ENOSPC or free <= max(written, 1 << 20):
            why = f"the disk is full ({free} bytes free in {folder})"
        else:
            why = f"{type(error).__name__}: {error}"
        kept = "the previous checkpoint is kept" if os.path.exists(path) else "no checkpoint was written"
        raise CheckpointWriteError(f"could not write checkpoint {path}: {why}; {kept}") from error
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@dataclass
class TrainingState:
    """What a training checkpoint holds: enough to continue at the exact step."""

    model: StateDict
    optimizer: Dict[str, Any]
    scaler: Dict[str, Any] = field(default_factory=dict)
    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed inside `epoch`
    samples_done: int = 0  # images consumed inside `epoch`, all processes: where a resume starts
    total_steps: int = 0
    config: Dict[str, Any] = field(default_factory=dict)  # the run's settings, plain values only


def save_training_state(path: str, state: TrainingState) -> None:
    """Writes ``state`` to ``path`` atomically, in the format every reader here understands."""
    save_atomically(
        {
            "model": state.model,
            "optimizer": state.optimizer,
            "scaler": state.scaler,
            "epoch": state.epoch,
            "step": state.step,
            "samples_done": state.samples_done,
            "total_steps": state.total_steps,
            "config": state.config,
        },
        path,
    )


def read_training_state(path: str) -> TrainingState:
    """A training checkpoint, read once (model, optimizer, position); CheckpointError when
    ``path`` holds weights only or is no checkpoint at all."""
    obj = _read(path)
    if not isinstance(obj, dict) or "optimizer" not in obj or "epoch" not in obj:
        raise CheckpointError(f"checkpoint {path}: not an npr-train checkpoint (needs model, optimizer, epoch)")
    config = dict(obj.get("config") or obj.get("args") or {})
    step = int(obj.get("step", 0))
    return TrainingState(
        model=_model_state(obj, path),
        optimizer=obj["optimizer"],
        scaler=obj.get("scaler") or {},
        epoch=int(obj["epoch"]),
        step=step,
        # checkpoints written before samples_done was kept: steps of the batch size they ran with
        samples_done=int(obj.get("samples_done", step * config.get("batch_size", 0))),
        total_steps=int(obj.get("total_steps", 0)),
        config=config,
    )
