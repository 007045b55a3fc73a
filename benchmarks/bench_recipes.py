"""The recipe search: which model and training settings give the best character model in five
minutes on 2 CPU threads? The search behind the ``cpu-5min`` preset (chapter 8).

Every recipe trains on Tiny Shakespeare (``../shared/data/tinyshakespeare.txt``, 90/10 split,
character tokens) for the same wall-clock budget on 2 threads. Its step time is measured first
(the fastest of ``CALIBRATION_STEPS`` steps: these machines switch between two speed levels
about 1.3x apart, and a median taken on the slow level would give a recipe too few steps); a
``torch.compile``-d recipe also pays its compile time out of the budget. Its step count is the
budget divided by the step time, and its schedule is fitted to that many steps. The figure is
the exact validation loss at the end (the whole validation split, not an estimate).

1. **Screen** (``SCREEN_S`` seconds each): one change at a time from ``BASE`` (the previous
   ``cpu-5min``): context length, width, depth, tokens per step, peak learning rate, warm-up,
   schedule, weight decay, dropout, optimizer, bfloat16, ``torch.compile``.
2. **Around the best** (same budget): the best recipe of the screen becomes the centre, and
   changes are tried one at a time around it (``AROUND``); then its two best changes together.
3. **Final** (``FINAL_S`` seconds, five minutes): the base and the best ``N_FINAL`` recipes of
   stages 1 and 2, evaluated every ``FINAL_EVALS``-th of the run; the winner is the lowest val loss.

Rows compare each recipe's val loss with the base's in the same stage (ratio < 1: better).
Progress is kept in ``benchmarks/.recipes_progress.jsonl`` (not committed), so an interrupted
search continues where it stopped; ``--fresh`` starts over.

    python -m benchmarks.bench_recipes [--quick] [--fresh]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks._timing import row
from benchmarks.bench_quality import tiny_shakespeare
from minillm_lib.config import PRESETS, GPTConfig
from minillm_lib.data import get_batch, load_corpus, train_val_split
from minillm_lib.model import GPT
from minillm_lib.tokenizers import CharTokenizer
from minillm_lib.training import TrainConfig, configure_optimizer, evaluate, train, train_step

HERE = Path(__file__).resolve().parent
PROGRESS = HERE / ".recipes_progress.jsonl"
SCREEN_S, FINAL_S = 100.0, 300.0
N_FINAL = 3
FINAL_EVALS = 20
CALIBRATION_STEPS = 20
THREADS = 2

# The previous cpu-5min: the baby GPT's size with RoPE, RMSNorm and SwiGLU.
BASE: dict[str, Any] = {
    "model": dict(PRESETS["cpu-5min"]),
    "batch_size": 12, "lr": 2e-3, "warmup": 0.02, "schedule": "cosine", "optimizer": "adamw",
    "weight_decay": 0.1, "dtype": "float32", "compile": False,
}

# Stage 2: changes tried one at a time around the screen's best recipe.
AROUND: list[tuple[str, dict[str, Any]]] = [
    ("bfloat16 autocast", {"dtype": "bfloat16"}),
    ("torch.compile", {"compile": True}),
    ("batch 24", {"batch_size": 24}),
    ("lr x1.5", {"lr_factor": 1.5}),
    ("lr x0.7", {"lr_factor": 0.7}),
    ("WSD (decay 20%)", {"schedule": "wsd"}),
    ("block 128, batch 6", {"model": {"block_size": 128}, "batch_size": 6}),
    ("3 layers, width 96", {"model": {"n_layer": 3, "n_embd": 96, "n_head": 4}}),
    ("width 160", {"model": {"n_embd": 160, "n_head": 5}}),
    ("warm-up 5%", {"warmup": 0.05}),
    ("weight decay 0", {"weight_decay": 0.0}),
]

# Stage 1: (setting, value, what changes). A setting groups the values of one axis, so that
# stage 2 combines at most one value per setting.
SCREEN: list[tuple[str, str, dict[str, Any]]] = [
    ("context", "block 128", {"model": {"block_size": 128}}),
    ("context", "block 128, batch 6", {"model": {"block_size": 128}, "batch_size": 6}),
    ("context", "block 256", {"model": {"block_size": 256}, "batch_size": 6}),
    ("tokens per step", "batch 24", {"batch_size": 24}),
    ("tokens per step", "batch 6", {"batch_size": 6}),
    ("peak lr", "lr 1e-3", {"lr": 1e-3}),
    ("peak lr", "lr 3e-3", {"lr": 3e-3}),
    ("peak lr", "lr 4e-3", {"lr": 4e-3}),
    ("warm-up", "warm-up 5%", {"warmup": 0.05}),
    ("warm-up", "warm-up 0.5%", {"warmup": 0.005}),
    ("schedule", "WSD (decay 20%)", {"schedule": "wsd"}),
    ("weight decay", "weight decay 0", {"weight_decay": 0.0}),
    ("weight decay", "weight decay 0.3", {"weight_decay": 0.3}),
    ("dropout", "dropout 0.1", {"model": {"dropout": 0.1}}),
    ("optimizer", "Muon", {"optimizer": "muon"}),
    ("optimizer", "Muon, lr 4e-3", {"optimizer": "muon", "lr": 4e-3}),
    ("width", "width 96", {"model": {"n_embd": 96, "n_head": 4}}),
    ("width", "width 192", {"model": {"n_embd": 192, "n_head": 6}}),
    ("depth", "3 layers", {"model": {"n_layer": 3}}),
    ("depth", "6 layers", {"model": {"n_layer": 6}}),
    ("precision", "bfloat16 autocast", {"dtype": "bfloat16"}),
    ("compile", "torch.compile", {"compile": True}),
]


def merge(recipe: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``recipe`` with ``change`` applied (its "model" entries update the model's)."""
    out = copy.deepcopy(recipe)
    for key, value in change.items():
        if key == "model":
            out["model"].update(value)
        elif key == "lr_factor":  # relative to the recipe's own lr
            out["lr"] = float(f"{recipe['lr'] * value:.2g}")
        else:
            out[key] = value
    return out


