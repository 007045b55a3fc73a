"""The explorers of minillm_lib.viz in a real browser: headless Chromium (Debian's package,
driven by Playwright, no browser download) loads one page holding every explorer, built from
a tiny random model and served from localhost, and the tests compare what the JavaScript
shows with what the library computes in Python.

Set MINILLM_SCREENSHOTS=<folder> to also save a screenshot of each explorer there.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from browsing import INSERT_LIKE_JQUERY, INSERT_LIKE_JUPYTERLAB, serve

from minillm_lib import viz
from minillm_lib.config import GPTConfig
from minillm_lib.data import get_batch
from minillm_lib.model import GPT
from minillm_lib.positions import sinusoidal_positions
from minillm_lib.sampling import temperature_scale, top_k_filter, top_p_filter
from minillm_lib.tokenizers import CharTokenizer
from minillm_lib.training import TrainConfig, lr_at

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer"
PROMPTS = ["To be, or", "Whether 'tis\n"]
GRID = dict(temperatures=(0.0, 0.5, 1.0, 2.0), top_ks=(1, 3, 10, None), top_ps=(0.3, 0.6, 0.9, 1.0))
ATTENTION_TEXT = "To be, or not to be:\nthat is"
LR_CFG = TrainConfig(lr=6e-4, min_lr=6e-5, warmup_iters=30, max_iters=300)
COLUMN = 688  # px: the width of the book's text column (and so of a cell's output) on a desktop


# ---------------------------------------------------------------- the page and the browser


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every explorer (two of the same kind too) on one page; returns (folder, model, tokenizer, data)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is fastest on a busy machine
    try:
        tok = CharTokenizer.from_text(TEXT)
        torch.manual_seed(0)
        model = GPT(GPTConfig.from_preset("baby", vocab_size=tok.vocab_size, block_size=32, n_layer=2,
                                          n_head=2, n_embd=32)).eval()
        train_a_little(model, torch.tensor(tok.encode(TEXT)))
        explorers = {
            "sampling": viz.sampling_explorer(model, tok, PROMPTS, n_new=12, **GRID),
            "attention": viz.attention_explorer(model, tok, ATTENTION_TEXT, query=5),
            "position": viz.position_explorer(32, 48),
            "position2": viz.position_explorer(16, 8, position=3),
            "lr": viz.lr_schedule_explorer(LR_CFG),
        }
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("explorers")
    body = "".join(f"<section><h2>{name}</h2>{ex._repr_html_()}</section>" for name, ex in explorers.items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'><title>explorers</title></head>"
            f"<body style='width:{COLUMN}px;margin:16px auto'>{body}</body></html>")
    (folder / "index.html").write_text(page, encoding="utf-8")
    data = {name: _embedded(ex) for name, ex in explorers.items()}
    return folder, model, tok, data, {name: ex.element_id for name, ex in explorers.items()}


def train_a_little(model: GPT, data: torch.Tensor, steps: int = 60) -> None:
    """A few seeded AdamW steps on the text: sharper, more varied distributions than a fresh init."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        x, y = get_batch(data, 8, 16, generator=generator)
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def _embedded(ex: viz.Explorer) -> dict:
    start = ex.html.index('class="mlv-data">') + len('class="mlv-data">')
    return json.loads(ex.html[start: ex.html.index("</script>", start)])


@pytest.fixture(scope="module")
def server(built):
    with serve(built[0]) as url:
        yield url + "index.html"


@pytest.fixture(scope="module")
def page(browser, server):
    """The page, loaded once; every JavaScript error and every request leaving it is recorded."""
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("console", lambda m: m.type in ("error", "warning") and pg.errors.append(m.text))
    pg.on("request", lambda r: not r.url.startswith(server.rsplit("/", 1)[0]) and pg.errors.append(f"request {r.url}"))
    pg.goto(server, wait_until="networkidle")
    yield pg
    context.close()


def root(page, built, name):
    return page.locator(f"#{built[4][name]}")


def state(page, built, name) -> dict:
    return json.loads(root(page, built, name).get_attribute("data-state"))


# ---------------------------------------------------------------- every explorer


