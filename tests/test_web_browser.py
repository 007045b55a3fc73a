"""The model in the page, in a real browser: headless Chromium (Debian's, driven by Playwright)
runs viz/static/gpt.js, tokenizers.js and sampling.js and every live explorer, and each result
is compared with what PyTorch and the library compute on the same weights (the shipped float16
or int8 values, as float32: ``web.shipped_model``).

The models are small and trained for a few hundred steps, so that greedy decoding has clear
winners; one page holds every explorer, loading shared weight files (the book's mechanism)
over http, and the same page is opened from file:// too.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import regex
import torch
from browsing import INSERT_LIKE_JQUERY, INSERT_LIKE_JUPYTERLAB, serve

from minillm_lib.checkpoint import save_model
from minillm_lib.cli import main as cli_main
from minillm_lib.config import GPTConfig
from minillm_lib.data import get_batch
from minillm_lib.finetune import CHAT_SPECIAL_TOKENS, END, encode_chat, generate_reply
from minillm_lib.model import GPT
from minillm_lib.sampling import (
    SamplingOptions,
    generate,
    min_p_filter,
    repetition_penalty,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)
from minillm_lib.tokenizers import SPLIT_PATTERNS, BPETokenizer, CharTokenizer
from minillm_lib.viz import live, web
from minillm_lib.viz.outputs import static_text

TEXT = """To be, or not to be, that is the question:
Whether 'tis nobler in the mind to suffer
The slings and arrows of outrageous fortune,
Or to take arms against a sea of troubles
And by opposing end them. To die: to sleep;
No more; and by a sleep to say we end
The heart-ache and the thousand natural shocks
That flesh is heir to, 'tis a consummation
Devoutly to be wish'd. To die, to sleep;
To sleep: perchance to dream: ay, there's the rub;
For in that sleep of death what dreams may come
When we have shuffled off this mortal coil,
Must give us pause: there's the respect
That makes calamity of so long life;
"""
LINES = TEXT.strip().split("\n")
PROMPTS = ["To be, or not", "The heart-ache", "W", "For in that sleep of death what"]
SMALL = dict(block_size=32, n_layer=2, n_head=2, n_embd=48, dropout=0.0)
CONFIGS = {
    # GPT-2's recipe: learned positions, LayerNorm with biases, GELU, tied embeddings
    "gpt2": dict(SMALL, bias=True, pos_encoding="learned", norm="layernorm", mlp="gelu", tie_weights=True),
    # Llama's: RoPE, RMSNorm, SwiGLU, grouped-query attention (4 query heads, 2 kv heads), untied
    "llama": dict(SMALL, n_head=4, n_kv_head=2, bias=False, pos_encoding="rope", norm="rmsnorm",
                  mlp="swiglu", tie_weights=False),
    # byte-level BPE with the chat tokens, multi-query attention, GPT-2's tanh GELU
    "chat": dict(SMALL, block_size=48, n_kv_head=1, bias=True, pos_encoding="learned", norm="layernorm",
                 mlp="gelu_tanh", tie_weights=True),
    # the remaining parts, on random weights (logits only)
    "sinusoidal": dict(SMALL, bias=False, pos_encoding="sinusoidal", norm="layernorm", mlp="relu", tie_weights=True),
    "nopos": dict(SMALL, n_head=4, n_kv_head=1, bias=True, pos_encoding="none", norm="rmsnorm",
                  mlp="gelu_tanh", tie_weights=False),
}
TRAINED = ("gpt2", "llama", "chat")


# ---------------------------------------------------------------- models, page, browser


def train(model: GPT, ids: torch.Tensor, steps: int = 300) -> GPT:
    """Seeded AdamW steps: enough for clear greedy winners, a second or two on one thread."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        x, y = get_batch(ids, 16, model.config.block_size, generator=generator)
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def chat_text() -> str:
    """Each line answered by the next, in the chat template."""
    return "".join(f"<|user|>{a}<|end|><|assistant|>{b}<|end|>" for a, b in zip(LINES, LINES[1:], strict=False))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(one_thread):  # one thread already while the models train
    """name -> (model, tokenizer): trained ones for the explorers, random ones for logits."""
    char = CharTokenizer.from_text(TEXT)
    bpe = BPETokenizer.train(TEXT + chat_text(), 320, special_tokens=list(CHAT_SPECIAL_TOKENS))
    out = {}
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        tok = bpe if name == "chat" else char
        torch.manual_seed(i)
        model = GPT(GPTConfig(vocab_size=tok.vocab_size, **cfg))
        if name in TRAINED:
            text = chat_text() if name == "chat" else TEXT
            train(model, torch.tensor(tok.encode(text, allowed_special="all")))
        else:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.1 * torch.randn_like(p))
        out[name] = (model.eval(), tok)
    return out


