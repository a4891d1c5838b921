"""The torch release check that runs on import (npr_cuda/release.py): a build made for another
torch release fails with one ImportError that names both releases and the fix."""

import re
import sys
import types

import pytest
import torch

from npr_cuda.release import check_torch_release, mismatch


def test_the_same_release_loads_whatever_the_patch_level():
    assert mismatch("2.14.1+cu130", "13.0", "2.14.0+cu130", "13.0") is None
    assert mismatch("2.14.1+cu130", "", "2.14.1+cpu", None) is None  # a CPU-only build under CPU torch


def test_another_release_names_both_and_the_wheel_to_install():
    reason = mismatch("2.14.1+cu130", "13.0", "2.11.0+cu130", "13.0")
    assert reason.startswith("npr_cuda was built for torch 2.14.1+cu130 with CUDA 13.0, but torch 2.11.0+cu130")
    assert "+torch2.11.cu130" in reason and "pip install --no-build-isolation ." in reason


def test_cuda_kernels_under_a_torch_without_cuda():
    reason = mismatch("2.14.1+cu130", "13.0", "2.14.1+cpu", None)
    assert "(no CUDA) is installed: its CUDA kernels cannot load" in reason and "+torch2.14.cpu" in reason


def test_import_check_raises_on_a_recorded_release_other_than_the_running_one(monkeypatch):
    record = types.ModuleType("npr_cuda._built_for")
    record.TORCH_VERSION, record.CUDA_VERSION = "1.13.1", ""
    monkeypatch.setitem(sys.modules, "npr_cuda._built_for", record)
    monkeypatch.setattr(sys.modules["npr_cuda"], "_built_for", record, raising=False)
    with pytest.raises(ImportError, match=rf"built for torch 1\.13\.1, but torch {re.escape(torch.__version__)}"):
        check_torch_release()


def test_the_build_records_the_running_torch():
    from npr_cuda import _built_for

    assert _built_for.TORCH_VERSION == torch.__version__
    assert mismatch(_built_for.TORCH_VERSION, _built_for.CUDA_VERSION, torch.__version__, torch.version.cuda) is None
