"""npr_cuda.detector.speed: the detector's fast inference keeps the official numbers, each
option does what it says and nothing else, and impossible combinations are refused."""

import copy

import pytest
import torch
from torch import nn

from npr_cuda.detector import npr_resnet50, speed
from npr_cuda.detector.speed import (
    COMPILE_MIN_IMAGES,
    Compiled,
    SpeedOptionError,
    SpeedOptions,
    auto_compiles,
    fast_detector,
    fold_batch_norms,
)
from npr_cuda.reference import formula_npr

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def official():
    """The official computation: the model in eval mode, the NPR formula, NCHW, no folding; with
    batch-norm statistics and weights far from their initial values, so that folding shows."""
    torch.manual_seed(0)
    model = npr_resnet50(npr_impl=formula_npr)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1, 0.2)
                module.bias.normal_(0, 0.2)
        model.fc1.weight.normal_(0, 0.2)  # logits of a few units: probabilities spread out
    return model.eval()


def official_logits(model, images):
    with torch.no_grad():
        return model(images)


def test_folding_keeps_the_logits_and_leaves_the_model_alone(official, gen):
    images = torch.randn(4, 3, 40, 36, generator=gen)
    folded = fold_batch_norms(official)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in official.modules()) == 1 + 3 * 3 + 4 * 3 + 2
    with torch.no_grad():
        torch.testing.assert_close(folded(images), official_logits(official, images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("size", [(32, 32), (33, 27)])  # odd sizes: cropped to even, as officially
def test_default_probabilities_equal_the_official_path(official, gen, layout, size):
    images = torch.randn(5, 3, *size, generator=gen)
    if layout == "channels_last":
        images = images.contiguous(memory_format=torch.channels_last)
    model = copy.deepcopy(official)
    model.npr_impl = npr_resnet50().npr_impl  # the fused op
    detector = fast_detector(model, CPU, SpeedOptions(compile="off"), images=10)
    assert "torch.compile" not in detector.description and "autocast" not in detector.description
    expected = official_logits(official, images).sigmoid()
    torch.testing.assert_close(detector(images).sigmoid(), expected, rtol=0, atol=1e-6)


def test_compiled_detector_keeps_the_numbers_and_bounds_its_graphs(official, gen):
    """Batch sizes share one graph (the batch is dynamic); new image sizes compile at most a few
    graphs before dynamo makes the sizes dynamic too."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    detector = fast_detector(official, CPU, SpeedOptions(compile="on"))
    assert "torch.compile" in detector.description
    batches = [(4, 32, 32), (3, 32, 32), (2, 32, 32), (2, 40, 48), (2, 36, 36), (3, 44, 30), (2, 28, 52)]
    for batch, height, width in batches:
        images = torch.randn(batch, 3, height, width, generator=gen)
        expected = official_logits(official, images)
        torch.testing.assert_close(detector(images), expected, rtol=1e-5, atol=1e-5)
    assert detector.run.compiled is not None  # it really ran compiled
    assert 1 <= torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 3


def test_bf16_autocast_is_opt_in_and_changes_the_numbers_a_little(official, gen):
    images = torch.randn(4, 3, 32, 32, generator=gen)
    detector = fast_detector(official, CPU, SpeedOptions(compile="off", amp="bf16"))
    assert "bf16 autocast" in detector.description
    logits, expected = detector(images), official_logits(official, images)
    assert logits.dtype == torch.float32
    assert not torch.equal(logits, expected)
    torch.testing.assert_close(logits, expected, rtol=0.1, atol=0.5)


def test_auto_compiles_long_cpu_runs_only():
    options = SpeedOptions()
    assert not options.compiles(CPU, COMPILE_MIN_IMAGES - 1)
    assert options.compiles(CPU, COMPILE_MIN_IMAGES)
    assert not options.compiles(CUDA, 10**6)  # unmeasured on GPUs: on asks for it
    assert SpeedOptions(compile="on").compiles(CPU, 1) and SpeedOptions(compile="on").compiles(CUDA, 1)
    assert not SpeedOptions(compile="off").compiles(CPU, 10**6)
    assert auto_compiles("auto", CPU, True) and not auto_compiles("off", CPU, True)


@pytest.mark.parametrize(
    "options, device, fixed_size, message",
    [
        (SpeedOptions(cuda_graphs=True), CPU, True, "CUDA graphs need a CUDA device, not cpu"),
        (SpeedOptions(cuda_graphs=True), CUDA, False, "CUDA graphs need one image size"),
        (SpeedOptions(cuda_graphs=True, compile="off"), CUDA, True, "they need compile auto or on"),
        (SpeedOptions(compile="yes"), CPU, True, "compile: expected one of"),
        (SpeedOptions(amp="fp8"), CPU, True, "amp: expected one of"),
    ],
)
def test_impossible_combinations_are_refused(options, device, fixed_size, message):
    with pytest.raises(SpeedOptionError, match=message):
        options.check(device, fixed_size)


def test_a_failed_compilation_falls_back_with_one_message(monkeypatch, capsys):
    def broken_compile(module, **settings):
        def run(*args):
            raise torch._inductor.exc.InductorError(RuntimeError("no C++ compiler"), None)

        return run

    monkeypatch.setattr(speed.torch, "compile", broken_compile)
    double = Compiled(lambda x: 2 * x)
    assert torch.equal(double(torch.ones(3)), torch.full((3,), 2.0))
    assert torch.equal(double(torch.ones(2)), torch.full((2,), 2.0))
    assert double.compiled is None
    assert capsys.readouterr().err.count("torch.compile failed") == 1