@pytest.fixture(scope="module")
def shipped(models):
    """(name, dtype) -> the float32 model holding exactly the page's weights."""
    return {(name, dtype): web.shipped_model(m, dtype) for name, (m, _) in models.items() for dtype in web.DTYPES}


@pytest.fixture(scope="module")
def site(models, tmp_path_factory):
    """One page with every live explorer, loading shared weight files from models/."""
    folder = tmp_path_factory.mktemp("web")
    shared = web.SharedWeights(folder / "models", "models/")
    scripts = {}
    for name, (model, tok) in models.items():
        for dtype in web.DTYPES:
            script = web.weight_script(model, tok, name=name, dtype=dtype)
            scripts[name, dtype] = {"key": script.key, "url": shared.place(script), "nbytes": script.nbytes}
    (m, char), (llama, _), (chat, bpe) = models["gpt2"], models["llama"], models["chat"]
    explorers = {
        "sampling": live.sampling_explorer(m, char, "To be", n_new=60, name="gpt2", weights=shared),
        "sampling2": live.sampling_explorer(m, char, "The", n_new=20, temperature=0, name="gpt2", weights=shared),
        "attention": live.attention_explorer(llama, char, "To be, or not", layer=1, name="llama", weights=shared),
        "kv": live.kv_cache_explorer(m, char, "To be", n_new=40, name="gpt2", weights=shared),
        "chat": live.chat_explorer(chat, bpe, "To be, or not to be, that is the question:", max_new_tokens=60,
                                   name="chat", weights=shared),
        "int8": live.int8_explorer(llama, char, "To be", n_new=40, name="llama", weights=shared),
    }
    engine = "".join(f"<script>{static_text(n)}</script>" for n in live.ENGINE)
    body = "".join(f"<section>{ex.html}</section>" for ex in explorers.values())
    (folder / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
        f"<title>the model in the page</title>{engine}</head><body style='width:688px'>{body}</body></html>",
        encoding="utf-8")
    return {"folder": folder, "scripts": scripts, "explorers": explorers}


def watch(pg, allowed_prefix: str) -> None:
    """Record every JavaScript error and every request that leaves ``allowed_prefix``."""
    pg.errors, pg.requests = [], []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("console", lambda m: m.type in ("error", "warning") and pg.errors.append(m.text))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.allowed_prefix = allowed_prefix


def wait_ready(pg) -> None:
    pg.wait_for_function("() => [...document.querySelectorAll('.mlv')].every(e => e.dataset.model === 'ready')")


@pytest.fixture(scope="module")
def page(browser, site):
    with serve(site["folder"]) as url:
        context = browser.new_context(viewport={"width": 900, "height": 1000})
        pg = context.new_page()
        watch(pg, url)
        pg.goto(url + "index.html", wait_until="load")
        wait_ready(pg)
        pg.load_requests = list(pg.requests)  # what the page itself asked for
        pg.evaluate("""() => { window.models = {};
            window.getModel = (key, url) => window.models[key] || (window.models[key] = new Promise(
                (ok, fail) => minillm.loadModel(key, url, ok, fail))); }""")
        yield pg
        context.close()


def js(page, site, name: str, dtype: str, body: str, *args):
    """Run ``body`` (a JavaScript function of (m, ...args), m = {gpt, tokenizer}) on a model."""
    s = site["scripts"][name, dtype]
    return page.evaluate(f"async ([key, url, args]) => {{ const m = await getModel(key, url); return ({body})(m, ...args); }}",
                         [s["key"], s["url"], list(args)])


def root(site, name: str) -> str:
    return "#" + site["explorers"][name].element_id


def state(page, site, name: str) -> dict:
    return json.loads(page.get_attribute(root(site, name), "data-state"))


def wait_done(page, site, name: str, field: str = "done") -> dict:
    page.wait_for_function("([sel, field]) => { const s = JSON.parse(document.querySelector(sel).dataset.state); "
                           "return s[field] === true || !!s.error; }", arg=[root(site, name), field])
    return state(page, site, name)


def new_ids_greedy(model: GPT, ids: list[int], n: int) -> list[int]:
    return generate(model, torch.tensor([ids]), n, temperature=0)[0, len(ids):].tolist()


# ---------------------------------------------------------------- logits, cache, greedy


@pytest.mark.parametrize("name, dtype", [(n, "float16") for n in CONFIGS] + [("gpt2", "int8"), ("llama", "int8")])
def test_logits_equal_pytorchs_on_the_same_weights(page, site, models, shipped, name, dtype):
    tok = models[name][1]
    for prompt in PROMPTS:
        ids = tok.encode(prompt)
        got = torch.tensor(js(page, site, name, dtype, "(m, ids) => Array.from(m.gpt.forward(ids))", ids))
        with torch.no_grad():
            expected = shipped[name, dtype](torch.tensor([ids]))[0][0]  # (T, V)
        difference = (got.view_as(expected) - expected).abs().max().item()
        assert difference <= 1e-4, (prompt, difference)