def test_every_explorer_starts_without_errors(page, built):
    ids = page.eval_on_selector_all(".mlv", "els => els.map(e => [e.id, e.dataset.ready, e.dataset.explorer])")
    assert [i for i, _, _ in ids] == list(built[4].values())  # unique, in page order
    assert all(ready == "1" for _, ready, _ in ids)
    assert [kind for _, _, kind in ids] == ["sampling", "attention", "position", "position", "lr-schedule"]
    overflow = page.eval_on_selector_all(".mlv", "els => els.map(e => e.scrollWidth - e.clientWidth)")
    assert overflow == [0] * 5  # everything fits the column: no horizontal scrolling
    for name in built[4]:
        assert not root(page, built, name).locator(".mlv-fallback").is_visible()
        assert root(page, built, name).locator('[data-testid="caption"]').inner_text().strip()
    assert page.errors == []


def test_screenshots(page, built):
    folder = os.environ.get("MINILLM_SCREENSHOTS")
    if not folder:
        pytest.skip("set MINILLM_SCREENSHOTS=<folder> to save screenshots")
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name in built[4]:
        root(page, built, name).screenshot(path=str(Path(folder) / f"{name}.png"))


@pytest.mark.parametrize("insert", [INSERT_LIKE_JUPYTERLAB, INSERT_LIKE_JQUERY], ids=["jupyterlab", "classic"])
def test_explorers_start_inside_live_notebook_front_ends(browser, built, insert):
    html = (built[0] / "index.html").read_text(encoding="utf-8")
    outputs = [html[html.index(f'<div class="mlv" id="{i}"'):] for i in built[4].values()]
    outputs = [o[: o.index("</script></div>") + len("</script></div>")] for o in outputs]
    pg = browser.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_content("<!doctype html><html><head></head><body></body></html>")
    for output in outputs:
        pg.evaluate(insert, output)
    ready = pg.eval_on_selector_all(".mlv", "els => els.map(e => e.dataset.ready && JSON.parse(e.dataset.state))")
    assert len(ready) == 5 and all(ready) and errors == []
    pg.close()


# ---------------------------------------------------------------- sampling


def python_filters(logits: torch.Tensor, t: float, k: int | None, p: float) -> torch.Tensor:
    """The filter chain of minillm_lib.generate (temperature -> top-k -> top-p) on (V,) logits."""
    out = temperature_scale(logits, t)
    if k is not None:
        out = top_k_filter(out, k)
    return top_p_filter(out, p)


def set_sampling(page, built, prompt: int, ti: int, ki: int, pi: int) -> dict:
    r = root(page, built, "sampling")
    r.locator('[data-testid="prompt"]').select_option(str(prompt))
    for testid, value in (("temperature", ti), ("top-k", ki), ("top-p", pi)):
        r.locator(f'[data-testid="{testid}"]').fill(str(value))
    return state(page, built, "sampling")


def test_temperature_changes_the_distribution(page, built):
    d = built[3]["sampling"]
    cold = set_sampling(page, built, 0, 1, 3, 3)  # temperature 0.5, no filters
    hot = set_sampling(page, built, 0, 3, 3, 3)  # temperature 2
    assert (cold["temperature"], hot["temperature"]) == (0.5, 2.0)
    assert max(cold["probs"]) > max(hot["probs"])  # cold sharpens, hot flattens
    assert len(hot["kept"]) == d["vocab_size"]
    bars = root(page, built, "sampling").locator('[data-testid="bar"]')
    assert bars.count() == 20
    assert float(bars.first.get_attribute("data-prob")) == pytest.approx(hot["probs"][0])
    readout = root(page, built, "sampling").locator('[data-testid="temperature-value"]').inner_text()
    assert readout == "2"


def test_kept_tokens_and_probabilities_match_the_python_filters(page, built):
    d = built[3]["sampling"]
    V = d["vocab_size"]
    for prompt in range(len(PROMPTS)):
        item = d["prompts"][prompt]
        logits = torch.full((V,), float("nan"))
        logits[item["ids"]] = torch.tensor(item["logits"])  # the embedded logits, vocabulary order
        for ti, t in enumerate(d["temperatures"]):
            for ki, k in enumerate(d["top_ks"]):
                for pi, p in enumerate(d["top_ps"]):
                    s = set_sampling(page, built, prompt, ti, ki, pi)
                    expected = python_filters(logits, t, k, p)
                    kept = torch.isfinite(expected).nonzero().flatten().tolist()
                    assert sorted(s["kept"]) == kept, (prompt, t, k, p)
                    probs = torch.zeros(V, dtype=torch.float64)
                    probs[s["ids"]] = torch.tensor(s["probs"], dtype=torch.float64)
                    torch.testing.assert_close(probs, expected.softmax(-1).double(), rtol=1e-4, atol=1e-6)
    # the bars show it too: greyed exactly where Python's filters removed the token
    s = set_sampling(page, built, 0, 2, 1, 3)  # temperature 1, top-k 3
    bars = root(page, built, "sampling").locator('[data-testid="bar"]')
    greyed = {int(b.get_attribute("data-token-id")) for b in bars.all() if b.get_attribute("data-kept") == "0"}
    shown = {int(b.get_attribute("data-token-id")) for b in bars.all()}
    assert greyed == shown - set(s["kept"]) and len(shown - greyed) >= 3


