"""The rendered book (``_build/html``, made by ``make``): offline, complete, working in a browser.

Static checks parse every page; browser checks load every page in headless Chromium (Debian's
package, driven by Playwright without a browser download) from a server on localhost, and fail
on any JavaScript error, any failed request and any request that leaves this machine.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
from browsing import serve

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"


def _pages() -> list[Path]:
    if not (SITE / "index.html").exists():
        pytest.fail("the book is not built: run `make` (it builds _build/html) before the tests")
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return sorted(p for p in SITE.rglob("*.html") if "_static" not in p.parts and p.name not in skip
                  and not p.parts[len(SITE.parts)] == "_modules")


class _Refs(HTMLParser):
    """Collect (tag, attribute, url) for everything a page loads or links to."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name):
                self.refs.append((tag, name, attrs[name], attrs))


def _refs(page: Path):
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.refs


def _is_external(url: str) -> bool:
    return urlparse(url).scheme in ("http", "https") or url.startswith("//")


@pytest.fixture(scope="module")
def pages() -> list[Path]:
    return _pages()


def test_site_has_every_chapter(pages):
    names = {p.stem for p in pages}
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert chapters and set(chapters) <= names


def test_no_page_loads_anything_from_the_internet(pages):
    """Scripts, styles, fonts, images and frames must come from the site itself."""
    offenders = []
    for page in pages:
        for tag, attr, url, attrs in _refs(page):
            loads = tag in ("script", "img", "iframe", "source", "video", "audio") or (
                tag == "link" and attrs.get("rel", "") not in ("", "canonical")
                and "stylesheet" in attrs.get("rel", "") or tag == "link" and attrs.get("as")
            )
            if loads and _is_external(url):
                offenders.append(f"{page.relative_to(SITE)}: <{tag} {attr}={url}>")
        text = page.read_text(encoding="utf-8")
        offenders += [f"{page.relative_to(SITE)}: @import/url({u})"
                      for u in re.findall(r"url\((https?://[^)]+)\)", text)]
    assert offenders == []


def test_internal_links_and_images_resolve(pages):
    missing = []
    for page in pages:
        for _tag, _attr, url, _ in _refs(page):
            if _is_external(url) or url.startswith(("mailto:", "#", "data:", "javascript:")):
                continue
            target = (page.parent / unquote(urlparse(url).path)).resolve()
            if urlparse(url).path and not target.exists():
                missing.append(f"{page.relative_to(SITE)}: {url}")
    assert missing == []


def test_markdown_tables_in_outputs_are_rendered(pages):
    """A table a cell displays with IPython's Markdown must become an HTML table, not a line of
    pipes (commonmark, myst-nb's default for outputs, has no tables; the book uses myst)."""
    raw = [page.relative_to(SITE).as_posix() for page in pages
           if re.search(r"\|\s*(---|—|–)+\s*\|", re.sub(r"<pre.*?</pre>", "", page.read_text(encoding="utf-8"), flags=re.S))]
    assert raw == []


# ---- in a real browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    with serve(SITE) as url:
        yield url


class PageVisit:
    """A page opened in a fresh context, recording errors and every request it makes."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.outside: list[str] = []
        base = urlparse(url).netloc
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))

        def route(r):
            if urlparse(r.request.url).netloc not in (base, ""):
                self.outside.append(r.request.url)
                return r.abort()
            return r.continue_()

        self.page.route("**/*", route)
        self.page.goto(url, wait_until="networkidle")

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, server):
    opened = []

    def open_page(path: str) -> PageVisit:
        v = PageVisit(browser, urljoin(server, path))
        opened.append(v)
        return v

    yield open_page
    for v in opened:
        v.close()


def test_every_page_loads_cleanly(pages, visit):
    problems = []
    for page in pages:
        rel = page.relative_to(SITE).as_posix()
        v = visit(rel)
        # Scroll to the end so lazily rendered widgets and plots render too, then let
        # MathJax and the widget manager settle.
        v.page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        v.page.wait_for_load_state("networkidle")
        v.page.wait_for_timeout(500)
        problems += [f"{rel}: JS error {e}" for e in v.errors]
        problems += [f"{rel}: failed request {u}" for u in v.failed]
        problems += [f"{rel}: request to the internet {u}" for u in v.outside]
        v.close()
    assert problems == []


def _math_pages(pages):
    return [p for p in pages if 'class="math' in p.read_text(encoding="utf-8")]


def test_maths_is_rendered(pages, visit):
    math_pages = _math_pages(pages)
    assert math_pages, "no page has maths: the check would prove nothing"
    for page in math_pages:
        v = visit(page.relative_to(SITE).as_posix())
        v.page.wait_for_selector("mjx-container", state="attached", timeout=20_000)
        v.page.wait_for_function("!document.querySelector('article').innerText.includes('\\\\(')")
        body = v.page.inner_text("article")
        for raw in ("$$", "\\(", "\\[", "\\frac"):
            assert raw not in body, f"{page.name}: raw TeX {raw!r} left on the page"
        v.close()


def test_search_works(visit):
    v = visit("search.html?q=attention")
    v.page.wait_for_selector("#search-results li", timeout=20_000)
    assert v.page.locator("#search-results li").count() > 0


def test_dark_mode_switches(visit):
    v = visit("book/intro.html")
    theme = "document.documentElement.dataset.theme"
    assert v.page.evaluate(theme) == "light"  # headless Chromium prefers a light scheme
    v.page.locator(".theme-switch-button:visible").first.click()  # auto -> dark
    assert v.page.evaluate(theme) == "dark"
    background = v.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), background


def test_chapters_have_colab_and_download_buttons(pages):
    for page in pages:
        if page.parent.name != "notebooks":
            continue
        html = page.read_text(encoding="utf-8")
        assert "colab.research.google.com/github/" in html, page.name
        assert f"_sources/notebooks/{page.stem}.ipynb" in html, page.name


# ---- the explorers, inside the real book pages ----------------------------------------------


def _page_with(pages, kind: str) -> str:
    for page in pages:
        if f'data-explorer="{kind}"' in page.read_text(encoding="utf-8"):
            return page.relative_to(SITE).as_posix()
    pytest.fail(f"no built page has a {kind} explorer")


def _state(locator) -> dict:
    import json

    return json.loads(locator.get_attribute("data-state"))


def _set_range(page, slider, index: int) -> None:
    """Move a range input the way a user's drag does: set the value, fire input + change."""
    slider.evaluate(
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true}));"
        " el.dispatchEvent(new Event('change', {bubbles: true})); }", str(index))