def test_a_token_at_a_time_through_the_cache_equals_the_whole_forward(page, site, models):
    tok = models["llama"][1]
    ids = tok.encode("For in that sleep of death what dreams")[:32]
    steps = js(page, site, "llama", "float16", """(m, ids) => {
        const whole = m.gpt.forward(ids), V = m.gpt.config.vocab_size, out = [];
        m.gpt.reset();
        const first = m.gpt.run(ids.slice(0, 5), "last");  // a prompt at once, then one token per step
        out.push(Math.max(...first.map((v, j) => Math.abs(v - whole[4 * V + j]))));
        for (let t = 5; t < ids.length; t++) {
            const l = m.gpt.step(ids[t], true);
            out.push(Math.max(...l.map((v, j) => Math.abs(v - whole[t * V + j]))));
        }
        return out; }""", ids)
    assert len(steps) == len(ids) - 4 and max(steps) < 1e-5


@pytest.mark.parametrize("name, dtype", [("gpt2", "float16"), ("llama", "float16"), ("llama", "int8"), ("chat", "float16")])
def test_greedy_generation_of_200_tokens_is_identical(page, site, models, shipped, name, dtype):
    model, tok = shipped[name, dtype], models[name][1]
    ids = tok.encode("To be, or not")
    expected = new_ids_greedy(model, ids, 200)  # past block_size: both recompute the last block_size tokens
    got = js(page, site, name, dtype, "(m, ids) => [minillm.generate(m.gpt, ids, 200, {temperature: 0}), "
             "minillm.generate(m.gpt, ids, 200, {temperature: 0}, 0, false)]", ids)
    if got[0] != expected:  # say how close to a tie the step that differs was
        step = next(i for i, (a, b) in enumerate(zip(got[0], expected, strict=True)) if a != b)
        context = torch.tensor([(ids + expected)[: len(ids) + step][-model.config.block_size:]])
        top2 = model(context)[0][0, -1].topk(2).values
        pytest.fail(f"differs at new token {step}: the top two logits there are {(top2[0] - top2[1]).item():.2e} apart")
    assert got[1] == expected  # and without the KV cache


# ---------------------------------------------------------------- seeded sampling


def test_the_random_generator_is_its_python_twin(page):
    seeds = [0, 1, 42, 2**32 - 1]
    got = page.evaluate("(seeds) => seeds.map(s => { const r = new minillm.Random(s), o = [];"
                        " for (let i = 0; i < 1000; i++) o.push(r.random()); return o; })", seeds)
    for seed, values in zip(seeds, got, strict=True):
        twin = web.PageRandom(seed)
        assert values == [twin.random() for _ in range(1000)], seed


OPTIONS = [
    dict(temperature=1.0),
    dict(temperature=0.7, top_k=5),
    dict(temperature=1.3, top_p=0.8),
    dict(temperature=1.0, min_p=0.2),
    dict(temperature=0.9, repetition_penalty=1.4),
    dict(temperature=1.1, top_k=20, top_p=0.95, min_p=0.05, repetition_penalty=1.2),
]


@pytest.mark.parametrize("name", ["gpt2", "llama", "chat"])
def test_seeded_sampling_gives_the_same_text_as_python(page, site, models, shipped, name):
    model, tok = shipped[name, "float16"], models[name][1]
    ids = tok.encode("To be")
    for i, options in enumerate(OPTIONS):
        for seed in (i, 2**32 - 1 - i):
            got = js(page, site, name, "float16", "(m, ids, o, seed) => minillm.generate(m.gpt, ids, 60, o, seed)",
                     ids, options, seed)
            expected = web.page_generate(model, ids, 60, seed=seed, **options)
            assert tok.decode(got) == tok.decode(expected), (options, seed)
            assert got == expected


FILTERS = {
    "temperature": lambda x, prev, a: temperature_scale(x, a),
    "top_k": lambda x, prev, a: top_k_filter(x, a),
    "top_p": lambda x, prev, a: top_p_filter(x, a),
    "min_p": lambda x, prev, a: min_p_filter(x, a),
    "repetition": lambda x, prev, a: repetition_penalty(x, prev, a),
}
JS_FILTERS = {"temperature": "temperatureScale(x, a)", "top_k": "topKFilter(x, a)", "top_p": "topPFilter(x, a)",
              "min_p": "minPFilter(x, a)", "repetition": "repetitionPenalty(x, prev, a)"}


@pytest.mark.parametrize("name, arg", [("temperature", 0), ("temperature", 0.7), ("temperature", 2.5),
                                       ("top_k", 1), ("top_k", 4), ("top_k", 7), ("top_k", 64),
                                       ("top_p", 0.1), ("top_p", 0.5), ("top_p", 0.9), ("top_p", 1.0),
                                       ("min_p", 0.05), ("min_p", 0.5), ("min_p", 1.0),
                                       ("repetition", 1.3), ("repetition", 0.8)])
