"""npr-export --web in a real browser (headless Chromium, the page served on 127.0.0.1 by a plain
static server, every request outside its folder blocked and counted): the page's probabilities
are npr-detect's within 1e-5, its pixels are PIL's and its |NPR| map is npr_cuda.npr's, bit for
bit; broken and oversized files get a message naming them; JPEG's distance from PIL is measured.

Skipped, with the reason, where Chromium, Playwright or onnxruntime-web is missing, except under
NPR_REQUIRE_BROWSER=1 (.ci/run), where that is a failure."""

import hashlib
import json
import os
import pathlib
import shutil
import struct
import zlib

import numpy as np
import pytest
from helpers.browser import BrowserPage, chromium, require_browser, served
from helpers.checkpoints import write_random_detector
from helpers.image_folders import write_broken_files, write_image
from helpers.png_files import write_png_kinds
from PIL import Image
from torchvision import transforms as T

import npr_cuda
from npr_cuda.cli import detect as detect_cli
from npr_cuda.cli import export as export_cli
from npr_cuda.detector.data import IMAGENET_MEAN, IMAGENET_STD, load_rgb
from npr_cuda.detector.model import crop_to_even

pytest.importorskip("onnxscript")
MAX_PIXELS = 400_000  # the test pages' limit: below the default, so that an image over it stays small


@pytest.fixture(scope="module")
def browser():
    executable, _ = require_browser()
    with chromium(executable) as launched:
        yield launched


def export_page(folder, weights, *options):
    _, runtime = require_browser()
    export_cli.main(["--weights", weights, "--web", str(folder), "--onnxruntime-web", runtime, *options])
    return str(folder)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_random_detector(tmp_path_factory.mktemp("weights") / "w.pth", fc1_std=0.02)


@pytest.fixture(scope="module")
def page(browser, weights, tmp_path_factory):
    """The page at the images' own size, open; after the module, no request left its folder."""
    folder = export_page(tmp_path_factory.mktemp("site") / "page", weights, "--max-pixels", str(MAX_PIXELS))
    with served(folder) as url:
        opened = BrowserPage(browser, url)
        opened.folder = folder
        yield opened
        assert opened.outside == [], f"requests outside the page's folder: {opened.outside}"
        assert opened.errors == [], opened.errors


