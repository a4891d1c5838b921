// PNG to 8-bit RGB exactly as npr-detect reads it (PIL, then npr_cuda.detector.data.to_rgb):
// no colour management (gAMA, iCCP and sRGB chunks are ignored, as PIL ignores them), alpha
// dropped without compositing (PIL's convert('RGB')), 16-bit samples reduced to their high byte,
// 1-, 2- and 4-bit greys scaled to 0..255, palettes looked up. A browser's own decoder would
// composite or premultiply semi-transparent pixels and may round 16-bit samples: that is why PNGs
// are decoded here, with the browser's native inflate (DecompressionStream).
//
// A classic script, not a module, so that the page also runs opened from a file (browsers
// refuse modules there): it adds what it offers to globalThis.NprPage.

(() => {
  'use strict';

  const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
  const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }; // by colour type: grey, RGB, palette, grey+alpha, RGBA
  // Adam7 passes: first column, first row, column step, row step.
  const ADAM7 = [
    [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
  ];

  class PngError extends Error {}

  function isPng(bytes) {
    return bytes.length >= 8 && SIGNATURE.every((value, i) => bytes[i] === value);
  }

  function readUint32(bytes, offset) {
    return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3]) >>> 0;
  }

  // The header and the chunks the pixels need: {width, height, depth, colourType, interlace, palette, data}.
  function readChunks(bytes) {
    if (!isPng(bytes)) throw new PngError('not a PNG file');
    const idat = [];
    let header = null;
    let palette = null;
    let offset = 8;
    let ended = false;
    while (offset + 8 <= bytes.length) {
      const length = readUint32(bytes, offset);
      const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
      const body = bytes.subarray(offset + 8, offset + 8 + length);
      if (body.length < length) throw new PngError(`truncated ${type} chunk`);
      if (type === 'IHDR') header = readHeader(body);
      else if (type === 'PLTE') palette = body;
      else if (type === 'IDAT') idat.push(body);
      else if (type === 'IEND') { ended = true; break; }
      offset += 12 + length;
    }
    if (!header) throw new PngError('no IHDR chunk');
    if (!idat.length) throw new PngError('no image data (IDAT)');
    if (!ended) throw new PngError('truncated file (no IEND chunk)');
    if (header.colourType === 3 && !palette) throw new PngError('a palette image without a PLTE chunk');
    return { ...header, palette, data: idat };
  }

  function readHeader(body) {
    const header = {
      width: readUint32(body, 0), height: readUint32(body, 4), depth: body[8], colourType: body[9], interlace: body[12],
    };
    const allowed = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] }[header.colourType];
    if (!allowed || !allowed.includes(header.depth)) {
      throw new PngError(`unsupported colour type ${header.colourType} with bit depth ${header.depth}`);
    }
    if (header.width === 0 || header.height === 0) throw new PngError('an image of 0 pixels');
    if (header.interlace > 1) throw new PngError(`unknown interlace method ${header.interlace}`);
    return header;
  }

  async function inflate(parts) {
    const stream = new Blob(parts).stream().pipeThrough(new DecompressionStream('deflate'));
    try {
      return new Uint8Array(await new Response(stream).arrayBuffer());
    } catch (error) {
      throw new PngError(`corrupt or truncated image data (${error.message})`);
    }
  }

  function paeth(a, b, c) {
    const p = a + b - c;
    const pa = Math.abs(p - a);
    const pb = Math.abs(p - b);
    const pc = Math.abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
  }

  // Undoes the filters of `rows` scanlines of `stride` bytes starting at `offset` in `data`; `step`
  // is the filter's byte distance (bytes per pixel, at least 1). Returns the scanlines, unfiltered.
  function unfilter(data, offset, rows, stride, step) {
    const out = new Uint8Array(rows * stride);
    const zeros = new Uint8Array(stride);
    for (let y = 0; y < rows; y++) {
      const filter = data[offset + y * (stride + 1)];
      const line = data.subarray(offset + y * (stride + 1) + 1, offset + (y + 1) * (stride + 1));
      const row = out.subarray(y * stride, (y + 1) * stride);
      const up = y > 0 ? out.subarray((y - 1) * stride, y * stride) : zeros;
      if (filter > 4) throw new PngError(`unknown row filter ${filter}`);
      for (let x = 0; x < stride; x++) {
        const left = x >= step ? row[x - step] : 0;
        let predicted = 0;
        if (filter === 1) predicted = left;
        else if (filter === 2) predicted = up[x];
        else if (filter === 3) predicted = (left + up[x]) >> 1;
        else if (filter === 4) predicted = paeth(left, up[x], x >= step ? up[x - step] : 0);
        row[x] = (line[x] + predicted) & 255;
      }
    }
    return out;
  }

  // The 8-bit RGB of a grey or palette sample, by PIL's rules (see the head of this file).
  function toRgbLookup(png) {
    const { depth, colourType, palette } = png;
    if (colourType === 3) {
      return (index) => {
        const at = index * 3;
        return at + 2 < palette.length ? [palette[at], palette[at + 1], palette[at + 2]] : [0, 0, 0];
      };
    }
    const scale = depth < 8 ? 255 / ((1 << depth) - 1) : 1;
    return (value) => {
      const v = depth === 16 ? value >> 8 : value * scale;
      return [v, v, v];
    };
  }

  // Scanlines of one pass into the RGB image: pixels (x0 + i * dx, y0 + j * dy).
  function placePass(png, lines, stride, passWidth, passHeight, [x0, y0, dx, dy], rgb) {
    const channels = CHANNELS[png.colourType];
    const { depth, width } = png;
    const grey = toRgbLookup(png);
    const sample = (line, index) => {
      if (depth === 16) return (line[index * 2] << 8) | line[index * 2 + 1];
      if (depth === 8) return line[index];
      const bit = index * depth;
      return (line[bit >> 3] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
    };
    for (let j = 0; j < passHeight; j++) {
      const line = lines.subarray(j * stride, (j + 1) * stride);
      for (let i = 0; i < passWidth; i++) {
        const out = ((y0 + j * dy) * width + x0 + i * dx) * 3;
        if (channels >= 3) {
          for (let c = 0; c < 3; c++) rgb[out + c] = depth === 16 ? sample(line, i * channels + c) >> 8 : line[i * channels + c];
        } else {
          const [r, g, b] = grey(sample(line, i * channels));
          rgb[out] = r;
          rgb[out + 1] = g;
          rgb[out + 2] = b;
        }
      }
    }
  }

  // {width, height, rgb: Uint8Array (height * width * 3, row-major)} of a PNG file's bytes, after a
  // pixel check: `checkSize(width, height)` runs before anything is inflated and may throw.
  async function decodePng(bytes, checkSize) {
    const png = readChunks(bytes);
    checkSize(png.width, png.height);
    const data = await inflate(png.data);
    const channels = CHANNELS[png.colourType];
    const bitsPerPixel = channels * png.depth;
    const step = Math.max(1, bitsPerPixel >> 3);
    const rgb = new Uint8Array(png.width * png.height * 3);
    const passes = png.interlace ? ADAM7 : [[0, 0, 1, 1]];
    let offset = 0;
    for (const pass of passes) {
      const [x0, y0, dx, dy] = pass;
      const passWidth = Math.ceil((png.width - x0) / dx);
      const passHeight = Math.ceil((png.height - y0) / dy);
      if (passWidth <= 0 || passHeight <= 0) continue;
      const stride = Math.ceil((passWidth * bitsPerPixel) / 8);
      if (offset + passHeight * (stride + 1) > data.length) throw new PngError('truncated image data');
      const lines = unfilter(data, offset, passHeight, stride, step);
      placePass(png, lines, stride, passWidth, passHeight, pass, rgb);
      offset += passHeight * (stride + 1);
    }
    return { width: png.width, height: png.height, rgb };
  }

  Object.assign((globalThis.NprPage ??= {}), { PngError, isPng, readChunks, decodePng });
})();
