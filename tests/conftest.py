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
