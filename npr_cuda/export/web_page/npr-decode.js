// A file to 8-bit RGB pixels at its own size, with npr-detect's pixel limit checked first.
//
// PNGs are decoded by npr-png.js, exactly as PIL reads them. Other formats (JPEG, WebP, GIF, BMP)
// go through the browser's decoder with no colour conversion and no premultiplication asked for,
// and a JPEG's Exif orientation hidden from it (PIL ignores it); the page's 2D canvas still
// stores premultiplied pixels, so a semi-transparent pixel of such a file loses precision, and
// another browser's JPEG decoder may differ from libjpeg-turbo's (PIL's) by a few levels.
//
// A classic script, not a module, so that the page also runs opened from a file (browsers
// refuse modules there): it adds what it offers to globalThis.NprPage.

(() => {
  'use strict';

  const { PngError, decodePng, isPng } = globalThis.NprPage;

  class ImageError extends Error {
    constructor(kind, message) {
      super(message);
      this.kind = kind; // 'too-large' or 'unreadable'
    }
  }

  // Throws the pixel limit's message, as npr_cuda.detector.data.load_rgb words it.
  function pixelCheck(maxPixels) {
    return (width, height) => {
      if (width * height > maxPixels) {
        throw new ImageError(
          'too-large',
          `${width}x${height} = ${width * height} pixels, more than the limit of ${maxPixels} (npr-export --max-pixels sets it)`,
        );
      }
    };
  }

  const u16be = (b, i) => (b[i] << 8) | b[i + 1];
  const u16le = (b, i) => b[i] | (b[i + 1] << 8);
  const u24le = (b, i) => b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);

  // The size a JPEG's frame header declares, or null.
  function jpegSize(b) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) return null;
      const marker = b[i + 1];
      if (marker === 0xff) { i += 1; continue; }
      const isFrame = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
      if (isFrame) return [u16be(b, i + 7), u16be(b, i + 5)];
      i += 2 + u16be(b, i + 2);
    }
    return null;
  }

  // The size a WebP's first chunk declares (VP8, VP8L or VP8X), or null.
  function webpSize(b) {
    const chunk = String.fromCharCode(...b.subarray(12, 16));
    if (chunk === 'VP8X' && b.length >= 30) return [u24le(b, 24) + 1, u24le(b, 27) + 1];
    if (chunk === 'VP8L' && b.length >= 25) {
      const bits = b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24);
      return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
    }
    if (chunk === 'VP8 ' && b.length >= 30) return [u16le(b, 26) & 0x3fff, u16le(b, 28) & 0x3fff];
    return null;
  }

  // [width, height] from a file's header, before decoding, for the formats the page names; else null.
  function declaredSize(b) {
    const text = (start, end) => String.fromCharCode(...b.subarray(start, end));
    if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) return jpegSize(b);
    if (b.length >= 16 && text(0, 4) === 'RIFF' && text(8, 12) === 'WEBP') return webpSize(b);
    if (b.length >= 10 && text(0, 4) === 'GIF8') return [u16le(b, 6), u16le(b, 8)];
    return null;
  }

  // A copy of a JPEG whose Exif segments are renamed, so that the browser does not apply their
  // orientation: PIL does not, and Chromium rotates even with imageOrientation 'none'.
  function withoutExif(b) {
    const copy = b.slice();
    let i = 2;
    while (i + 10 < copy.length && copy[i] === 0xff && copy[i + 1] !== 0xda) {
      const isExif = copy[i + 1] === 0xe1 && String.fromCharCode(...copy.subarray(i + 4, i + 8)) === 'Exif';
      if (isExif) copy[i + 4] = 0x58; // 'Xxif': an APP1 segment no decoder reads
      i += 2 + u16be(copy, i + 2);
    }
    return copy;
  }

  async function decodeWithBrowser(bytes, checkSize) {
    const declared = declaredSize(bytes);
    if (declared) checkSize(...declared);
    const isJpeg = bytes[0] === 0xff && bytes[1] === 0xd8;
    let bitmap;
    try {
      bitmap = await createImageBitmap(new Blob([isJpeg ? withoutExif(bytes) : bytes]), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    } catch (error) {
      throw new ImageError('unreadable', `cannot be read as an image (${error.message || error.name})`);
    }
    const { width, height } = bitmap;
    try {
      checkSize(width, height); // formats whose header the page does not read
      const context = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
      context.drawImage(bitmap, 0, 0);
      const rgba = context.getImageData(0, 0, width, height).data;
      const rgb = new Uint8Array(width * height * 3);
      for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
        rgb[j] = rgba[i];
        rgb[j + 1] = rgba[i + 1];
        rgb[j + 2] = rgba[i + 2];
      }
      return { width, height, rgb };
    } finally {
      bitmap.close();
    }
  }

  // {width, height, rgb} of a File; ImageError('too-large') before decoding an image over
  // `maxPixels`, ImageError('unreadable') for a file that is not a readable image.
  async function decodeImage(file, maxPixels) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const checkSize = pixelCheck(maxPixels);
    if (!isPng(bytes)) return decodeWithBrowser(bytes, checkSize);
    try {
      return await decodePng(bytes, checkSize);
    } catch (error) {
      if (error instanceof PngError) throw new ImageError('unreadable', `cannot be read as a PNG image (${error.message})`);
      throw error;
    }
  }

  Object.assign((globalThis.NprPage ??= {}), { ImageError, pixelCheck, declaredSize, decodeImage });
})();