def test_each_filter_equals_the_librarys_ties_included(page, name, arg):
    generator = torch.Generator().manual_seed(3)
    for _ in range(5):
        # logits on a grid of halves: many exact ties, negative and positive values
        logits = (torch.randint(-8, 8, (40,), generator=generator) / 2).float()
        previous = torch.randint(0, 40, (12,), generator=generator)
        got = page.evaluate(f"([x, prev, a]) => Array.from(minillm.{JS_FILTERS[name]}, v => v === -Infinity ? null : v)",
                            [logits.tolist(), previous.tolist(), arg])
        expected = FILTERS[name](logits, previous, arg)
        assert [None if v == -math.inf else v for v in expected.tolist()] == got, logits.tolist()


def test_filters_refuse_bad_values_as_python_does(page):
    for call, message in [("temperatureScale([0], -1)", "temperature must be >= 0"), ("topKFilter([0], 0)", "top_k must be"),
                          ("topPFilter([0], 0)", "top_p must be in (0, 1]"), ("minPFilter([0], 1.5)", "min_p must be in (0, 1]"),
                          ("repetitionPenalty([0], [], 0)", "repetition_penalty must be > 0"), ("Random(-1)", "seed must be")]:
        error = page.evaluate(f"() => {{ try {{ {'new ' if call.startswith('Random') else ''}minillm.{call}; }} "
                              "catch (e) { return e.message; } }")
        assert error and message in error, call


# ---------------------------------------------------------------- tokenizers


SAMPLES = [
    "To be, or not to be", "  leading spaces\tand\ttabs\n\n\nnewlines  \n", "I'LL don't we'VE you're THEY'D",
    "numbers 1234567 and 3.14159, 1e10", "Ünïcödé façade naïve café", "日本語のテキストと中文", "emoji 🤖🎭 and ✨ sparkles",
    "mixed\r\nline\rendings\u2028and\u00a0nbsp\u0085nel\ufeffbom", "ſome long s and ǅ titlecase", "!!! ??? ... --- ***",
    "", " ", "\n",
]


def test_split_patterns_split_like_pythons_regex(page):
    text = "".join(SAMPLES) + TEXT
    for name, js_pattern in web.JS_SPLIT_PATTERNS.items():
        got = page.evaluate("([p, texts]) => texts.map(t => t.match(new RegExp(p, 'gu')) || [])", [js_pattern, [*SAMPLES, text]])
        expected = [regex.findall(SPLIT_PATTERNS[name], t) for t in [*SAMPLES, text]]
        assert got == expected, name


def test_the_patterns_character_classes_match_on_every_code_point_the_browser_knows(page):
    """\\p{L} and \\p{N} agree with Python's regex wherever the browser's Unicode tables assign a
    character (where they differ, the character is newer than the browser's Unicode version),
    and the page's \\s is Python's exactly."""
    everything = "".join(chr(c) if not 0xD800 <= c < 0xE000 else " " for c in range(0x110000))
    classes = {"L": r"\p{L}", "N": r"\p{N}", "S": r"\s"}
    python = {}
    for key, pattern in classes.items():
        python[key] = {m.start() for m in regex.finditer(pattern, everything)} - set(range(0xD800, 0xE000))
    got = page.evaluate("""(ws) => { const res = {}, tests = {L: /^\\p{L}$/u, N: /^\\p{N}$/u, S: new RegExp("^[" + ws + "]$", "u")};
        for (const k in tests) { res[k] = [];
            for (let c = 0; c <= 0x10ffff; c++) if ((c < 0xd800 || c > 0xdfff) && tests[k].test(String.fromCodePoint(c))) res[k].push(c); }
        return res; }""", web._WS)
    assert set(got["S"]) == python["S"]
    for key in ("L", "N"):
        differ = sorted(set(got[key]) ^ python[key])
        assigned = page.evaluate("(cs) => cs.filter(c => !/\\p{Cn}/u.test(String.fromCodePoint(c)))", differ)
        assert assigned == [], (key, [hex(c) for c in assigned[:10]])


@pytest.fixture(scope="module")
def bpe_tokenizers():
    text = "".join(SAMPLES) + TEXT + chat_text()
    return {name: BPETokenizer.train(text, 400, pattern=name, special_tokens=["<|end|>", "<|end|>x", "<|user|>"])
            for name in SPLIT_PATTERNS}


def js_tokenizer(page, spec, body: str, *args):
    return page.evaluate(f"([spec, args]) => {{ const tok = minillm.tokenizer(spec); "
                         f"try {{ return ({body})(tok, ...args); }} catch (e) {{ return {{error: e.message}}; }} }}",
                         [spec, list(args)])


