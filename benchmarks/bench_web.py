"""The model in the page against PyTorch, and what a page weighs.

1. Greedy generation, tokens per second: ``viz/static/gpt.js`` in headless Chromium (one
   JavaScript thread, timed inside the page) against ``minillm_lib.generate`` in PyTorch on
   the CPU, on the same weights (``web.shipped_model``), alternating in one run; the tokens
   must be identical. PyTorch runs with one thread and with its default threads, and its
   faster one is the peer (on a busy machine its threads wait for each other). Two regimes: within the context (a 1-token prompt
   and block_size - 1 new tokens, each step one token through the KV cache), and past it (a
   prompt that fills the context, then 16 new tokens: with the context full, both recompute
   the last block_size tokens every step, as ``generate`` does). Two shapes: the course model's (``zoo.RECIPES``)
   and a larger one (6 layers x 192 wide x 128 tokens of context), in case the course model
   grows. Target: at least 0.5x PyTorch's tokens per second.
2. Bytes: each weight file (float16 and int8) against the model's float32 safetensors file,
   and each live explorer's output with its weights shared (what a chapter page carries
   besides the one cached weight file) or inlined (what a notebook output carries).

    python -m benchmarks.bench_web [--quick]
"""

from __future__ import annotations

import inspect
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._timing import command_line, row
from minillm_lib.checkpoint import save_model
from minillm_lib.config import GPTConfig
from minillm_lib.finetune import CHAT_SPECIAL_TOKENS
from minillm_lib.model import GPT
from minillm_lib.sampling import generate
from minillm_lib.tokenizers import CharTokenizer
from minillm_lib.viz import live, web
from minillm_lib.viz.outputs import static_text
from minillm_lib.zoo import RECIPES, load_course_model

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # Tiny Shakespeare's 65
LARGER = dict(n_layer=6, n_head=6, n_embd=192, block_size=128)
QUICK = dict(n_layer=2, n_head=2, n_embd=32, block_size=16)


def course_shape() -> dict:
    """The GPTConfig fields of the course model that load_course_model() trains by default."""
    name = inspect.signature(load_course_model).parameters["name"].default
    return dict(RECIPES[name]["model"])


def tokenizer() -> CharTokenizer:
    return CharTokenizer(list(CHARS), special_tokens=CHAT_SPECIAL_TOKENS)  # chat tokens: the chat box runs too


def make_model(shape: dict, overrides: dict) -> GPT:
    """The shape with other sizes: as many query heads per key/value head as before (else one
    each), the MLP width recomputed from the new width."""
    shape = {**shape, **overrides}
    if overrides:
        group = shape["n_head"] // (shape.get("n_kv_head") or shape["n_head"])
        shape["n_kv_head"] = shape["n_head"] // group if shape["n_head"] % group == 0 else None
        shape["mlp_hidden"] = None
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=tokenizer().vocab_size, **shape)).eval()


def open_page(browser, folder: Path, script: web.WeightScript):
    """A page with the engine and one model; window.gpt is its GPT."""
    (folder / script.file_name).write_text(script.text)
    engine = "".join(f"<script>{static_text(n)}</script>" for n in live.ENGINE)
    (folder / "bench.html").write_text(f'<!doctype html><meta charset="utf-8"><script src="{script.file_name}"></script>{engine}')
    page = browser.new_page()
    page.goto((folder / "bench.html").as_uri())
    page.evaluate("(key) => { window.gpt = minillm.model(key).gpt; }", script.key)
    return page


