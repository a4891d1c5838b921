"""The NPR detector: architecture and logits against an independent transcription of the
official model, checkpoint loading, and rejection of files that are not checkpoints."""

import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from npr_cuda.detector import CheckpointError, load_detector, load_weights, npr_resnet50, read_state_dict
from npr_cuda.reference import official_npr


# ----------------------------------------------- the official model, written out independently
class OfficialBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class OfficialNPRResNet(nn.Module):
    """networks/resnet.py of the official repository, with its README's odd-size crop."""

    def __init__(self):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(512, 1)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        layers = [OfficialBottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [OfficialBottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        n, c, w, h = x.shape
        if -1 * w % 2 != 0:
            x = x[:, :, : w % 2 * -1, :]
        if -1 * h % 2 != 0:
            x = x[:, :, :, : h % 2 * -1]
        npr = x - F.interpolate(
            F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True),
            scale_factor=2,
            mode="nearest",
            recompute_scale_factor=True,
        )
        x = self.maxpool(self.relu(self.bn1(self.conv1(npr * 2.0 / 3.0))))
        x = self.avgpool(self.layer2(self.layer1(x)))
        return self.fc1(x.view(x.size(0), -1))


def randomised(model, gen):
    """Random weights and batch-norm statistics, so that every parameter matters."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(
                    torch.rand(tensor.shape, generator=gen) * 0.2 + 0.9
                    if tensor.dim() <= 1
                    else torch.randn(tensor.shape, generator=gen) * 0.05
                )
    return model.eval()


@pytest.fixture
def official(gen):
    return randomised(OfficialNPRResNet(), gen)


def test_state_dict_matches_the_official_model(official):
    ours = npr_resnet50()
    theirs = official.state_dict()
    assert list(ours.state_dict()) == list(theirs)  # names and order
    assert len(theirs) == 146
    assert all(ours.state_dict()[k].shape == v.shape for k, v in theirs.items())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in official.parameters())


@pytest.mark.parametrize("size", [(64, 64), (65, 64), (64, 67), (57, 43)])
def test_logits_equal_the_official_model(official, size, gen):
    ours = npr_resnet50().eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.randn(3, 3, *size, generator=gen)
    with torch.no_grad():
        expected = official(x)
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=0)
        # The official NPR inside our model: the same numbers, so the op is the only change.
        ours.npr_impl = official_npr
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=0)


def test_training_step_gradients_match_the_official_model(official, gen):
    ours = npr_resnet50()
    ours.load_state_dict(official.state_dict(), strict=True)
    ours.train(), official.train()
    x = torch.randn(2, 3, 32, 32, generator=gen)
    for model in (ours, official):
        model.zero_grad()
        F.binary_cross_entropy_with_logits(model(x).squeeze(1), torch.tensor([0.0, 1.0])).backward()
    for (name, a), (_, b) in zip(ours.named_parameters(), official.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7, msg=name)


# ---------------------------------------------------------------------------------- loading
def test_loads_a_raw_state_dict(official, tmp_path, gen):
    path = tmp_path / "NPR.pth"
    torch.save(official.state_dict(), path)
    model = load_detector(str(path))
    x = torch.randn(2, 3, 48, 48, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(model(x), official(x), rtol=0, atol=0)
    assert not model.training


@pytest.mark.parametrize("wrap", ["training_checkpoint", "data_parallel"])
def test_loads_training_checkpoints(official, tmp_path, wrap):
    state = official.state_dict()
    if wrap == "training_checkpoint":
        obj = {"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3}
    else:
        obj = {"module." + k: v for k, v in state.items()}
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    loaded = load_weights(npr_resnet50(), str(path)).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_rejects_a_state_dict_that_does_not_fit(official, tmp_path):
    state = dict(official.state_dict())
    del state["fc1.weight"]
    state["fc.weight"] = torch.zeros(1, 2048)
    state["conv1.weight"] = torch.zeros(64, 3, 7, 7)
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        load_weights(npr_resnet50(), str(path))
    message = str(error.value)
    assert "missing (1): fc1.weight" in message
    assert "unexpected (1): fc.weight" in message
    assert "wrong shape (1): conv1.weight (64, 3, 7, 7) (model: (64, 3, 3, 3))" in message


class Arbitrary:
    pass


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the plain pickle of an object
@pytest.mark.parametrize("content", ["text", "pickled_object", "not_tensors", "empty_dict"])
def test_rejects_files_that_are_not_checkpoints(tmp_path, content):
    path = tmp_path / "bad.pth"
    if content == "text":
        path.write_text("this is not a checkpoint")
    elif content == "pickled_object":
        with open(path, "wb") as f:
            pickle.dump(Arbitrary(), f)
    elif content == "not_tensors":
        torch.save({"weights": [1, 2, 3]}, path)
    else:
        torch.save({}, path)
    with pytest.raises(CheckpointError, match=f"checkpoint {path}"):
        read_state_dict(str(path))


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_state_dict(str(tmp_path / "absent.pth"))
