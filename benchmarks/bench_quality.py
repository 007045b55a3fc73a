"""Time to quality: how good a model a 2-core CPU trains, and how fast, on Tiny Shakespeare.

1. ``baby`` with nanoGPT's recipe (``TrainConfig()``: 2,000 steps of 12 x 64 characters, lr 1e-3,
   warm-up 100, cosine to 1e-4) against the validation loss nanoGPT reports for the same shape
   and budget, 1.8857. Ours is the *exact* loss on the whole validation split (nanoGPT
   estimates it from random batches), so agreement within 0.03 is the target.
2. The recommended CPU preset, ``cpu-5min`` (model and training recipe, the winner of the
   recipe search in ``bench_recipes.py``), in the same run: the training time until its
   validation loss first reaches 1.8857, against the baby run's whole training time.
   Target: at most 0.35 of it.
3. The best validation loss the recommended preset reaches in its ~5-minute run. Target:
   1.50 or lower (stretch: 1.47, what nanoGPT's GPU recipe reaches after 3 minutes on an A100).

Times count training steps only (the evaluations every ``EVAL_INTERVAL`` steps are not
counted); the data is ``../shared/data/tinyshakespeare.txt`` (or ``load_corpus
("tinyshakespeare")``, which downloads it when online), split 90/10 as nanoGPT does.

    python -m benchmarks.bench_quality [--quick]
"""

from __future__ import annotations

import dataclasses

import torch

from benchmarks._timing import command_line, row
from benchmarks.bench_tokenizer import TINY_SHAKESPEARE
from minillm_lib.config import GPTConfig
from minillm_lib.data import load_corpus, train_val_split
from minillm_lib.model import GPT
from minillm_lib.tokenizers import CharTokenizer
from minillm_lib.training import TrainConfig, train

NANOGPT_BABY_VAL = 1.8857  # nanoGPT's README: baby GPT, 2000 iterations, CPU
TARGET_VAL = 1.50  # the best val loss the 5-minute recipe must reach
STRETCH_VAL = 1.47  # nanoGPT's shakespeare-char on an A100 after about 3 minutes (its README)
TIME_TO_BABY = 0.35  # at most this share of the baby run's time to reach its loss
EVAL_INTERVAL = 50  # how finely the time to 1.8857 is resolved (about 2.5 s)


def tiny_shakespeare() -> str:
    return load_corpus(TINY_SHAKESPEARE if TINY_SHAKESPEARE.is_file() else "tinyshakespeare")


def run_preset(preset: str, ids: torch.Tensor, vocab_size: int, quick: bool) -> dict:
    """Train ``preset`` (model + recipe) and record training seconds at every evaluation."""
    train_ids, val_ids = train_val_split(ids)
    cfg = TrainConfig.from_preset(preset, eval_interval=EVAL_INTERVAL, eval_batch_size=64,
                                  device="cpu")
    if quick:  # a smoke run: a few steps, a small validation slice
        cfg = dataclasses.replace(cfg, max_iters=4, warmup_iters=2, eval_interval=2)
        val_ids = val_ids[:2000]
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig.from_preset(preset, vocab_size=vocab_size))
    seconds = {"train": 0.0}
    curve = []  # (training seconds so far, exact val loss)
    tokens_per_step = cfg.batch_size * cfg.grad_accum_steps * model.config.block_size

    def on_step(info: dict) -> None:
        seconds["train"] += tokens_per_step / info["tokens_per_sec"]

    def on_eval(info: dict) -> None:
        curve.append((seconds["train"], info["loss"]))

    train(model, train_ids, val_ids, cfg, on_step=on_step, on_eval=on_eval, progress=False)
    return {"seconds": seconds["train"], "curve": curve, "final": curve[-1][1],
            "best": min(loss for _, loss in curve), "steps": cfg.max_iters}


def run(quick: bool = False) -> list[dict]:
    # The smoke run must not need the network or ../shared: the packaged corpus will do.
    text = load_corpus("shakespeare")[:200_000] if quick else tiny_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the machine the targets are set for: 2 cores
    try:
        baby = run_preset("baby", ids, tokenizer.vocab_size, quick)
        best = run_preset("cpu-5min", ids, tokenizer.vocab_size, quick)
    finally:
        torch.set_num_threads(threads)
    reached = [t for t, loss in best["curve"] if loss <= NANOGPT_BABY_VAL]
    # Not reached: report the whole run's time, marked as such, so the ratio is a lower bound.
    t_reach = reached[0] if reached else best["seconds"]
    diff = baby["final"] - NANOGPT_BABY_VAL
    return [
        {**row(f"baby, {baby['steps']} steps: val loss vs nanoGPT's", baby["final"],
               NANOGPT_BABY_VAL, "nats", target=1.0), "target": "|diff| <= 0.03",
         "met": abs(diff) <= 0.03, "train_seconds": baby["seconds"]},
        row(f"cpu-5min: time to val {NANOGPT_BABY_VAL} vs the baby run", t_reach,
            baby["seconds"], "s", target=TIME_TO_BABY, reached=bool(reached)),
        {**row(f"cpu-5min, {best['steps']} steps: best val loss vs the target {TARGET_VAL}",
               best["best"], TARGET_VAL, "nats", target=1.0),
         "train_seconds": best["seconds"], "final": best["final"],
         "stretch": f"<= {STRETCH_VAL}", "stretch_met": best["best"] <= STRETCH_VAL},
    ]


if __name__ == "__main__":
    command_line(run, __doc__)
