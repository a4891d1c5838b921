"""Images/s of the page npr-export --web writes, in headless Chromium, end to end: from handing
the files to the page's file input to the last result shown (decode, preparation, the detector
and the NPR map in onnxruntime-web, the drawing).

    python bench/bench_web_page.py --sizes 256,1024 --images 16 --json out/web_page.json

The page is exported from random weights (the speed does not depend on them) into a temporary
folder, with onnxruntime-web from --onnxruntime-web (default: build/npm, where .ci/run installs
it), and opened three ways: served on 127.0.0.1 as a plain static server serves it (one WASM
thread), served cross-origin isolated (COOP and COEP headers: onnxruntime-web's threads), and
from the folder (file://, one thread; the runtime and models come from npr-file-assets.js).
ready_s is the time from opening the page to its "ready". Each size's images are random PNGs;
one of them is run first, untimed (the session's first run of a shape), then the timed batch is
given repeats times and the median is reported.
"""

import argparse
import contextlib
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from run_record import write_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the tests' page driver: one copy of it
from helpers.browser import ISOLATION_HEADERS, BrowserPage, chromium, chromium_path, runtime_path, served  # noqa: E402

from npr_cuda.detector import npr_resnet50  # noqa: E402
from npr_cuda.export import InputSpec  # noqa: E402
from npr_cuda.export.web import export_web, find_runtime  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,1024", help="image sides, comma-separated")
    parser.add_argument("--images", type=int, default=16, help="images per timed batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per size and setting")
    parser.add_argument(
        "--settings", default="plain,isolated,file", help="plain (1 thread), isolated (threads), file (file://)"
    )
    parser.add_argument("--onnxruntime-web", default=runtime_path())
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def write_images(folder, size, count, tag):
    rng = np.random.default_rng(size)
    paths = []
    for i in range(count):
        paths.append(os.path.join(folder, f"{tag}_{size}_{i}.png"))
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(paths[-1], compress_level=1)
    return paths


def time_batches(page, paths, repeats):
    """Seconds per batch of `paths`, each batch given `repeats` times."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        results = page.run(paths)
        seconds.append(time.perf_counter() - start)
        failed = [result for result in results.values() if "pFake" not in result]
        if failed:
            raise SystemExit(f"bench_web_page: the page failed on {failed[0]['name']}: {failed[0].get('error')}")
    return seconds


@contextlib.contextmanager
def page_url(folder, setting):
    """The URL of the page's folder, served (plain or isolated) or as a file:// URL."""
    if setting == "file":
        yield pathlib.Path(folder).as_uri() + "/"
        return
    with served(folder, ISOLATION_HEADERS if setting == "isolated" else None) as url:
        yield url


def measure(browser, folder, setting, sizes, images, repeats, work):
    rows = []
    with page_url(folder, setting) as url:
        start = time.perf_counter()
        page = BrowserPage(browser, url)
        ready_s = time.perf_counter() - start
        threads = int(page.page.get_attribute("#status", "data-threads"))
        for size in sizes:
            time_batches(page, write_images(work, size, 1, "warm"), 1)
            seconds = time_batches(page, write_images(work, size, images, "timed"), repeats)
            median = statistics.median(seconds)
            rows.append(
                {"setting": setting, "threads": threads, "size": size, "images": images,
                 "images_per_s": images / median, "seconds": seconds, "ready_s": ready_s}
            )  # fmt: skip
            print(f"{setting:9} {threads:>7} {size:>5} {images / median:9.2f} {ready_s:8.2f}")
        if page.outside or page.errors:
            raise SystemExit(f"bench_web_page: requests outside the page {page.outside}, errors {page.errors}")
        version = page.page.evaluate("navigator.userAgent")
    return rows, version


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "CPU"


def main(argv=None):
    args = parse_args(argv)
    executable = chromium_path()
    if executable is None:
        raise SystemExit("bench_web_page: no Chromium (apt-get install chromium, or NPR_CHROMIUM=PATH)")
    runtime = find_runtime(args.onnxruntime_web)
    sizes = [int(size) for size in args.sizes.split(",")]
    torch.manual_seed(0)
    model = npr_resnet50().eval()
    rows = []
    with tempfile.TemporaryDirectory() as work, chromium(executable) as browser:
        folder = os.path.join(work, "page")
        export_web(model, folder, InputSpec(model.window, model.anchor), runtime)
        print(f"{'setting':9} {'threads':>7} {'size':>5} {'images/s':>9} {'ready_s':>8}")
        for setting in args.settings.split(","):
            measured, user_agent = measure(browser, folder, setting, sizes, args.images, args.repeats, work)
            rows += measured
    device = f"{cpu_name()}, {os.cpu_count()} cores; {user_agent}"
    print(device)
    if args.json:
        write_report(
            args.json, "bench/bench_web_page.py", argv or sys.argv[1:], device=device, args=vars(args), rows=rows
        )


if __name__ == "__main__":
    main()
