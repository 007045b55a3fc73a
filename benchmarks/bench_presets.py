"""Which architecture trains best on a CPU in equal wall time? The screen behind ``cpu-5min``.

Each variant of the baby GPT trains on Tiny Shakespeare for the same wall-clock budget
(``BUDGET_S`` seconds on 2 threads): its step time is measured first (the fastest of 20
steps), and its step count is the budget divided by it, with the schedule (warm-up 5%, cosine to lr / 10) fitted to that
many steps. The figure is the exact validation loss at the end; the peer is ``baby`` with
nanoGPT's learning rate in the same budget, so a ratio below 1 means "better than baby".

    python -m benchmarks.bench_presets [--quick]
"""

from __future__ import annotations

import time

import torch

from benchmarks._timing import command_line, row
from benchmarks.bench_quality import tiny_shakespeare
from minillm_lib.config import GPTConfig
from minillm_lib.data import get_batch, load_corpus, train_val_split
from minillm_lib.model import GPT
from minillm_lib.tokenizers import CharTokenizer
from minillm_lib.training import TrainConfig, configure_optimizer, evaluate, train

BUDGET_S = 100.0
LLAMA = dict(pos_encoding="rope", norm="rmsnorm", mlp="swiglu")
# name: (changes to the baby preset, training settings)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "baby (reference)": ({}, dict(batch_size=12, lr=1e-3)),
    "baby, lr 2e-3": ({}, dict(batch_size=12, lr=2e-3)),
    "+ RoPE": (dict(pos_encoding="rope"), dict(batch_size=12, lr=2e-3)),
    "+ RoPE, RMSNorm, SwiGLU": (LLAMA, dict(batch_size=12, lr=2e-3)),
    "+ RoPE, RMSNorm, SwiGLU, lr 3e-3": (LLAMA, dict(batch_size=12, lr=3e-3)),
    "+ RoPE, RMSNorm, SwiGLU, 6 layers": ({**LLAMA, "n_layer": 6}, dict(batch_size=12, lr=2e-3)),
    "+ RoPE, RMSNorm, SwiGLU, 160 wide": ({**LLAMA, "n_embd": 160, "n_head": 5},
                                          dict(batch_size=12, lr=2e-3)),
}


def step_seconds(config: GPTConfig, batch_size: int, data: torch.Tensor, steps: int) -> float:
    """Fastest of ``steps`` training steps (forward, backward, clip, AdamW) after a warm-up.
    The fastest, not the median: these machines switch between two speed levels about 1.3x
    apart, and a median taken on the slow level would give a variant too few steps."""
    torch.manual_seed(0)
    model = GPT(config)
    optimizer = configure_optimizer(model)
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps + 2):
        x, y = get_batch(data, batch_size, config.block_size, generator=generator)
        start = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return min(times[2:])


def screen(name: str, changes: dict, settings: dict, ids: torch.Tensor, vocab_size: int,
           budget_s: float) -> dict:
    """Train one variant for ``budget_s`` seconds' worth of steps; exact val loss at the end."""
    train_ids, val_ids = train_val_split(ids)
    config = GPTConfig.from_preset("baby", vocab_size=vocab_size, **changes)
    seconds = step_seconds(config, settings["batch_size"], train_ids, 3 if budget_s < 10 else 20)
    steps = max(4, int(budget_s / seconds))
    cfg = TrainConfig(max_iters=steps, warmup_iters=max(2, steps // 20), min_lr=settings["lr"] / 10,
                      eval_interval=0, device="cpu", **settings)
    torch.manual_seed(cfg.seed)
    model = GPT(config)
    train(model, train_ids, None, cfg, progress=False)
    return {"name": name, "steps": steps, "step_ms": seconds * 1e3, "params": model.num_params(),
            "val": evaluate(model, val_ids, 64)["loss"]}


def run(quick: bool = False) -> list[dict]:
    text = load_corpus("shakespeare")[:200_000] if quick else tiny_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    budget = 1.0 if quick else BUDGET_S
    variants = dict(list(VARIANTS.items())[:2]) if quick else VARIANTS
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = [screen(name, changes, settings, ids, tokenizer.vocab_size, budget)
                   for name, (changes, settings) in variants.items()]
    finally:
        torch.set_num_threads(threads)
    baby = results[0]["val"]
    return [row(f"{budget:g} s screen: {r['name']}", r["val"], baby, "val loss", target=1.0,
                steps=r["steps"], step_ms=round(r["step_ms"], 1), params=r["params"])
            for r in results]


if __name__ == "__main__":
    command_line(run, __doc__)
