"""The screenshot of the page npr-export --web writes, for docs/deploy.md, made in headless
Chromium by the browser tests' driver:

    python bench/web_page_screenshot.py docs/web-page.png

The detector has random weights (no trained checkpoint ships with the repository): the numbers
on the screenshot show the layout, not a verdict. Its images are a crop of a photograph shipped
with scikit-image, another crop through a generator that ends in a transposed convolution
(npr_cuda.detector.synthetic_fakes, npr-demo's fakes: its |NPR| map shows the up-sampler's
lattice), and a file that is not an image. The PNG is quantised to 256 colours, to stay small.
"""

import argparse
import os
import sys
import tempfile

import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the tests' page driver: one copy of it
from helpers.browser import BrowserPage, chromium, chromium_path, runtime_path, served  # noqa: E402

from npr_cuda.detector import npr_resnet50  # noqa: E402
from npr_cuda.detector.synthetic_fakes import make_split  # noqa: E402
from npr_cuda.export import InputSpec  # noqa: E402
from npr_cuda.export.web import export_web, find_runtime  # noqa: E402


def write_examples(folder):
    split = make_split(["coffee"], crops_per_photo=1, size=192, seed=3)
    paths = []
    for name, key in (("photo.png", "real"), ("upsampled.png", "transposed_conv")):
        pixels = (split[key][0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        paths.append(os.path.join(folder, name))
        Image.fromarray(pixels).save(paths[-1])
    paths.append(os.path.join(folder, "notes.jpg"))
    with open(paths[-1], "w") as f:
        f.write("not an image")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the PNG to write")
    parser.add_argument("--onnxruntime-web", default=runtime_path())
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = npr_resnet50().eval()
    with tempfile.TemporaryDirectory() as work, chromium(chromium_path()) as browser:
        folder = os.path.join(work, "page")
        export_web(model, folder, InputSpec(model.window, model.anchor), find_runtime(args.onnxruntime_web))
        with served(folder) as url:
            page = BrowserPage(browser, url)
            page.run(write_examples(work))
            shot = os.path.join(work, "shot.png")
            page.page.screenshot(path=shot, full_page=True)
            if page.outside or page.errors:
                raise SystemExit(f"web_page_screenshot: outside requests {page.outside}, errors {page.errors}")
        image = Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        image.save(args.output, optimize=True)
    print(f"wrote {args.output}: {image.size[0]}x{image.size[1]}, {os.path.getsize(args.output)} bytes")


if __name__ == "__main__":
    main()