def build(recipe: dict[str, Any], vocab_size: int, steps: int) -> tuple[GPTConfig, TrainConfig]:
    """The model and training configs of ``recipe`` for ``steps`` optimizer steps."""
    config = GPTConfig(vocab_size=vocab_size, **recipe["model"])
    cfg = TrainConfig(
        batch_size=recipe["batch_size"], max_iters=steps, lr=recipe["lr"],
        min_lr=recipe["lr"] / 10, warmup_iters=max(1, round(recipe["warmup"] * steps)),
        schedule=recipe["schedule"], optimizer=recipe["optimizer"],
        weight_decay=recipe["weight_decay"], dtype=recipe["dtype"], compile=recipe["compile"],
        eval_interval=0, eval_batch_size=64, device="cpu")
    return config, cfg


def _stepper(recipe: dict[str, Any], data: torch.Tensor, vocab_size: int):
    """A fresh model of ``recipe`` and a function that times one training step of it."""
    config, cfg = build(recipe, vocab_size, 1000)
    torch.manual_seed(0)
    model = GPT(config)
    optimizer = configure_optimizer(model, lr=cfg.lr, optimizer=cfg.optimizer)
    step_model = torch.compile(model) if cfg.compile else model
    generator = torch.Generator().manual_seed(0)

    def step() -> float:
        batch = [get_batch(data, cfg.batch_size, config.block_size, generator=generator)]
        start = time.perf_counter()
        train_step(step_model, optimizer, batch, grad_clip=cfg.grad_clip, dtype=cfg.dtype)
        return time.perf_counter() - start

    return step