def test_bpe_encodes_and_decodes_like_python(page, bpe_tokenizers):
    texts = [*SAMPLES, TEXT, "a<|end|>b<|end|>xc <|user|>", "<|end|>x<|end|>"]
    for name, tok in bpe_tokenizers.items():
        spec = web.tokenizer_spec(tok)
        got = js_tokenizer(page, spec, "(t, texts) => texts.map(x => t.encode(x, 'all'))", texts)
        assert got == [tok.encode(t, allowed_special="all") for t in texts], name
        subset = js_tokenizer(page, spec, "(t, x) => t.encode(x, ['<|end|>'])", "a<|end|>b")
        assert subset == tok.encode("a<|end|>b", allowed_special={"<|end|>"})
        refused = js_tokenizer(page, spec, "(t, x) => t.encode(x)", "hi <|user|> there")
        assert "special token \"<|user|>\" at position 3" in refused["error"]
        with pytest.raises(ValueError, match="'<|user|>' at position 3"):
            tok.encode("hi <|user|> there")
        # decoding any ids, bytes cut inside a character included
        generator = torch.Generator().manual_seed(0)
        id_lists = [torch.randint(0, tok.vocab_size, (n,), generator=generator).tolist() for n in (1, 2, 5, 30)]
        id_lists += [[0xE6], [0xE6, 0x97], tok.encode("日本")[:1], [0xF0, 0x9F, 0xA4]]
        decoded = js_tokenizer(page, spec, "(t, lists) => lists.map(ids => t.decode(ids))", id_lists)
        assert decoded == [tok.decode(ids) for ids in id_lists]


def test_char_tokenizer_encodes_and_decodes_like_python(page):
    tok = CharTokenizer.from_text("abc 🤖\n", special_tokens=["<|end|>"])
    spec = web.tokenizer_spec(tok)
    for text in ["abc", "a🤖b\nc", "", "ab<|end|>c"]:
        allowed = "all" if "<|end|>" in text else "none"
        assert js_tokenizer(page, spec, "(t, x, a) => t.encode(x, a)", text, allowed) == tok.encode(text, allowed_special=allowed)
    unknown = js_tokenizer(page, spec, "(t, x) => t.encode(x)", "ab🤖z")  # position counts characters, as Python does
    assert 'character "z" at position 3 is not in the vocabulary' in unknown["error"]
    with pytest.raises(ValueError, match="'z' at position 3"):
        tok.encode("ab🤖z")
    unk = CharTokenizer.from_text("abc", unk_token="<unk>")
    assert js_tokenizer(page, web.tokenizer_spec(unk), "(t, x) => t.encode(x)", "axb") == unk.encode("axb")
    ids = tok.encode("a🤖<|end|>", allowed_special="all")
    assert js_tokenizer(page, spec, "(t, ids) => t.decode(ids)", ids) == tok.decode(ids)
    assert "not valid for this tokenizer" in js_tokenizer(page, spec, "(t) => t.decode([99])")["error"]


# ---------------------------------------------------------------- the explorers


def test_every_explorer_loads_its_model_and_shares_the_weight_files(page, site):
    kinds = page.eval_on_selector_all(".mlv", "els => els.map(e => [e.dataset.explorer, e.dataset.model])")
    assert kinds == [["live-sampling", "ready"], ["live-sampling", "ready"], ["live-attention", "ready"],
                     ["kv-cache", "ready"], ["chat", "ready"], ["int8", "ready"]]
    # each weight file came once, though several explorers use it; nothing left the server
    loaded = [u for u in page.load_requests if "/models/" in u]
    assert len(loaded) == len(set(loaded)) == 4  # gpt2 and chat in float16, llama in float16 and int8
    assert all(u.startswith(page.allowed_prefix) for u in page.requests)
    overflow = page.eval_on_selector_all(".mlv", "els => els.map(e => e.scrollWidth - e.clientWidth)")
    assert overflow == [0] * 6  # everything fits the book's column


def set_controls(page, r: str, controls: dict[str, str]) -> None:
    for testid, value in controls.items():
        page.fill(f"{r} [data-testid='{testid}']", value)


def test_live_sampling_follows_every_control(page, site, models, shipped):
    model, tok = shipped["gpt2", "float16"], models["gpt2"][1]
    r = root(site, "sampling")
    set_controls(page, r, {"prompt": "Whether 'tis", "new-tokens": "50", "temperature": "1", "top-k": "0",
                           "top-p": "1", "min-p": "0", "repetition-penalty": "1", "seed": "0"})
    current = dict(temperature=1.0, top_k=None, top_p=None, min_p=None, repetition_penalty=1.0, seed=0)
    ids = tok.encode("Whether 'tis")
    for testid, value, key, parsed in [("temperature", "1.2", "temperature", 1.2), ("top-k", "6", "top_k", 6),
                                       ("top-p", "0.85", "top_p", 0.85), ("min-p", "0.1", "min_p", 0.1),
                                       ("repetition-penalty", "1.35", "repetition_penalty", 1.35),
                                       ("seed", "11", "seed", 11), ("temperature", "0", "temperature", 0.0),
                                       ("top-k", "0", "top_k", None)]:
        page.fill(f"{r} [data-testid='{testid}']", value)
        current[key] = parsed
        s = wait_done(page, site, "sampling")
        assert {k: s[k] for k in current} == current and s["n_new"] == 50, testid
        options = {k: v for k, v in current.items() if k != "seed"}
        expected = web.page_generate(model, ids, 50, seed=current["seed"], **options)
        assert s["prompt_ids"] == ids and s["new_ids"] == expected and s["text"] == tok.decode(expected), testid
        if testid != "seed":
            readout = page.inner_text(f"{r} [data-testid='{testid}-value']")
            assert readout == ("off" if parsed is None else f"{parsed:g}"), testid
    assert page.locator(f"{r} [data-testid='output'] [data-testid='token']").count() == 50


