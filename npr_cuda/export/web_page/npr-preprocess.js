// From decoded RGB to the detector's input, by npr-detect's rules (npr_cuda.detector.data):
// an export's --resize N (torchvision's Resize((N, N)) on a PIL image: Pillow's bilinear
// resampling, ported here to the integer), then --crop N (torchvision's CenterCrop: zero padding
// when the image is smaller, Python's round-half-to-even for the offset), then ToTensor and the
// ImageNet normalisation in float32, in torch's order of operations, so that the values are
// bitwise those of npr-detect. Without --resize and --crop, the image is used at its own size
// (the model crops odd sizes to even itself).
//
// A classic script, not a module, so that the page also runs opened from a file (browsers
// refuse modules there): it adds what it offers to globalThis.NprPage.

(() => {
  'use strict';

  const MEAN = [0.485, 0.456, 0.406];
  const STD = [0.229, 0.224, 0.225];
  const PRECISION_BITS = 32 - 8 - 2; // Pillow's fixed-point resampling (libImaging/Resample.c)

  // Pillow's precompute_coeffs for the bilinear filter: per output index, the first input index,
  // the number of inputs and their fixed-point weights.
  function bilinearCoefficients(inSize, outSize) {
    const scale = inSize / outSize;
    const filterScale = Math.max(scale, 1);
    const support = filterScale; // the bilinear filter's support is 1
    const kernelSize = Math.ceil(support) * 2 + 1;
    const bounds = new Int32Array(outSize * 2);
    const weights = new Float64Array(outSize * kernelSize);
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      const xmin = Math.max(0, Math.trunc(center - support + 0.5));
      const count = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
      let total = 0;
      const w = new Float64Array(count);
      for (let x = 0; x < count; x++) {
        const distance = Math.abs((x + xmin - center + 0.5) * (1 / filterScale));
        w[x] = distance < 1 ? 1 - distance : 0;
        total += w[x];
      }
      for (let x = 0; x < count; x++) {
        const normalised = total !== 0 ? w[x] / total : w[x];
        const fixed = normalised * (1 << PRECISION_BITS);
        weights[xx * kernelSize + x] = normalised < 0 ? Math.trunc(-0.5 + fixed) : Math.trunc(0.5 + fixed);
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = count;
    }
    return { bounds, weights, kernelSize };
  }

  const clip8 = (sum) => Math.min(255, Math.max(0, Math.floor(sum / (1 << PRECISION_BITS))));

  // One resampling pass along rows (horizontal) or columns (vertical) of an RGB image.
  function resamplePass(rgb, width, height, outSize, horizontal) {
    const { bounds, weights, kernelSize } = bilinearCoefficients(horizontal ? width : height, outSize);
    const outWidth = horizontal ? outSize : width;
    const outHeight = horizontal ? height : outSize;
    const out = new Uint8Array(outWidth * outHeight * 3);
    const half = 1 << (PRECISION_BITS - 1);
    for (let y = 0; y < outHeight; y++) {
      for (let x = 0; x < outWidth; x++) {
        const o = horizontal ? x : y;
        const first = bounds[o * 2];
        const count = bounds[o * 2 + 1];
        for (let c = 0; c < 3; c++) {
          let sum = half;
          for (let k = 0; k < count; k++) {
            const at = horizontal ? (y * width + first + k) * 3 + c : ((first + k) * width + x) * 3 + c;
            sum += rgb[at] * weights[o * kernelSize + k];
          }
          out[(y * outWidth + x) * 3 + c] = clip8(sum);
        }
      }
    }
    return out;
  }

  // Image.resize((size, size), BILINEAR) of Pillow on an RGB image: horizontal pass, then vertical.
  function resizeBilinear(image, size) {
    let { width, height, rgb } = image;
    if (width === size && height === size) return image;
    if (width !== size) {
      rgb = resamplePass(rgb, width, height, size, true);
      width = size;
    }
    if (height !== size) rgb = resamplePass(rgb, width, height, size, false);
    return { width: size, height: size, rgb };
  }

  // Python's round() of a multiple of 0.5: halves go to the even neighbour.
  function roundHalfEven(value) {
    const floor = Math.floor(value);
    const rest = value - floor;
    if (rest !== 0.5) return Math.round(value);
    return floor % 2 === 0 ? floor : floor + 1;
  }

  // torchvision's CenterCrop(size) of a PIL image: zero padding first where the image is smaller.
  function centerCrop(image, size) {
    const { width, height, rgb } = image;
    const padLeft = size > width ? Math.floor((size - width) / 2) : 0;
    const padTop = size > height ? Math.floor((size - height) / 2) : 0;
    const paddedWidth = Math.max(width, size);
    const paddedHeight = Math.max(height, size);
    const left = roundHalfEven((paddedWidth - size) / 2) - padLeft;
    const top = roundHalfEven((paddedHeight - size) / 2) - padTop;
    const out = new Uint8Array(size * size * 3); // zeros: the padding
    for (let y = 0; y < size; y++) {
      const sourceY = y + top;
      if (sourceY < 0 || sourceY >= height) continue;
      for (let x = 0; x < size; x++) {
        const sourceX = x + left;
        if (sourceX < 0 || sourceX >= width) continue;
        const from = (sourceY * width + sourceX) * 3;
        out.set(rgb.subarray(from, from + 3), (y * size + x) * 3);
      }
    }
    return { width: size, height: size, rgb: out };
  }

  // The float32 value of every 8-bit level in each channel: ((v / 255) - mean) / std, each step
  // rounded to float32 as torch computes it (ToTensor's div, then Normalize's sub_ and div_).
  const LEVELS = MEAN.map((mean, c) => {
    const table = new Float32Array(256);
    const mean32 = Math.fround(mean);
    const std32 = Math.fround(STD[c]);
    for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(v / 255) - mean32) / std32;
    return table;
  });

  // The normalised image as float32 CHW (3 x height x width).
  function normalise({ width, height, rgb }) {
    const plane = width * height;
    const out = new Float32Array(3 * plane);
    for (let c = 0; c < 3; c++) {
      const table = LEVELS[c];
      for (let i = 0; i < plane; i++) out[c * plane + i] = table[rgb[i * 3 + c]];
    }
    return out;
  }

  // The image as the detector takes it: resized and cropped as the export says (config.resize,
  // config.crop), or null with the reason where it is too small for the detector.
  function prepare(image, config) {
    let prepared = image;
    if (config.resize) prepared = resizeBilinear(prepared, config.resize);
    if (config.crop) prepared = centerCrop(prepared, config.crop);
    const { width, height } = prepared;
    if (width < config.min_side || height < config.min_side) {
      const least = `${config.min_side}x${config.min_side}`;
      return { image: null, reason: `too small for the detector: ${width}x${height}, needs at least ${least}` };
    }
    return { image: prepared, reason: null };
  }

  Object.assign((globalThis.NprPage ??= {}), { resizeBilinear, centerCrop, normalise, prepare });
})();