def detect(capsys, paths, *options):
    """npr-detect's probability for each file, by file name."""
    capsys.readouterr()
    detect_cli.main([*paths, *options, "--workers", "0", "--device", "cpu", "--quiet", "--jsonl"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return {os.path.basename(line["path"]): line["prob_fake"] for line in lines}


def sha256(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def expected_hashes(image: Image.Image):
    """The page's two hashes, computed here: the 8-bit RGB it prepared, and its NPR map (float32,
    CHW), which must be npr_cuda.npr of the normalised image, cropped to even sizes."""
    x = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(image)
    nprs = npr_cuda.npr(crop_to_even(x[None]))[0]
    return sha256(np.asarray(image)), sha256(nprs.numpy().astype("<f4"))


def assert_npr_detect_pixels_and_map(results, paths, weights, capsys):
    """The page's `results` for `paths`: npr-detect's probabilities within 1e-5, PIL's pixels and
    npr_cuda.npr's map bit for bit."""
    expected = detect(capsys, paths, "--weights", weights)
    assert sorted(results) == sorted(expected) and len(expected) == len(paths)
    for path in paths:
        name = os.path.basename(path)
        shown = results[name]
        assert float(shown["pFake"]) == pytest.approx(expected[name], abs=1e-5), name
        pixels, nprs = expected_hashes(load_rgb(path, rescale_high_bit_depth=True))
        assert shown["pixelsSha256"] == pixels, f"{name}: the page's pixels are not PIL's"
        assert shown["mapSha256"] == nprs, f"{name}: the page's map is not npr_cuda.npr's"
        assert shown["label"] == ("fake" if expected[name] > 0.5 else "real")
    assert max(expected.values()) - min(expected.values()) > 1e-3  # not all alike


def test_pngs_of_every_kind_match_npr_detect_pixels_and_map(page, tmp_path, weights, capsys):
    paths = write_png_kinds(tmp_path / "pngs")
    assert_npr_detect_pixels_and_map(page.run(paths), paths, weights, capsys)
    assert page.status()["text"].startswith(f"{len(paths)} of {len(paths)} images")


def folder_uri(folder) -> str:
    return pathlib.Path(folder).as_uri() + "/"


def test_opened_from_a_file_the_page_works_alike(browser, page, tmp_path, weights, capsys):
    """index.html opened from the folder (file://), where browsers fetch nothing and refuse
    modules: the page runs from its classic scripts and npr-file-assets.js, one thread."""
    opened = BrowserPage(browser, folder_uri(page.folder))
    try:
        assert opened.status()["state"] == "ready", opened.status()
        assert opened.page.eval_on_selector("#status", "e => e.dataset.threads") == "1"
        paths = write_png_kinds(tmp_path / "pngs")
        assert_npr_detect_pixels_and_map(opened.run(paths), paths, weights, capsys)
        assert opened.errors == [] and opened.outside == [], (opened.errors, opened.outside)
    finally:
        opened.page.close()


def test_opened_from_a_file_that_fails_the_page_says_to_serve_it(browser, page, tmp_path):
    """Where the file:// route fails (a browser that refuses it; here, the assets file removed),
    the message says how to serve the folder instead."""
    copy = shutil.copytree(page.folder, tmp_path / "page with a space")
    os.remove(copy / "npr-file-assets.js")
    opened = browser.new_page()
    try:
        opened.goto(folder_uri(copy) + "index.html")
        opened.wait_for_selector('#status[data-state="error"]')
        text = opened.inner_text("#status")
        assert "npr-file-assets.js could not be loaded" in text and "serve this folder" in text, text
    finally:
        opened.close()


def write_bomb_png(path, width=50_000, height=50_000):
    """A PNG whose header declares width x height pixels, with a few bytes of data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)))
        f.write(chunk(b"IEND", b""))
    return str(path)


def write_bomb_jpeg(path, side=50_000):
    """A small JPEG whose frame header is patched to declare side x side pixels."""
    write_image(str(path), size=(16, 16), fmt="JPEG")
    data = bytearray(open(path, "rb").read())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", side, side)
    open(path, "wb").write(bytes(data))
    return str(path)


def test_broken_and_oversized_files_get_a_message_naming_them(page, tmp_path):
    broken = write_broken_files(str(tmp_path / "broken"))  # a truncated PNG, text named .jpg
    large_png = write_image(str(tmp_path / "large.png"), size=(800, 600))
    large_jpeg = write_image(str(tmp_path / "large.jpg"), size=(700, 700), fmt="JPEG")
    bomb = write_bomb_png(tmp_path / "bomb.png")
    jpeg_bomb = write_bomb_jpeg(tmp_path / "bomb.jpg")
    good = write_image(str(tmp_path / "good.png"), size=(20, 18))
    results = page.run([*broken, large_png, bomb, large_jpeg, jpeg_bomb, good])
    for path in broken:
        name = os.path.basename(path)
        assert "failed" in results[name]["className"] and "cannot be read" in results[name]["error"], results[name]
    for path, size in (
        (large_png, "800x600 = 480000"),
        (bomb, "50000x50000 = 2500000000"),
        (large_jpeg, "700x700 = 490000"),
    ):
        error = results[os.path.basename(path)]["error"]
        assert f"{size} pixels, more than the limit of {MAX_PIXELS}" in error, error
    assert "pFake" in results["good.png"]  # the page goes on after them
    for figure in page.page.query_selector_all("figure.failed"):  # each message names its file
        assert figure.inner_text().startswith(figure.get_attribute("data-name") + ": ")
    assert "6 could not be used" in page.status()["text"]


def pil_resize_crop(image: Image.Image, resize, crop) -> Image.Image:
    steps = ([T.Resize((resize, resize))] if resize else []) + ([T.CenterCrop(crop)] if crop else [])
    return T.Compose(steps)(image) if steps else image


@pytest.mark.parametrize(
    "size,resize,crop",
    [((40, 48), 48, None), ((300, 7), 16, None), ((13, 9), 40, None), ((64, 64), 64, None), ((97, 61), 33, 17),
     ((40, 48), None, 64), ((40, 48), None, 41), ((46, 47), None, 41), ((5, 3), None, 4), ((50, 20), None, 21)],
)  # fmt: skip
def test_resize_and_crop_are_pillow_and_torchvision_exactly(page, size, resize, crop):
    """The page's Resize((N, N)) and CenterCrop(N) against torchvision on PIL images: shrinking,
    growing, odd offsets (Python rounds halves to even) and zero padding."""
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    expected = np.asarray(pil_resize_crop(Image.fromarray(pixels), resize, crop))
    config = {"resize": resize, "crop": crop, "min_side": 2}
    image = {"width": size[0], "height": size[1], "rgb": pixels.flatten().tolist()}
    prepared = page.call("prepare", image, config)["image"]
    assert (prepared["width"], prepared["height"]) == expected.shape[1::-1]
    assert np.array_equal(np.array(prepared["rgb"], dtype=np.uint8).reshape(expected.shape), expected)


def test_a_fixed_size_export_matches_npr_detect(browser, weights, tmp_path, capsys):
    folder = export_page(tmp_path / "fixed", weights, "--resize", "48", "--crop", "40")
    paths = [
        write_image(str(tmp_path / f"{w}x{h}.png"), size=(w, h), seed=w) for w, h in [(100, 70), (20, 31), (48, 48)]
    ]
    expected = detect(capsys, paths, "--weights", weights, "--resize", "48", "--crop", "40")
    with served(folder) as url:
        fixed = BrowserPage(browser, url)
        results = fixed.run(paths)
    assert fixed.outside == [] and fixed.errors == []
    for path in paths:
        shown = results[os.path.basename(path)]
        assert shown["size"] == "40x40" and float(shown["pFake"]) == pytest.approx(
            expected[os.path.basename(path)], abs=1e-5
        )
        assert shown["pixelsSha256"] == sha256(
            np.asarray(pil_resize_crop(load_rgb(path, rescale_high_bit_depth=True), 48, 40))
        )


def write_photo_files(folder):
    """Crops of four photos as JPEG (4:2:0 and 4:4:4 chroma) and as lossy and lossless WebP, and
    one of each JPEG variant: progressive, 4:2:2, CMYK, grey, an Exif orientation; by name, with
    one more: a lossless WebP with transparent and semi-transparent pixels."""
    from npr_cuda.detector.synthetic_fakes import load_photo

    os.makedirs(folder, exist_ok=True)
    paths = []

    def save(image, name, **options):
        paths.append(os.path.join(folder, name))
        image.save(paths[-1], **options)

    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photo = Image.fromarray(load_photo(name)).crop((96, 64, 256, 224))
        save(photo, f"{name}_q90_420.jpg", quality=90, subsampling=2)
        save(photo, f"{name}_q95_444.jpg", quality=95, subsampling=0)
        save(photo, f"{name}_lossy.webp", quality=80)
        save(photo, f"{name}_lossless.webp", lossless=True)
    save(photo, "progressive.jpg", quality=85, progressive=True)
    save(photo, "q85_422.jpg", quality=85, subsampling=1)
    save(photo.convert("CMYK"), "cmyk.jpg", quality=90)
    save(photo.convert("L"), "grey.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display": PIL does not, so neither must the page
    save(photo.crop((0, 0, 160, 120)), "exif_orientation_6.jpg", quality=90, exif=exif)
    rgba = np.array(photo.convert("RGBA"))
    rgba[..., 3] = np.random.default_rng(0).choice([0, 7, 128, 255], size=rgba.shape[:2])
    save(Image.fromarray(rgba), "alpha.webp", lossless=True)
    return paths


def test_files_the_browser_decodes_are_measured_against_pil(page, tmp_path, weights, capsys):
    """JPEG and WebP go through the browser's own decoder. Measured on photos against PIL's
    pixels and npr-detect's probabilities (docs/deploy.md quotes the table printed here): in
    Chromium, every JPEG and opaque WebP is PIL's to the level; a WebP's semi-transparent pixels
    are not (the canvas premultiplies them), its opaque pixels are."""
    paths = write_photo_files(tmp_path / "photos")
    results = page.run(paths)
    expected = detect(capsys, paths, "--weights", weights)
    print(f"\n{page.page.evaluate('navigator.userAgent')}")
    print("file, max |level difference|, mean, share of values that differ, |P(fake) difference|")
    measured = {}
    for path in paths:
        name = os.path.basename(path)
        pil = np.asarray(load_rgb(path, rescale_high_bit_depth=True), dtype=np.int16)
        ours = page.shown_pixels(name).astype(np.int16)
        assert ours.shape == pil.shape, name  # the same size, and so the same orientation
        difference = np.abs(ours - pil)
        probability = abs(float(results[name]["pFake"]) - expected[name])
        measured[name] = (difference, probability)
        print(f"{name}, {difference.max()}, {difference.mean():.4f}, {(difference > 0).mean():.4f}, {probability:.1e}")
    alpha = np.asarray(Image.open(paths[-1]))[..., 3]
    assert measured["alpha.webp"][0][alpha == 255].max() == 0 and measured["alpha.webp"][0].max() > 0
    for name, (difference, probability) in measured.items():
        if name != "alpha.webp":
            assert difference.max() == 0 and probability < 1e-5, name