def test_clicking_a_token_shows_the_distribution_it_was_drawn_from(page, site, models, shipped):
    model, tok = shipped["gpt2", "float16"], models["gpt2"][1]
    r = root(site, "sampling")
    set_controls(page, r, {"prompt": "To die", "new-tokens": "30", "temperature": "0.9", "top-k": "12", "top-p": "1",
                           "min-p": "0", "repetition-penalty": "1.2", "seed": "4"})
    s = wait_done(page, site, "sampling")
    options = SamplingOptions(temperature=0.9, top_k=12, repetition_penalty=1.2)
    ids = tok.encode("To die")
    assert s["new_ids"] == web.page_generate(model, ids, 30, seed=4, temperature=0.9, top_k=12, repetition_penalty=1.2)
    for step in (0, 17, 29):
        page.click(f"{r} [data-testid='output'] [data-testid='token'][data-step='{step}']")
        s = state(page, site, "sampling")
        assert s["step"] == step
        tokens = ids + s["new_ids"][:step]
        logits = model(torch.tensor([tokens[-model.config.block_size:]]))[0][:, -1]
        filtered = options.filter_logits(logits, torch.tensor([tokens]))[0]
        probs = torch.tensor(web.page_softmax(filtered.double().tolist()), dtype=torch.float64)
        torch.testing.assert_close(torch.tensor(s["probs"], dtype=torch.float64), probs, rtol=0, atol=1e-5)
        assert s["probs"][s["new_ids"][step]] > 0  # the token drawn could be drawn
        bars = page.locator(f"{r} [data-testid='bars'] [data-testid='bar']")
        assert bars.count() == 20
        kept = {int(b.get_attribute("data-token-id")) for b in bars.all() if b.get_attribute("data-kept") == "1"}
        assert kept == {i for i in map(int, (b.get_attribute("data-token-id") for b in bars.all())) if probs[i] > 0}
    assert "Step 29: drew" in page.inner_text(f"{r} [data-testid='caption']")


def test_a_bad_prompt_is_reported_in_the_explorer(page, site):
    r = root(site, "sampling")
    page.fill(f"{r} [data-testid='prompt']", "To be!")
    s = wait_done(page, site, "sampling")
    assert 'character "!" at position 5 is not in the vocabulary' in s["error"]
    assert "not in the vocabulary" in page.inner_text(f"{r} [data-testid='caption']")
    page.fill(f"{r} [data-testid='prompt']", "To be")
    assert wait_done(page, site, "sampling")["error"] is None


def python_checksum(maps: torch.Tensor, layer: int, head: int) -> float:
    m = maps[layer, 0, head].double()  # (T, T)
    T = m.size(0)
    return (m * torch.arange(T * T, dtype=torch.float64).view(T, T)).sum().item()


def test_live_attention_shows_the_maps_of_what_is_typed(page, site, models, shipped):
    model, tok = shipped["llama", "float16"], models["llama"][1]
    r = root(site, "attention")
    assert state(page, site, "attention")["layer"] == 1  # where it started
    for text in ["To be, or not to be", "The slings and arrows of outrageous fortune, or to take"]:
        page.fill(f"{r} [data-testid='input']", text)
        ids = tok.encode(text)[-model.config.block_size:]
        maps = model.attention_maps(torch.tensor([ids]))  # (L, 1, H, T, T)
        for layer, head in [(0, 0), (1, 3), (0, 2)]:
            page.select_option(f"{r} [data-testid='layer']", str(layer))
            page.select_option(f"{r} [data-testid='head']", str(head))
            s = state(page, site, "attention")
            assert (s["layer"], s["head"], s["ids"]) == (layer, head, ids)
            assert s["cropped"] == max(0, len(tok.encode(text)) - model.config.block_size)
            assert float(s["checksum"]) == pytest.approx(python_checksum(maps, layer, head), abs=1e-2)
        q = 9
        page.click(f"{r} [data-testid='text'] [data-testid='token'][data-index='{q}']")
        s = state(page, site, "attention")
        assert s["query"] == q
        torch.testing.assert_close(torch.tensor(s["row"], dtype=torch.float64), maps[0, 0, 2, q, : q + 1].double(),
                                   rtol=0, atol=6e-5)
    page.fill(f"{r} [data-testid='input']", "To be?")
    assert "not in the vocabulary" in state(page, site, "attention")["error"]