def _open_explorer(pages, visit, kind: str):
    """Open the first built page with a ``kind`` explorer; return the visit and the explorer,
    scrolled into view."""
    v = visit(_page_with(pages, kind))
    root = v.page.locator(f'[data-explorer="{kind}"]').first
    root.scroll_into_view_if_needed()
    return v, root


def test_sampling_explorer_responds_to_temperature(pages, visit):
    v, root = _open_explorer(pages, visit, "sampling")
    slider = root.locator('[data-testid="temperature"]')
    low, high = int(slider.get_attribute("min")), int(slider.get_attribute("max"))
    _set_range(v.page, slider, high)
    hot = _state(root)
    _set_range(v.page, slider, low)
    cold = _state(root)
    assert cold["temperature"] < hot["temperature"]
    assert max(cold["probs"]) > max(hot["probs"])  # a low temperature sharpens the distribution
    bars = root.locator('[data-testid="bar"]')
    assert bars.count() > 0
    assert float(bars.first.get_attribute("data-prob")) == pytest.approx(cold["probs"][0], abs=1e-3)
    assert v.errors == []


def test_attention_explorer_responds_to_head_and_query(pages, visit):
    v, root = _open_explorer(pages, visit, "attention")
    heatmap = root.locator('canvas[data-testid="heatmap"]')
    before = heatmap.get_attribute("data-checksum")
    head = root.locator('[data-testid="head"]')
    options = head.locator("option").all_inner_texts()
    current = _state(root)["head"]
    head.select_option(index=(current + 1) % len(options))
    assert _state(root)["head"] != current
    assert heatmap.get_attribute("data-checksum") != before
    root.locator('[data-testid="token"]').nth(3).click()
    assert _state(root)["query"] == 3
    assert v.errors == []


def test_explorer_screenshots(pages, visit, tmp_path_factory):
    """Screenshots for people to look at (tests/screenshots is ignored by git)."""
    out = ROOT / "tests" / "screenshots"
    out.mkdir(exist_ok=True)
    for kind in ("sampling", "attention", "position"):
        _, root = _open_explorer(pages, visit, kind)
        root.screenshot(path=str(out / f"{kind}_explorer.png"))
        assert (out / f"{kind}_explorer.png").stat().st_size > 5_000


def test_position_explorer_responds_to_its_slider(pages, visit):
    v, root = _open_explorer(pages, visit, "position")
    slider = root.locator('[data-testid="position"]')
    target = int(slider.get_attribute("max")) // 2
    before = _state(root)["cosine"]
    _set_range(v.page, slider, target)
    assert _state(root)["position"] == target
    assert _state(root)["cosine"] != before
    assert v.errors == []


def test_lr_schedule_explorer_responds_to_warmup(pages, visit):
    v, root = _open_explorer(pages, visit, "lr-schedule")
    slider = root.locator('[data-testid="warmup"]')
    before = _state(root)
    target = int(slider.get_attribute("max"))
    _set_range(v.page, slider, target)
    after = _state(root)
    assert after["warmup_iters"] == target != before["warmup_iters"]
    # the peak of the drawn curve moves to the end of the longer warm-up
    peak_step = max(after["points"], key=lambda p: p[1])[0]
    assert abs(peak_step - (target - 1)) <= 1
    assert v.errors == []
