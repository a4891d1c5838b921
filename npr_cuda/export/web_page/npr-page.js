// The page: images picked or dropped are decoded, prepared and run through the detector and the
// NPR op in onnxruntime-web (WebAssembly), one at a time, on this machine. Nothing is uploaded;
// every file the page loads is in its own folder (npr-export --web wrote them).
//
// For scripts and tests, each result is a <figure class="result"> with data-name (the file's
// name) and, once computed, data-p-fake (P(fake) as a decimal string), data-label, data-size
// (the model's input, WxH), data-pixels-sha256 (the prepared 8-bit RGB, row-major) and
// data-map-sha256 (the NPR map's float32 values, CHW, little-endian); a file that could not be
// used has class "failed" and data-error. #status's data-state: loading, ready, running, done or
// error; its data-threads: onnxruntime-web's WebAssembly threads.
//
// A classic script, not a module, so that the page also runs opened from a file (browsers
// refuse modules there): it takes the other scripts' functions from globalThis.NprPage, and
// onnxruntime-web from the global `ort` (its classic build, ort/ort.wasm.min.js).

(() => {
  'use strict';

  const { ImageError, decodeImage, normalise, prepare } = globalThis.NprPage;

  const THRESHOLD = 0.5; // above it the label is fake, as npr-detect's
  const here = (name) => new URL(name, document.baseURI).href;

  const status = document.getElementById('status');
  const progress = document.getElementById('progress');
  const results = document.getElementById('results');

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function fromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function loadScript(name) {
    return new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = name;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`${name} could not be loaded`));
      document.head.append(script);
    });
  }

  // Served: the settings, the runtime and the models are fetched from this folder; threads where
  // the page is cross-origin isolated (COOP and COEP headers from the server).
  async function servedFiles() {
    const response = await fetch(here('npr-web.json'));
    if (!response.ok) throw new Error(`npr-web.json: HTTP ${response.status}`);
    ort.env.wasm.wasmPaths = here('ort/');
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(8, navigator.hardwareConcurrency || 1) : 1;
    return { config: await response.json(), detector: here('detector.onnx'), nprMap: here('npr-map.onnx') };
  }

  // Opened from a file: browsers fetch nothing for a file:// page, but run its classic scripts.
  // npr-file-assets.js holds the same settings, runtime and models, as base64; the runtime's
  // loader is imported from a blob: URL. One thread: threads need a cross-origin-isolated page,
  // which a file:// page is not.
  async function localFiles() {
    await loadScript('npr-file-assets.js');
    const assets = globalThis.NprFileAssets;
    delete globalThis.NprFileAssets; // 28 MB of text, not kept once decoded
    const loader = URL.createObjectURL(new Blob([fromBase64(assets.loader)], { type: 'text/javascript' }));
    ort.env.wasm.wasmBinary = fromBase64(assets.wasm);
    ort.env.wasm.wasmPaths = { mjs: loader };
    ort.env.wasm.numThreads = 1;
    const release = () => {
      URL.revokeObjectURL(loader);
      ort.env.wasm.wasmBinary = undefined; // compiled by then
    };
    return { config: assets.config, detector: fromBase64(assets.detector), nprMap: fromBase64(assets.nprMap), release };
  }

  async function loadModels() {
    const files = location.protocol === 'file:' ? await localFiles() : await servedFiles();
    const options = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
    const detector = await ort.InferenceSession.create(files.detector, options);
    const nprMap = await ort.InferenceSession.create(files.nprMap, options);
    files.release?.();
    return { config: files.config, detector, nprMap };
  }

  async function runOne(session, input) {
    const outputs = await session.run({ [session.inputNames[0]]: input });
    return outputs[session.outputNames[0]];
  }

  async function sha256(bytes) {
    if (!globalThis.crypto?.subtle) return null; // only in secure contexts (https, localhost)
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // An RGB canvas of the image as the model sees it.
  function imageCanvas({ width, height, rgb }) {
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const pixels = new ImageData(width, height);
    for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
      pixels.data.set(rgb.subarray(j, j + 3), i);
      pixels.data[i + 3] = 255;
    }
    canvas.getContext('2d').putImageData(pixels, 0, 0);
    canvas.className = 'image';
    return canvas;
  }

  // |NPR| per channel as RGB, scaled for display so that the 99th percentile of |NPR| is white.
  function mapCanvas(map) {
    const [, channels, height, width] = map.dims;
    const plane = height * width;
    const sample = [];
    for (let i = 0; i < map.data.length; i += Math.max(1, Math.floor(map.data.length / 20000))) {
      sample.push(Math.abs(map.data[i]));
    }
    sample.sort((a, b) => a - b);
    const scale = 255 / Math.max(sample[Math.floor(sample.length * 0.99)] || 0, 1e-6);
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const pixels = new ImageData(width, height);
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) pixels.data[i * 4 + c] = Math.abs(map.data[Math.min(c, channels - 1) * plane + i]) * scale;
      pixels.data[i * 4 + 3] = 255;
    }
    canvas.getContext('2d').putImageData(pixels, 0, 0);
    canvas.className = 'map';
    canvas.title = '|NPR|, scaled for display';
    return canvas;
  }

  function figureFor(name) {
    const figure = document.createElement('figure');
    figure.className = 'result pending';
    figure.dataset.name = name;
    const caption = document.createElement('figcaption');
    caption.textContent = `${name}: waiting`;
    figure.append(caption);
    results.append(figure);
    return figure;
  }

  function showFailure(figure, message) {
    figure.className = 'result failed';
    figure.dataset.error = message;
    figure.querySelector('figcaption').textContent = `${figure.dataset.name}: ${message}`;
  }

  async function detect(models, file, figure) {
    const decoded = await decodeImage(file, models.config.max_pixels);
    const { image, reason } = prepare(decoded, models.config);
    if (!image) return showFailure(figure, reason);
    const input = new ort.Tensor('float32', normalise(image), [1, 3, image.height, image.width]);
    const logit = (await runOne(models.detector, input)).data[0];
    const map = await runOne(models.nprMap, input);
    const probability = 1 / (1 + Math.exp(-logit));
    const label = probability > THRESHOLD ? 'fake' : 'real';
    Object.assign(figure.dataset, { pFake: String(probability), label, size: `${image.width}x${image.height}` });
    const [pixelsHash, mapHash] = await Promise.all([sha256(image.rgb), sha256(new Uint8Array(map.data.buffer, map.data.byteOffset, map.data.byteLength))]);
    if (pixelsHash) Object.assign(figure.dataset, { pixelsSha256: pixelsHash, mapSha256: mapHash });
    const pair = document.createElement('div');
    pair.className = 'pair';
    pair.append(imageCanvas(image), mapCanvas(map));
    figure.className = `result ${label}`;
    figure.querySelector('figcaption').textContent =
      `${label}, P(fake) ${probability.toFixed(4)} — ${figure.dataset.name} (${image.width}x${image.height})`;
    figure.prepend(pair);
  }

  function describeError(error) {
    if (error instanceof ImageError) return error.message;
    const text = String(error?.message ?? error);
    return /memory|allocation/i.test(text) ? `the detector ran out of memory (${text})` : `failed: ${text}`;
  }

  let queue = Promise.resolve();
  let done = 0;
  let total = 0;
  let failed = 0;

  function showProgress() {
    progress.hidden = false;
    progress.max = total;
    progress.value = done;
    const failures = failed ? `, ${failed} could not be used` : '';
    setStatus(done === total ? 'done' : 'running', `${done} of ${total} images${failures}`);
  }

  function enqueue(models, files) {
    const jobs = Array.from(files, (file) => ({ file, figure: figureFor(file.name) }));
    total += jobs.length;
    showProgress();
    for (const { file, figure } of jobs) {
      queue = queue.then(async () => {
        try {
          await detect(models, file, figure);
        } catch (error) {
          showFailure(figure, describeError(error));
        }
        if (figure.classList.contains('failed')) failed += 1;
        done += 1;
        showProgress();
      });
    }
  }

  function listen(models) {
    const input = document.getElementById('files');
    input.addEventListener('change', () => {
      enqueue(models, input.files);
      input.value = '';
    });
    const drop = document.getElementById('drop');
    for (const type of ['dragenter', 'dragover']) {
      document.addEventListener(type, (event) => {
        event.preventDefault();
        drop.classList.add('over');
      });
    }
    document.addEventListener('dragleave', () => drop.classList.remove('over'));
    document.addEventListener('drop', (event) => {
      event.preventDefault();
      drop.classList.remove('over');
      enqueue(models, event.dataTransfer.files);
    });
  }

  async function main() {
    let models;
    try {
      models = await loadModels();
    } catch (error) {
      const hint =
        location.protocol === 'file:'
          ? ' If this browser refuses pages opened from a file, serve this folder with any static server, ' +
            'for example `python -m http.server -d FOLDER -b 127.0.0.1 8000`, and open http://127.0.0.1:8000/.'
          : '';
      setStatus('error', `The detector could not be loaded: ${error.message || error}.${hint}`);
      return;
    }
    const { config } = models;
    const size = config.crop || config.resize;
    document.getElementById('about').textContent =
      `onnxruntime-web ${ort.env.versions?.web ?? config.onnxruntime_web} (WebAssembly, ` +
      `${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads > 1 ? 's' : ''}); images ` +
      (size ? `at ${size}x${size}` : 'at their own size') + `, at most ${config.max_pixels} pixels. ` +
      `Input: ${config.metadata['npr_cuda.input']}.`;
    status.dataset.threads = String(ort.env.wasm.numThreads);
    listen(models);
    setStatus('ready', 'Ready: choose or drop images.');
  }

  main();
})();