def test_kv_cache_explorer_runs_with_and_without_the_cache(page, site, models, shipped):
    model, tok = shipped["gpt2", "float16"], models["gpt2"][1]
    r = root(site, "kv")
    page.fill(f"{r} [data-testid='prompt']", "To die: to")
    page.fill(f"{r} [data-testid='new-tokens']", "40")
    ids, n, B = tok.encode("To die: to"), 40, model.config.block_size
    expected = new_ids_greedy(model, ids, n)
    P = len(ids)
    for mode in ("cache", "no-cache"):
        page.click(f"{r} [data-testid='run-{mode}']")
        page.wait_for_function("([sel, m]) => { const r = JSON.parse(document.querySelector(sel).dataset.state).runs[m];"
                               " return r && r.done; }", arg=[r, mode])
    s = state(page, site, "kv")
    with_cache, without = s["runs"]["cache"], s["runs"]["no-cache"]
    assert with_cache["new_ids"] == without["new_ids"] == expected and s["same"] is True
    # with the cache a step computes one position while prompt + output fit, then the last B
    assert with_cache["computed"] == [P] + [1 if P + i <= B else B for i in range(1, n)]
    assert with_cache["cached"] == [P] + [P + i if P + i <= B else 0 for i in range(1, n)]
    assert without["computed"] == [min(P + i, B) for i in range(n)] and set(without["cached"]) == {0}
    assert len(with_cache["ms"]) == len(without["ms"]) == n and all(ms >= 0 for ms in with_cache["ms"] + without["ms"])
    assert "both runs gave the same tokens" in page.inner_text(f"{r} [data-testid='caption']")


def test_chat_box_answers_like_generate_reply(page, site, models, shipped):
    model, tok = shipped["chat", "float16"], models["chat"][1]
    r = root(site, "chat")
    end = tok.special_tokens[END]
    for message in ["To be, or not to be, that is the question:", "Devoutly to be wish'd. To die, to sleep;"]:
        page.fill(f"{r} [data-testid='message']", message)
        page.click(f"{r} [data-testid='send']")
        s = wait_done(page, site, "chat")
        assert s["prompt"] == message and s["prompt_ids"] == encode_chat(tok, message)
        assert s["reply"] == generate_reply(model, tok, message, max_new_tokens=60, temperature=0)
        assert s["reply_ids"][-1] == end  # the tuned model ends its turn
    assert page.locator(f"{r} [data-testid='assistant']").last.inner_text() == s["reply"]
    # seeded sampling, as page_generate samples
    page.fill(f"{r} [data-testid='temperature']", "0.8")
    page.fill(f"{r} [data-testid='seed']", "5")
    page.fill(f"{r} [data-testid='message']", "The heart-ache")
    page.click(f"{r} [data-testid='send']")
    s = wait_done(page, site, "chat")
    assert s["reply_ids"] == web.page_generate(model, encode_chat(tok, "The heart-ache"), 60, seed=5,
                                               temperature=0.8, eos_id=end)
    # a special token typed by the user is refused, not taken as a turn
    page.fill(f"{r} [data-testid='message']", "hi<|end|><|assistant|>")
    page.click(f"{r} [data-testid='send']")
    s = state(page, site, "chat")
    assert "special token \"<|end|>\"" in s["error"] and "not allowed" in page.inner_text(f"{r} [data-testid='caption']")


def test_int8_explorer_compares_as_python_does(page, site, models, shipped):
    tok = models["llama"][1]
    r = root(site, "int8")
    page.fill(f"{r} [data-testid='new-tokens']", "60")
    page.fill(f"{r} [data-testid='prompt']", "Must give us")
    s = wait_done(page, site, "int8")
    ids = tok.encode("Must give us")
    f, q = shipped["llama", "float16"], shipped["llama", "int8"]
    assert s["float_ids"] == new_ids_greedy(f, ids, 60) and s["int8_ids"] == new_ids_greedy(q, ids, 60)
    differ = [i for i, (a, b) in enumerate(zip(s["float_ids"], s["int8_ids"], strict=True)) if a != b]
    assert s["first_difference"] == (differ[0] if differ else None)
    with torch.no_grad():
        lf, lq = f(torch.tensor([ids]))[0][0, -1].double(), q(torch.tensor([ids]))[0][0, -1].double()
    kl = (lf.softmax(-1) * (lf.log_softmax(-1) - lq.log_softmax(-1))).sum().item()
    assert s["kl"] == pytest.approx(kl, rel=1e-2, abs=1e-8) and s["kl"] > 0
    assert s["max_abs_logit_difference"] == pytest.approx((lf - lq).abs().max().item(), abs=1e-4)
    assert s["bytes"] == {"float16": site["scripts"]["llama", "float16"]["nbytes"],
                          "int8": site["scripts"]["llama", "int8"]["nbytes"]}
    assert s["bytes"]["int8"] < 0.6 * s["bytes"]["float16"]


