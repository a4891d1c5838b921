"""A page that npr-export --web wrote, served on 127.0.0.1 and driven in headless Chromium (the
distribution's package, through Playwright for Python; no browser is downloaded).

Every request the page makes is seen: one outside the page's folder is blocked and recorded, and
the tests fail on any. Without Chromium or Playwright, the browser tests are skipped with the
reason, unless NPR_REQUIRE_BROWSER=1 (set by .ci/run), which turns that skip into a failure.
"""

import base64
import contextlib
import functools
import http.server
import os
import shutil
import threading
from typing import Dict, List, Optional

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Where .ci/run installs the npm package (npm install --prefix build/npm).
DEFAULT_RUNTIME = os.path.join(ROOT, "build", "npm", "node_modules", "onnxruntime-web")
CHROMIUM_NAMES = ("chromium", "chromium-browser")
PAGE_TIMEOUT_MS = 120_000


def chromium_path():
    """NPR_CHROMIUM, or the distribution's chromium on PATH; None where there is none."""
    given = os.environ.get("NPR_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else None
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def runtime_path():
    return os.environ.get("NPR_ONNXRUNTIME_WEB", DEFAULT_RUNTIME)


def skip_or_fail(reason: str):
    """Skips the test with `reason`, or fails it where NPR_REQUIRE_BROWSER=1 (CI must run them)."""
    if os.environ.get("NPR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"NPR_REQUIRE_BROWSER=1, but the browser tests cannot run: {reason}")
    pytest.skip(reason)


def require_browser():
    """(chromium executable, onnxruntime-web folder), or a skip (a failure in CI) saying what is missing."""
    chromium = chromium_path()
    if chromium is None:
        skip_or_fail("no Chromium (apt-get install chromium, or NPR_CHROMIUM=/path/to/chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("no Playwright for Python (pip install -r requirements.txt)")
    if not os.path.isfile(os.path.join(runtime_path(), "package.json")):
        skip_or_fail(f"no onnxruntime-web at {runtime_path()} (.ci/run installs it; or set NPR_ONNXRUNTIME_WEB)")
    return chromium, runtime_path()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extra_headers: Dict[str, str] = {}

    def end_headers(self):
        for name, value in self.extra_headers.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, *args):
        pass


# The headers that make a page cross-origin isolated, which onnxruntime-web's threads need.
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


@contextlib.contextmanager
def served(folder: str, headers: Optional[Dict[str, str]] = None):
    """`folder` served by a plain static server on 127.0.0.1, from its parent folder, so that a
    request for anything beside or above it (a /favicon.ico, say) is outside the page's folder;
    yields the page's URL, http://127.0.0.1:PORT/NAME/. `headers` go with every response."""
    folder = os.path.abspath(folder)
    handler_class = type("Handler", (QuietHandler,), {"extra_headers": dict(headers or {})})
    handler = functools.partial(handler_class, directory=os.path.dirname(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/{os.path.basename(folder)}/"
    finally:
        server.shutdown()
        server.server_close()


class BrowserPage:
    """The page open in headless Chromium. `outside` lists every request for a URL outside the
    page's folder (each was blocked); `errors` every uncaught error and console error."""

    def __init__(self, browser, url: str):
        self.url = url
        self.outside: List[str] = []
        self.errors: List[str] = []
        self.page = browser.new_page(viewport={"width": 1100, "height": 800})
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.route("**/*", self._route)
        self.page.goto(url + "index.html")
        self.page.wait_for_selector('#status:not([data-state="loading"])', timeout=PAGE_TIMEOUT_MS)

    def _route(self, route):
        if route.request.url.startswith(self.url):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def status(self) -> Dict[str, str]:
        return self.page.eval_on_selector("#status", "e => ({state: e.dataset.state, text: e.textContent})")

    def run(self, paths: List[str]) -> Dict[str, Dict[str, str]]:
        """Feeds `paths` to the file input; waits until every one has a result. Returns each
        result's data attributes (name, pFake, error, ...) by file name."""
        before = len(self.page.query_selector_all("figure.result"))
        self.page.set_input_files("#files", paths)
        expected = before + len(paths)
        self.page.wait_for_function(
            f"""() => document.querySelectorAll('figure.result').length === {expected}
                && document.getElementById('status').dataset.state === 'done'""",
            timeout=PAGE_TIMEOUT_MS,
        )
        results = self.page.eval_on_selector_all(
            "figure.result", "figures => figures.map(f => ({...f.dataset, className: f.className}))"
        )
        return {result["name"]: result for result in results[before:]}

    def shown_pixels(self, name: str) -> np.ndarray:
        """The RGB levels of the image shown for `name` (the prepared pixels, drawn opaque), as
        an (H, W, 3) uint8 array; sent as base64, which is fast where a list of numbers is not."""
        encoded = self.page.evaluate(
            """name => {
                const figure = [...document.querySelectorAll('figure.result')].find(f => f.dataset.name === name);
                const canvas = figure.querySelector('canvas.image');
                const rgba = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                let text = '';
                for (let i = 0; i < rgba.length; i += 4) text += String.fromCharCode(rgba[i], rgba[i + 1], rgba[i + 2]);
                return [canvas.height, canvas.width, btoa(text)];
            }""",
            name,
        )
        height, width, data = encoded
        return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(height, width, 3)

    def call(self, function: str, *args):
        """`function(...args)`, one of the functions the page's scripts put in globalThis.NprPage,
        run in the page. An argument's `rgb` list becomes a Uint8Array there; typed arrays in the
        result come back as lists."""
        return self.page.evaluate(
            f"""async args => {{
                const given = args.map(a => a && Array.isArray(a.rgb) ? {{...a, rgb: Uint8Array.from(a.rgb)}} : a);
                const result = await globalThis.NprPage.{function}(...given);
                return JSON.parse(JSON.stringify(result, (k, v) => ArrayBuffer.isView(v) ? Array.from(v) : v));
            }}""",
            list(args),
        )


@contextlib.contextmanager
def chromium(executable: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