@pytest.mark.parametrize("ids, logits, t, k, p", [
    ([0, 1, 2, 3], [0, 0, 0, 0], 1.0, 2, 1.0),  # top-k keeps every token tied with the k-th
    ([0, 1, 2, 3], [0, 0, 0, 0], 1.0, None, 0.5),  # mass 0.5 reached: the third is dropped
    ([0, 1, 2, 3], [0, 0, 0, 0], 1.0, None, 0.3),  # ties are cut in token-id order
    ([1, 4, 0, 2, 3], [0, 0, -1, -1, -3], 1.0, 3, 1.0),
    ([1, 4, 0, 2, 3], [0, 0, -1, -1, -3], 0.5, 1, 1.0),
    ([1, 4, 0, 2, 3], [0, 0, -1, -1, -3], 0.0, None, 1.0),  # greedy: the lowest id of the tied best
    ([1, 4, 0, 2, 3], [0, 0, -1, -1, -3], 2.0, None, 0.01),  # top-p always keeps one token
])
def test_ties_are_cut_as_python_cuts_them(page, ids, logits, t, k, p):
    d = {"temperatures": [t], "vocab_size": len(ids)}
    f = page.evaluate("([d, pr, k, p]) => window.minillmViz.samplingFilter(d, pr, 0, k, p)",
                      [d, {"ids": ids, "logits": logits}, k, p])
    vocab_logits = torch.zeros(len(ids))
    vocab_logits[ids] = torch.tensor(logits, dtype=torch.float32)
    expected = torch.isfinite(python_filters(vocab_logits, t, k, p)).nonzero().flatten().tolist()
    assert sorted(i for i, keep in zip(ids, f["keep"], strict=True) if keep) == expected


def test_the_continuation_follows_the_sliders(page, built):
    d = built[3]["sampling"]
    cont = root(page, built, "sampling").locator('[data-testid="continuation"]')
    seen = set()
    for ti, ki, pi in [(0, 3, 3), (1, 2, 2), (3, 3, 3)]:
        set_sampling(page, built, 1, ti, ki, pi)
        item = d["prompts"][1]
        sample = item["samples"][item["grid"][(ti * 4 + ki) * 4 + pi]]
        assert cont.text_content() == PROMPTS[1] + sample
        seen.add(sample)
    assert len(seen) == 3
    caption = root(page, built, "sampling").locator('[data-testid="caption"]').inner_text()
    assert "Temperature 2" in caption


# ---------------------------------------------------------------- attention


def python_checksum(maps: torch.Tensor, layer: int, head: int) -> float:
    m = maps[layer, 0, head].double()  # (T, T)
    T = m.size(0)
    index = torch.arange(T * T, dtype=torch.float64).view(T, T)  # query * T + key
    return (m * index).sum().item()


def test_changing_the_head_changes_the_heatmap(page, built):
    model, tok = built[1], built[2]
    maps = model.attention_maps(torch.tensor([tok.encode(ATTENTION_TEXT)]))  # (L, 1, H, T, T)
    r = root(page, built, "attention")
    heatmap = r.locator('[data-testid="heatmap"]')
    sums = {}
    for layer in (0, 1):
        for head in (0, 1):
            r.locator('[data-testid="layer"]').select_option(str(layer))
            r.locator('[data-testid="head"]').select_option(str(head))
            s = state(page, built, "attention")
            assert (s["layer"], s["head"]) == (layer, head)
            sums[layer, head] = float(heatmap.get_attribute("data-checksum"))
            # weights are stored to 1e-4: the rounding errors, times indices up to T * T, mostly cancel
            assert sums[layer, head] == pytest.approx(python_checksum(maps, layer, head), abs=2.0)
    assert len(set(sums.values())) == 4  # every head draws a different map