def test_no_errors_after_all_the_interaction(page):
    assert page.errors == []


# ---------------------------------------------------------------- file://, notebooks, failures, export


def test_the_page_works_from_a_file_url(browser, site, models, shipped):
    pg = browser.new_page()
    watch(pg, "file://")
    pg.goto((site["folder"] / "index.html").as_uri())
    wait_ready(pg)
    s = json.loads(pg.get_attribute(root(site, "sampling2"), "data-state"))
    pg.wait_for_function("(sel) => JSON.parse(document.querySelector(sel).dataset.state).done", arg=root(site, "sampling2"))
    s = json.loads(pg.get_attribute(root(site, "sampling2"), "data-state"))
    tok = models["gpt2"][1]
    assert s["new_ids"] == new_ids_greedy(shipped["gpt2", "float16"], tok.encode("The"), 20)
    assert pg.errors == [] and all(u.startswith(("file://", "data:")) for u in pg.requests)
    pg.close()


@pytest.mark.parametrize("insert", [INSERT_LIKE_JUPYTERLAB, INSERT_LIKE_JQUERY], ids=["jupyterlab", "classic"])
def test_an_inlined_explorer_runs_in_live_notebook_front_ends(browser, models, shipped, insert):
    model, tok = models["gpt2"]
    explorer = live.sampling_explorer(model, tok, "To sleep", n_new=25, temperature=0.9, top_k=8, seed=3,
                                      name="gpt2", weights="inline")
    assert explorer.shared_bytes == 0
    pg = browser.new_page()
    watch(pg, "about:")
    pg.set_content("<!doctype html><html><head></head><body></body></html>")
    pg.evaluate(insert, explorer.html)
    pg.wait_for_function("() => { const e = document.querySelector('.mlv'); return e.dataset.state && "
                         "JSON.parse(e.dataset.state).done; }")
    s = json.loads(pg.get_attribute(".mlv", "data-state"))
    assert s["new_ids"] == web.page_generate(shipped["gpt2", "float16"], tok.encode("To sleep"), 25, seed=3,
                                             temperature=0.9, top_k=8)
    assert pg.errors == []
    pg.close()


def test_a_missing_weight_file_is_reported_not_hidden(browser, models, tmp_path):
    model, tok = models["gpt2"]
    explorer = live.sampling_explorer(model, tok, "To", name="gpt2", weights=web.SharedWeights(tmp_path / "w", "nowhere/"))
    (tmp_path / "index.html").write_text(f"<!doctype html><meta charset='utf-8'>{explorer.html}")
    pg = browser.new_page()
    watch(pg, "file://")
    pg.goto((tmp_path / "index.html").as_uri())
    pg.wait_for_function("() => document.querySelector('.mlv').dataset.model === 'failed'")
    caption = pg.inner_text("[data-testid='caption']")
    assert caption.startswith("The model did not load: could not load the model weights from nowhere/gpt2-float16-")
    assert any("could not load the model weights" in e for e in pg.errors)  # and said on the console
    pg.close()


def test_an_exported_page_opens_offline_and_generates(browser, models, shipped, tmp_path):
    model, tok = models["gpt2"]
    save_model(model, tmp_path / "run")
    tok.save(tmp_path / "run" / "tokenizer.json")
    out = tmp_path / "gpt2.html"
    assert cli_main(["export", str(tmp_path / "run"), "--web", str(out)]) == 0
    pg = browser.new_page()
    watch(pg, "file://")
    pg.goto(out.as_uri())
    pg.wait_for_function("() => { const e = document.querySelector('[data-explorer=\"live-sampling\"]');"
                         " return e.dataset.state && JSON.parse(e.dataset.state).done; }", timeout=60_000)
    s = json.loads(pg.get_attribute("[data-explorer='live-sampling']", "data-state"))
    # the page's defaults: prompt "\n", temperature 0.8, seed 0, 200 new tokens
    assert s["new_ids"] == web.page_generate(shipped["gpt2", "float16"], tok.encode("\n"), 200, seed=0, temperature=0.8)
    attention = json.loads(pg.get_attribute("[data-explorer='live-attention']", "data-state"))
    assert attention["ids"] == tok.encode("\n") and attention["error"] is None
    assert pg.errors == [] and all(u.startswith(("file://", "data:")) for u in pg.requests)
    assert re.search(r"\d+ tokens in [\d.]+ s", pg.inner_text("[data-explorer='live-sampling'] [data-testid='caption']"))
    pg.close()
