// A classic script (not a module), which browsers run even from a file:// page: there, the
// page's modules and WebAssembly are refused, so it says how to serve the folder instead of
// leaving the page loading for ever.
if (location.protocol === 'file:') {
  document.addEventListener('DOMContentLoaded', () => {
    const status = document.getElementById('status');
    status.dataset.state = 'error';
    status.textContent =
      'This page was opened from a file: browsers run its modules and WebAssembly only when it is served. ' +
      'Serve this folder with any static server, for example `python -m http.server -d FOLDER -b 127.0.0.1 8000`, ' +
      'and open http://127.0.0.1:8000/.';
  });
}
