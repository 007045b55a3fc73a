"""Course models (chapters 4-16): trained once on your machine, deterministically, then
loaded from a cache.

Chapters that need a trained model (sampling, attention maps, fine-tuning) call::

    model, tokenizer = load_course_model("shakespeare-char")

The first call trains the model from its recipe (about 5 minutes on 2 CPU threads) and
saves it in ``$MINILLM_CACHE`` (default ``~/.cache/minillm``) under ``<name>-<hash>``,
where the hash covers every number in the recipe: change a recipe and it trains anew.
Later calls load the saved model in a moment. A file lock makes a second process wait
for the first one's training instead of training the same model at the same time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from . import data
from .checkpoint import load_model
from .config import PRESETS, TRAIN_PRESETS, GPTConfig
from .files import atomic_write_json, file_lock
from .model import GPT
from .tokenizers import CharTokenizer, load_tokenizer
from .training import TrainConfig, train

# Recipes are plain data: the corpus, the tokenizer, the number of CPU threads, every
# GPTConfig field but vocab_size, and the TrainConfig fields that differ from its defaults.
RECIPES: dict[str, dict[str, Any]] = {
    # The recommended CPU recipe (config.PRESETS and TRAIN_PRESETS["cpu-5min"], the winner of
    # chapter 8's recipe search) on the complete works of Shakespeare, read character by
    # character: `minillm train --preset cpu-5min` takes the same steps.
    "shakespeare-char": {
        "corpus": "shakespeare",
        "tokenizer": "char",
        "threads": 2,  # what Colab and small laptops have
        "model": dict(PRESETS["cpu-5min"]),
        "train": dict(**TRAIN_PRESETS["cpu-5min"], eval_interval=0, eval_batch_size=64,
                      seed=1337, device="cpu"),
    },
}

DONE_FILE = "recipe.json"  # written last: its presence means the cached model is complete


def recipe_hash(recipe: dict[str, Any]) -> str:
    """12 hex digits identifying a recipe (its JSON with sorted keys, hashed)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _train_recipe(recipe: dict[str, Any], folder: Path, progress: bool) -> tuple[GPT, CharTokenizer]:
    if recipe["tokenizer"] != "char":
        raise ValueError(f"recipe tokenizer must be 'char', got {recipe['tokenizer']!r}")
    text = data.load_corpus(recipe["corpus"])
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, val_ids = data.train_val_split(ids)
    # The cache folder is a run folder, as `minillm train --out` writes one: the model, its
    # tokenizer, the training log (train_log.jsonl) and the final training checkpoint.
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(folder / "tokenizer.json")
    steps = recipe["train"]["max_iters"]  # one checkpoint, at the end
    cfg = TrainConfig(**{**recipe["train"], "out_dir": str(folder), "ckpt_interval": steps})
    torch.manual_seed(cfg.seed)  # the initial weights
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **recipe["model"]))
    # Work split over several threads is summed in another order, which changes the last
    # bits of the weights: a fixed thread count gives every machine the same model.
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe["threads"])
    start = time.perf_counter()
    try:
        history = train(model, train_ids, val_ids, cfg, tokenizer=tokenizer, progress=progress)
    finally:
        torch.set_num_threads(threads)
    atomic_write_json(folder / DONE_FILE, {
        "recipe": recipe,
        "val": history.evals[-1],
        "train_seconds": round(time.perf_counter() - start, 1),
        "torch_version": torch.__version__,
    })
    return model.eval(), tokenizer


def _course_folder(
    name: str, cache_dir: str | os.PathLike | None, recipe: dict[str, Any] | None
) -> tuple[dict[str, Any], Path]:
    """The recipe for ``name`` (``RECIPES[name]`` unless given) and its cache folder."""
    if recipe is None:
        if name not in RECIPES:
            raise ValueError(f"unknown course model {name!r}; known: {sorted(RECIPES)}")
        recipe = RECIPES[name]
    root = Path(cache_dir) if cache_dir is not None else data.cache_dir()
    return recipe, root / f"{name}-{recipe_hash(recipe)}"


def load_course_model(
    name: str = "shakespeare-char",
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    recipe: dict[str, Any] | None = None,
) -> tuple[GPT, CharTokenizer]:
    """The course model ``name`` and its tokenizer, trained on first use and cached.

    Args:
        cache_dir: where models are kept (default: $MINILLM_CACHE or ~/.cache/minillm).
        progress: show a progress bar while training.
        recipe: train this recipe under ``name`` instead of ``RECIPES[name]`` (a variant
            gets its own cache folder, since the hash differs).
    Returns:
        (model in eval mode on the CPU, tokenizer).

    Training is seeded and runs on the CPU with a fixed number of threads, so every
    machine gets the same model (up to differences between CPU instruction sets). Its
    exact validation loss is kept in ``<cache folder>/recipe.json``.
    """
    recipe, folder = _course_folder(name, cache_dir, recipe)
    root = folder.parent
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f"{folder.name}.lock"):
        if (folder / DONE_FILE).is_file():
            return load_model(folder).eval(), load_tokenizer(folder / "tokenizer.json")
        if progress:
            print(f"Training the course model {name!r} once (cached in {str(folder)!r}).", file=sys.stderr)
        return _train_recipe(recipe, folder, progress)


def course_model_info(
    name: str = "shakespeare-char",
    *,
    cache_dir: str | os.PathLike | None = None,
    recipe: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What was recorded when the course model ``name`` was trained (training it first if
    it is not cached yet): ``recipe``, ``val`` (the exact evaluation on the whole validation
    split after the last step: loss, perplexity, bits_per_token, bits_per_char, step),
    ``train_seconds``, ``torch_version``, and ``folder``: the cache folder, a run folder as
    ``minillm train --out`` writes one (train_log.jsonl holds every step). Arguments as for
    ``load_course_model``."""
    recipe, folder = _course_folder(name, cache_dir, recipe)
    if not (folder / DONE_FILE).is_file():
        load_course_model(name, cache_dir=cache_dir, recipe=recipe)
    return {**json.loads((folder / DONE_FILE).read_text()), "folder": str(folder)}
