"""ctest pt2_runner_matches_python: exports a tiny detector (random weights, NPR window 3 at
(1, 2), so that the op's arguments cross into C++ too) as a .pt2 package, runs it with the C++
runner given as the argument, and checks each probability against the PyTorch model's (1e-5)."""

import os
import subprocess
import sys
import tempfile

import torch

from npr_cuda.detector import npr_resnet50
from npr_cuda.export import InputSpec, export_detector


def main(runner):
    torch.manual_seed(0)
    model = npr_resnet50(window=3, anchor=(1, 2)).eval()
    with torch.no_grad():
        model.fc1.weight.normal_(0, 0.02)  # probabilities off 0 and 1, where differences show
    batch = torch.randn(3, 3, 32, 32)
    with tempfile.TemporaryDirectory() as folder:
        package, saved = os.path.join(folder, "npr.pt2"), os.path.join(folder, "batch.pt")
        export_detector(model, package, InputSpec((3, 3), (1, 2), resize=32))
        torch.save(batch, saved)
        result = subprocess.run([runner, package, saved], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "# npr_cuda.window: 3,3" in lines and "# npr_cuda.anchor: 1,2" in lines, result.stdout
    got = torch.tensor([float(line.split("\t")[1]) for line in lines if not line.startswith("#")], dtype=torch.float64)
    with torch.no_grad():
        expected = model(batch).double().sigmoid().flatten()
    assert got.shape == expected.shape and torch.allclose(got, expected, rtol=0, atol=1e-5), (got, expected)
    assert float(expected.max() - expected.min()) > 1e-4, expected  # the images do differ
    print(f"C++ runner: {got.tolist()}; PyTorch: {expected.tolist()}")


if __name__ == "__main__":
    main(sys.argv[1])