def base_step_seconds(data: torch.Tensor, vocab_size: int, steps: int) -> float:
    """The base recipe's fastest step: the time scale of the whole search."""
    step = _stepper(BASE, data, vocab_size)
    return min(step() for _ in range(steps + 2))


def calibrate(recipe: dict[str, Any], data: torch.Tensor, vocab_size: int, rounds: int,
              base_step_s: float) -> tuple[float, float]:
    """(step seconds, compile seconds) of ``recipe`` on the base's time scale.

    Steps of the base and of the recipe alternate and the fastest of each is kept, so a
    machine that is busy for a while slows both alike and their ratio still holds: the
    recipe's step time is that ratio times ``base_step_s``. A compiled recipe's first step
    is slower by its compile time, rescaled by the same slowdown."""
    base, ours = _stepper(BASE, data, vocab_size), _stepper(recipe, data, vocab_size)
    base_times, our_times = [], []
    for _ in range(rounds + 2):
        base_times.append(base())
        our_times.append(ours())
    fastest_base, fastest = min(base_times[2:]), min(our_times[2:])
    slowdown = max(1.0, fastest_base / base_step_s)
    compile_s = (our_times[0] - fastest) / slowdown if recipe["compile"] else 0.0
    return fastest / fastest_base * base_step_s, compile_s


