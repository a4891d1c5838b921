"""Fixtures for every test; helpers to import live in tests/helpers/."""

import random

import pytest
import torch


@pytest.fixture
def gen(request):
    """A torch.Generator with a fresh random seed, printed when the test fails."""
    seed = random.randrange(2**31)
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: {seed}")
    return torch.Generator().manual_seed(seed)


def pytest_addoption(parser):
    parser.addoption(
        "--require-cuda",
        action="store_true",
        help="fail, rather than skip, the tests marked cuda where no GPU or no CUDA kernels are there",
    )


def _cuda_ready():
    import npr_cuda

    return torch.cuda.is_available() and npr_cuda.cuda_kernels_built()


def pytest_collection_modifyitems(config, items):
    """With --require-cuda, the tests marked cuda lose their skip condition
    (helpers.tensors.requires_cuda), so that pytest_runtest_setup fails them instead."""
    if config.getoption("--require-cuda"):
        for item in items:
            if item.get_closest_marker("cuda") is not None:
                item.own_markers = [mark for mark in item.own_markers if mark.name != "skipif"]


def pytest_runtest_setup(item):
    if item.config.getoption("--require-cuda") and item.get_closest_marker("cuda") is not None and not _cuda_ready():
        pytest.fail("--require-cuda: no CUDA GPU visible, or npr_cuda built without its CUDA kernels")
