"""PNG files of every kind PIL reads, for the page's decoder: what PIL writes itself (8-bit RGB,
RGBA with partial alpha, grey, grey+alpha, palettes with transparency, 16-bit grey, 1 bit), and
what only a raw encoder makes (16-bit RGB and RGBA, 2- and 4-bit grey, Adam7 interlacing, every
row filter)."""

import os
import struct
import zlib

import numpy as np
from PIL import Image

from .image_folders import write_image

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filtered(rows, step):
    """Scanlines, each with a filter byte; the filter cycles through all five, row by row."""
    out, previous = bytearray(), bytes(len(rows[0]))
    for y, row in enumerate(rows):
        kind = y % 5
        out.append(kind)
        for x, value in enumerate(row):
            left = row[x - step] if x >= step else 0
            up_left = previous[x - step] if x >= step else 0
            predicted = [0, left, previous[x], (left + previous[x]) >> 1, _paeth(left, previous[x], up_left)][kind]
            out.append((value - predicted) & 255)
        previous = row
    return bytes(out)


def _scanlines(samples, depth):
    """Rows of packed bytes from an (H, W, C) array of samples: big-endian 16 bits, or bits MSB first."""
    height, width, channels = samples.shape
    if depth == 16:
        return [samples[y].astype(">u2").tobytes() for y in range(height)]
    if depth == 8:
        return [samples[y].astype(np.uint8).tobytes() for y in range(height)]
    return [np.packbits(np.unpackbits(samples[y].astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - depth :]).tobytes()
            for y in range(height)]  # fmt: skip


def write_raw_png(path, samples, colour_type, depth, interlace=False, palette=None):
    """`samples` (H, W, channels) written as a PNG of `colour_type` and bit `depth`, by hand."""
    height, width = samples.shape[:2]
    step = max(1, CHANNELS[colour_type] * depth // 8)
    data = b""
    for x0, y0, dx, dy in ADAM7 if interlace else [(0, 0, 1, 1)]:
        part = samples[y0::dy, x0::dx]
        if part.size:
            data += _filtered(_scanlines(part, depth), step)
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, int(interlace))
    body = _chunk(b"IHDR", header) + (_chunk(b"PLTE", bytes(palette)) if palette is not None else b"")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IDAT", zlib.compress(data)) + _chunk(b"IEND", b""))
    return str(path)


def write_png_kinds(folder):
    """One PNG of each kind, odd sizes among them; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = [write_image(os.path.join(folder, f"rgb_{w}x{h}.png"), size=(w, h), seed=w) for w, h in
             [(40, 48), (33, 41), (57, 30), (2, 2), (3, 5)]]  # fmt: skip
    for mode in ("L", "LA", "P", "I;16", "1"):
        paths.append(write_image(os.path.join(folder, f"mode_{mode.replace(';', '')}.png"), (29, 22), mode, seed=3))
    rgba = rng.integers(0, 256, (24, 31, 4), dtype=np.uint8)
    rgba[..., 3] = rng.choice([0, 1, 7, 128, 254, 255], size=(24, 31))  # partial alpha, and none
    paths.append(os.path.join(folder, "rgba_partial_alpha.png"))
    Image.fromarray(rgba, "RGBA").save(paths[-1])
    raw = [  # name, colour type, bit depth, interlaced, channels
        ("rgb16_interlaced", 2, 16, True, 3), ("rgba16", 6, 16, False, 4), ("grey4_interlaced", 0, 4, True, 1),
        ("grey2", 0, 2, False, 1), ("rgb8_interlaced", 2, 8, True, 3), ("grey_alpha16", 4, 16, False, 2),
    ]  # fmt: skip
    for name, colour_type, depth, interlace, channels in raw:
        samples = rng.integers(0, 1 << depth, (19, 13, channels))
        paths.append(write_raw_png(os.path.join(folder, f"{name}.png"), samples, colour_type, depth, interlace))
    palette = rng.integers(0, 256, 4 * 3)
    paths.append(write_raw_png(os.path.join(folder, "palette2.png"), rng.integers(0, 4, (9, 11, 1)), 3, 2,
                               palette=palette))  # fmt: skip
    return paths