def bench_generation(page, model: GPT, label: str, prompt: list[int], new_tokens: int, repeats: int) -> dict:
    out = {}
    default_threads = torch.get_num_threads()

    def run_page() -> float:
        ms, out["page"] = page.evaluate("([p, n]) => { const t = performance.now(); const ids = minillm.generate("
                                        "gpt, p, n, {temperature: 0}); return [performance.now() - t, ids]; }",
                                        [prompt, new_tokens])
        return ms / 1000

    def run_torch(threads: int) -> float:
        torch.set_num_threads(threads)
        try:
            start = time.perf_counter()
            with torch.inference_mode():
                out["torch"] = generate(model, torch.tensor([prompt]), new_tokens, temperature=0)[0, len(prompt):].tolist()
            return time.perf_counter() - start
        finally:
            torch.set_num_threads(default_threads)

    sides = {"page": run_page, "torch, 1 thread": lambda: run_torch(1),
             f"torch, {default_threads} threads": lambda: run_torch(default_threads)}
    for side in sides.values():  # warm-up: the JIT compiles, PyTorch allocates
        side()
    times: dict[str, list[float]] = {name: [] for name in sides}
    identical = True
    for _ in range(repeats):  # in turns, so every side goes through the same machine drift
        for name, side in sides.items():
            times[name].append(side())
            identical &= out["page"] == out.get("torch", out["page"])
    per_second = {name: new_tokens / statistics.median(t) for name, t in times.items()}
    peer = max(v for name, v in per_second.items() if name != "page")
    return row(f"greedy generation in the page vs PyTorch CPU, {label}", per_second["page"], peer,
               "tokens/s", target=0.5, lower_is_better=False, identical_tokens=identical,
               new_tokens=new_tokens, tokens_per_second={k: round(v, 1) for k, v in per_second.items()})


def bench_speed(quick: bool) -> list[dict]:
    from playwright.sync_api import sync_playwright

    from tests.browsing import CHROMIUM, CHROMIUM_ARGS

    shapes = [("quick shape", course_shape(), QUICK)] if quick else [
        ("course shape", course_shape(), {}), ("larger shape", course_shape(), LARGER)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for label, shape, overrides in shapes:
                model = make_model(shape, overrides)
                page = open_page(browser, Path(tmp), web.weight_script(model, tokenizer(), name="bench"))
                shipped = web.shipped_model(model)
                block = shipped.config.block_size
                cfg = shipped.config
                what = f"{label} ({cfg.n_layer}x{cfg.n_embd}, block {block})"
                rows.append(bench_generation(page, shipped, f"{what}, within the context", [1], block - 1,
                                             2 if quick else 5))
                full = [(7 * i) % cfg.vocab_size for i in range(block)]  # the context already full
                rows.append(bench_generation(page, shipped, f"{what}, past the context (recomputed)", full,
                                             4 if quick else 16, 2 if quick else 3))
                page.close()
        finally:
            browser.close()
    return rows


def bench_bytes(quick: bool) -> list[dict]:
    rows = []
    tok = tokenizer()
    shapes = [("quick shape", QUICK)] if quick else [("course shape", {}), ("6x192, block 128", LARGER)]
    with tempfile.TemporaryDirectory() as tmp:
        for label, overrides in shapes:
            model = make_model(course_shape(), overrides)
            save_model(model, Path(tmp) / label)
            float32 = (Path(tmp) / label / "model.safetensors").stat().st_size
            for dtype, target in (("float16", 0.7), ("int8", 0.4)):
                size = web.weight_script(model, tok, name="bench", dtype=dtype).nbytes
                rows.append(row(f"weight file, {dtype}, {label} ({model.num_params():,} parameters)", size, float32,
                                "bytes (peer = float32 safetensors)", target=target))
        model = make_model(course_shape(), QUICK if quick else {})
        shared = web.SharedWeights(Path(tmp) / "static", "../_static/models/")
        outputs = {
            "live-sampling": lambda w: live.sampling_explorer(model, tok, "\n", weights=w),
            "live-attention": lambda w: live.attention_explorer(model, tok, "ROMEO:", weights=w),
            "kv-cache": lambda w: live.kv_cache_explorer(model, tok, "\n", weights=w),
            "chat": lambda w: live.chat_explorer(model, tok, "Hello", weights=w),
            "int8": lambda w: live.int8_explorer(model, tok, "\n", weights=w),
        }
        sizes = {kind: (build(shared).nbytes, build("inline").nbytes) for kind, build in outputs.items()}
    budget = 150_000
    largest = max(shared_size for shared_size, _ in sizes.values())
    rows.append(row(f"largest live explorer output, weights shared ({'quick' if quick else 'course'} shape)", largest, budget,
                    "bytes (peer = budget)", target=1.0,
                    shared_bytes={kind: s for kind, (s, _) in sizes.items()},
                    inline_bytes={kind: i for kind, (_, i) in sizes.items()}))
    return rows


def run(quick: bool = False) -> list[dict]:
    torch.manual_seed(0)
    return bench_speed(quick) + bench_bytes(quick)


if __name__ == "__main__":
    command_line(run, __doc__)