def test_clicking_a_character_picks_the_query(page, built):
    model, tok = built[1], built[2]
    maps = model.attention_maps(torch.tensor([tok.encode(ATTENTION_TEXT)]))
    r = root(page, built, "attention")
    r.locator('[data-testid="layer"]').select_option("1")
    r.locator('[data-testid="head"]').select_option("0")
    assert state(page, built, "attention")["query"] == 5  # where it started
    for q in (12, 20):
        r.locator(f'[data-testid="token"][data-index="{q}"]').click()
        assert state(page, built, "attention")["query"] == q
        assert r.locator('[data-testid="query"]').input_value() == str(q)
        row = json.loads(r.locator('[data-testid="text"]').get_attribute("data-row"))
        torch.testing.assert_close(torch.tensor(row, dtype=torch.float64), maps[1, 0, 0, q, : q + 1].double(),
                                   rtol=0, atol=1.1e-4)
    r.locator('[data-testid="query"]').fill("3")
    assert state(page, built, "attention")["query"] == 3
    assert r.locator(".mlv-query").get_attribute("data-index") == "3"


# ---------------------------------------------------------------- positions


def test_position_slider_shows_cosine_similarity(page, built):
    r = root(page, built, "position")
    table = sinusoidal_positions(32, 48).double()
    unit = table / table.norm(dim=-1, keepdim=True)
    for p in (0, 17):
        r.locator('[data-testid="position"]').fill(str(p))
        s = state(page, built, "position")
        assert s["position"] == p
        torch.testing.assert_close(torch.tensor(s["cosine"], dtype=torch.float64), unit @ unit[p], rtol=0, atol=1e-3)
    # the second position explorer on the page did not move
    assert state(page, built, "position2")["position"] == 3


def test_position_heatmap_hover_reads_out_the_value(page, built):
    r = root(page, built, "position")
    box = r.locator('[data-testid="heatmap"]').bounding_box()
    p, c = 7, 12  # hover the middle of cell (7, 12) of the 32 x 48 table
    page.mouse.move(box["x"] + (c + .5) * box["width"] / 48, box["y"] + (p + .5) * box["height"] / 32)
    caption = r.locator('[data-testid="caption"]').inner_text()
    value = sinusoidal_positions(32, 48)[p, c].item()
    assert caption.startswith(f"position {p}, channel {c}: sin(") and caption.endswith(f"= {value:.4f}")


# ---------------------------------------------------------------- learning-rate schedule


@pytest.mark.parametrize("warmup, ratio", [(30, "0.1"), (0, "0"), (75, "0.35"), (150, "1")])
def test_lr_curve_equals_lr_at(page, built, warmup, ratio):
    r = root(page, built, "lr")
    r.locator('[data-testid="warmup"]').fill(str(warmup))
    r.locator('[data-testid="min-lr"]').fill(ratio)
    s = state(page, built, "lr")
    cfg = TrainConfig(lr=LR_CFG.lr, min_lr=float(ratio) * LR_CFG.lr, warmup_iters=warmup, max_iters=LR_CFG.max_iters)
    assert s["warmup_iters"] == warmup and s["min_lr"] == cfg.min_lr
    assert [step for step, _ in s["points"]] == list(range(LR_CFG.max_iters))
    for step, lr in s["points"]:
        assert math.isclose(lr, lr_at(step, cfg), rel_tol=1e-9, abs_tol=0), step


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
def test_lr_at_in_javascript_with_a_decay_horizon(page, built, schedule):
    cfg = TrainConfig(lr=1e-3, min_lr=2e-5, warmup_iters=17, max_iters=500, lr_decay_iters=333,
                      schedule=schedule, decay_fraction=0.3)
    fields = viz.lr_schedule_data(cfg)
    steps = list(range(0, 520, 7)) + [16, 17, 332, 333]
    js = page.evaluate("([steps, cfg]) => steps.map(s => window.minillmViz.lrAt(s, cfg))", [steps, fields])
    for step, value in zip(steps, js, strict=True):
        assert math.isclose(value, lr_at(step, cfg), rel_tol=1e-9), step


def test_lr_hover_reads_out_step_and_lr(page, built):
    r = root(page, built, "lr")
    r.locator('[data-testid="warmup"]').fill("30")
    r.locator('[data-testid="min-lr"]').fill("0.1")
    hover = r.locator('[data-testid="hover"]').bounding_box()
    page.mouse.move(hover["x"] + hover["width"] * 0.5, hover["y"] + hover["height"] * 0.5)
    caption = r.locator('[data-testid="caption"]').inner_text()
    step = int(caption.split(":")[0].removeprefix("step "))
    assert abs(step - 150) <= 1
    assert float(caption.split("lr = ")[1]) == pytest.approx(lr_at(step, LR_CFG), rel=1e-3)


def test_no_errors_after_all_the_interaction(page):
    assert page.errors == []