def run_recipe(name: str, recipe: dict[str, Any], ids: torch.Tensor, vocab_size: int,
               budget_s: float, n_evals: int, quick: bool, base_step_s: float) -> dict[str, Any]:
    """Train ``recipe`` for ``budget_s`` seconds' worth of steps; its val loss curve."""
    train_ids, val_ids = train_val_split(ids)
    step_s, compile_s = calibrate(recipe, train_ids, vocab_size, 2 if quick else CALIBRATION_STEPS,
                                  base_step_s)
    steps = max(4, int((budget_s - compile_s) / step_s))
    config, cfg = build(recipe, vocab_size, steps)
    if n_evals > 1:
        cfg = dataclasses.replace(cfg, eval_interval=max(1, steps // n_evals))
    torch.manual_seed(cfg.seed)
    model = GPT(config)
    curve: list[tuple[int, float]] = []
    train(model, train_ids, val_ids if n_evals > 1 else None, cfg, progress=False,
          on_eval=lambda info: curve.append((info["step"], info["loss"])))
    if n_evals <= 1:
        curve.append((steps, evaluate(model, val_ids, 64)["loss"]))
    return {"name": name, "recipe": recipe, "steps": steps, "step_ms": step_s * 1e3,
            "base_step_ms": base_step_s * 1e3,
            "compile_s": compile_s, "params": model.num_params(),
            "tokens_per_step": cfg.batch_size * config.block_size,
            "curve": curve, "val": curve[-1][1], "best": min(loss for _, loss in curve)}


class Progress:
    """Results of finished runs, kept on disk by (stage, name, budget) so a search resumes."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.done = path, {}
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                self.done[(record["stage"], record["name"], record["budget_s"])] = record

    def base_step_s(self, measure: Callable[[], float]) -> float:
        """The search's time scale: measured once, then kept for the rest of the search."""
        key = ("calibration", "base step", 0)
        if key not in self.done:
            self.record({"stage": "calibration", "name": "base step", "budget_s": 0,
                         "seconds": measure()})
        return self.done[key]["seconds"]

    def record(self, result: dict[str, Any]) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(result) + "\n")
        self.done[(result["stage"], result["name"], result["budget_s"])] = result

    def run(self, stage: str, name: str, recipe: dict[str, Any], budget_s: float,
            **kwargs: Any) -> dict[str, Any]:
        key = (stage, name, budget_s)
        if key in self.done and self.done[key]["recipe"] == json.loads(json.dumps(recipe)):
            return self.done[key]
        result = {"stage": stage, "budget_s": budget_s,
                  **run_recipe(name, recipe, budget_s=budget_s, **kwargs)}
        print(f"  {stage:8} {name:40} {result['steps']:6} steps {result['step_ms']:7.1f} ms  "
              f"val {result['val']:.4f}", flush=True)
        self.record(result)
        return result


def search(ids: torch.Tensor, vocab_size: int, quick: bool,
           progress: Progress) -> dict[str, list[dict[str, Any]]]:
    """The three stages; returns their results by stage name."""
    screen_s, final_s = (1.0, 2.0) if quick else (SCREEN_S, FINAL_S)
    screen = SCREEN[:2] if quick else SCREEN
    base_step_s = progress.base_step_s(
        lambda: base_step_seconds(train_val_split(ids)[0], vocab_size, 4 if quick else 60))
    print(f"base step: {base_step_s * 1e3:.1f} ms", flush=True)
    common = dict(ids=ids, vocab_size=vocab_size, quick=quick, base_step_s=base_step_s)
    base = progress.run("screen", "base (previous cpu-5min)", BASE, screen_s, n_evals=1, **common)
    singles = [(setting, label, merge(BASE, change),
                progress.run("screen", label, merge(BASE, change), screen_s, n_evals=1, **common))
               for setting, label, change in screen]

    # Stage 2: around the best of the screen, one change at a time, then its two best
    # changes together.
    best = min(singles, key=lambda s: s[3]["val"])
    center, center_label = best[2], best[1]
    around = [(label, merge(center, change),
               progress.run("around", f"{center_label} + {label}", merge(center, change),
                            screen_s, n_evals=1, **common))
              for label, change in (AROUND[:1] if quick else AROUND)]
    helped = sorted((r for r in around if r[2]["val"] < best[3]["val"]), key=lambda r: r[2]["val"])
    combined = [r for *_, r in around]
    if len(helped) >= 2:
        (l1, c1, _), (l2, _, _) = helped[:2]
        change2 = dict(AROUND)[l2]
        recipe = merge(c1, change2)
        combined.append(progress.run("around", f"{center_label} + {l1} + {l2}", recipe, screen_s,
                                     n_evals=1, **common))

    # Stage 3: the base and the best few, five minutes each, evaluated along the way.
    candidates = sorted([r for *_, r in singles] + combined, key=lambda r: r["val"])
    finalists = [base] + [r for r in candidates if r["name"] != base["name"]][:N_FINAL]
    final = [progress.run("final", r["name"], r["recipe"], final_s,
                          n_evals=2 if quick else FINAL_EVALS, **common) for r in finalists]
    return {"screen": [base] + [r for *_, r in singles], "around": combined, "final": final}


def run(quick: bool = False, fresh: bool = False) -> list[dict]:
    # The smoke run must not need ../shared: the packaged corpus will do.
    text = load_corpus("shakespeare")[:100_000] if quick else tiny_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    path = None if quick else PROGRESS
    if fresh and path is not None:
        path.unlink(missing_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        stages = search(ids, tokenizer.vocab_size, quick, Progress(path))
    finally:
        torch.set_num_threads(threads)
    rows = []
    for stage, results in stages.items():
        reference = results[0]["val"] if stage != "around" else stages["screen"][0]["val"]
        for r in results:
            rows.append(row(f"{stage} {r['budget_s']:g} s: {r['name']}", r["val"], reference,
                            "val loss", target=1.0, steps=r["steps"],
                            step_ms=round(r["step_ms"], 1), compile_s=round(r["compile_s"], 1),
                            params=r["params"], tokens_per_step=r["tokens_per_step"],
                            best=round(r["best"], 4), recipe=r["recipe"],
                            curve=[[s, round(v, 4)] for s, v in r["curve"]]))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--fresh", action="store_true", help="forget the saved progress")
    args = parser.parse_args()
    for r in run(args.quick, args.fresh):
        print({k: v for k, v in r.items() if k not in ("recipe", "curve")})
