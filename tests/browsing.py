"""Browser plumbing shared by the site and explorer tests: where Debian's Chromium is, how
Playwright launches it (no browser download), a quiet static file server on localhost, and
how the live notebook front ends insert an HTML output into their page."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free localhost port; yields the base URL (ending in /)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


# How the live front ends put an output into the page: JupyterLab sets innerHTML (scripts do not
# run), then replaces each <script> by a fresh copy, which runs once the output is in the
# document; the classic Notebook (jQuery) inserts the HTML and evaluates each script's text
# from <head>, so document.currentScript is not inside the output there.
INSERT_LIKE_JUPYTERLAB = """html => {
    const host = document.createElement("div");
    host.innerHTML = html;
    for (const old of host.querySelectorAll("script")) {
        const fresh = document.createElement("script");
        for (const a of old.attributes) fresh.setAttribute(a.name, a.value);
        fresh.textContent = old.textContent;
        old.parentNode.replaceChild(fresh, old);
    }
    document.body.appendChild(host);  // attached after the scripts were swapped in
}"""
INSERT_LIKE_JQUERY = """html => {
    const host = document.createElement("div");
    host.innerHTML = html;
    document.body.appendChild(host);
    for (const old of host.querySelectorAll("script:not([type])")) {
        const s = document.createElement("script");
        s.text = old.textContent;
        document.head.appendChild(s).parentNode.removeChild(s);
    }
}"""
