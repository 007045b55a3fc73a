"""The ``minillm`` command (chapter 16): train, sample, evaluate and export models from a
terminal.

    python -m minillm_lib train --data shakespeare --preset baby --out runs/baby
    python -m minillm_lib sample runs/baby --prompt "ROMEO:" --temperature 0.8 --top-k 40
    python -m minillm_lib eval runs/baby --data shakespeare
    python -m minillm_lib eval runs/baby --choices 200  # and a multiple-choice test: next line
    python -m minillm_lib export runs/baby hf/baby        # a transformers folder: model + tokenizer
    python -m minillm_lib chat runs/chat                  # talk to an instruction-tuned run
    python -m minillm_lib export runs/baby --web baby.html   # one offline page that runs the model

A run folder holds what the run was started with (run.json: corpus, preset, tokenizer),
the model (model.safetensors + config.json), its tokenizer.json, the training checkpoint
(train_state.json + train_state-<step>.safetensors), the training log (train_log.jsonl)
and a lock (train.lock). ``train`` continues a run when its folder holds one (the same
command again, or just ``--out``), and works under ``torchrun --nproc_per_node=N -m
minillm_lib train ...``.

Nothing saved is lost: ``train`` writes only into a new or empty folder or the run it
continues, checks every argument before it writes anything, refuses a second ``train``
into a folder in use, and saves a checkpoint on Ctrl-C; ``export`` writes only a new
folder (or, with ``--web``, a new file). Checksums and the tokenizer's fingerprint are checked on every load.

Mistakes (a missing folder, an unknown preset, an unreadable corpus, a damaged file) end
with a one-line message and exit code 2; a diverged run with exit code 1; Ctrl-C with 130.
Anything unexpected is one line too; ``--debug`` shows its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from ._checks import is_int
from .checkpoint import (
    CONFIG_FILE,
    TRAIN_STATE_FILE,
    WEIGHTS_FILE,
    check_tokenizer,
    first_non_finite,
    has_training_checkpoint,
    load_checkpoint_model,
    load_model,
    read_training_state,
    tidy_run_folder,
)
from .config import PRESETS, TRAIN_PRESETS, GPTConfig
from .data import load_corpus, train_val_split
from .evaluation import NGramModel, choice_accuracy, next_line_task, score_choices
from .files import (
    FileLockedError,
    atomic_folder,
    atomic_write_json,
    atomic_write_text,
    file_lock,
    read_json,
    sha256_hex,
)
from .finetune import CHAT_SPECIAL_TOKENS, END, encode_chat
from .interop import to_hf, to_hf_tokenizer
from .model import GPT
from .sampling import stream
from .tokenizers import BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer
from .training import (
    DTYPES,
    OPTIMIZERS,
    SCHEDULES,
    TRAIN_LOG_FILE,
    NonFiniteLossError,
    TrainConfig,
    evaluate,
    resolve_device,
    train,
)

TOKENIZER_FILE = "tokenizer.json"
RUN_FILE = "run.json"  # what `train` started the run with, to continue it alike
LOCK_FILE = "train.lock"  # held by the `train` writing into the folder
RUN_FILES = (RUN_FILE, CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, TRAIN_STATE_FILE, TRAIN_LOG_FILE,
             LOCK_FILE)
# Defaults of the flags that a continued run takes from its run.json instead.
RUN_DEFAULTS = {"data": "shakespeare", "preset": "baby", "tokenizer": "char", "vocab_size": 512}
# A million tokens is about a megabyte of text; the sampler keeps every token it has made
# (8 bytes each), so a bound keeps a typo like 10**12 from asking for terabytes.
MAX_NEW_TOKENS = 1_000_000

# Flags of `train` that set a GPTConfig field (name: type); not given (None) keeps the
# preset's value.
MODEL_FLAGS = {"n_layer": int, "n_head": int, "n_embd": int, "block_size": int, "dropout": float}
# Flags that set a TrainConfig field; not given keeps the preset's training recipe
# (TRAIN_PRESETS, else TrainConfig's default) or, when a run continues, the value it was
# trained with.
TRAIN_FLAGS = {"batch_size": int, "max_iters": int, "lr": float, "min_lr": float,
               "warmup_iters": int, "lr_decay_iters": int, "weight_decay": float,
               "grad_clip": float, "grad_accum_steps": int, "eval_interval": int,
               "ckpt_interval": int, "seed": int, "decay_fraction": float, "device": str,
               "dtype": str, "optimizer": str, "schedule": str}
CHOICES = {"device": None, "dtype": list(DTYPES), "optimizer": list(OPTIMIZERS),
           "schedule": list(SCHEDULES)}  # flags added with their own help


class UsageError(Exception):
    """A mistake on the command line: reported in one line, exit code 2."""


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _read_corpus(source: str) -> str:
    try:
        return load_corpus(source)
    except OSError as err:  # CorpusError is an OSError
        raise UsageError(f"cannot read corpus {source!r}: {err}") from err


def _encode(tokenizer: CharTokenizer | BPETokenizer, text: str, source: str) -> torch.Tensor:
    try:
        return torch.tensor(tokenizer.encode(text), dtype=torch.long)
    except ValueError as err:  # a character the tokenizer never saw
        raise UsageError(f"cannot encode corpus {source!r} with the run's tokenizer: {err}") from err


# ---------------------------------------------------------------- train


def _out_state(out: Path) -> str:
    """What --out is: "new" (missing, or empty but for the lock and temporary files a
    killed start left) or "run" (it holds a run to continue). Anything else is refused."""
    if not out.exists():
        return "new"
    if not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file, not a run folder")
    names = {p.name for p in out.iterdir()}
    if RUN_FILE in names or TRAIN_STATE_FILE in names:
        return "run"
    others = sorted(n for n in names if n != LOCK_FILE and not (n.startswith(".") and n.endswith(".tmp")))
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise UsageError(f"--out {str(out)!r} holds files ({shown}) but no minillm run: train "
                         "writes only into a new or empty folder or a run it continues, so "
                         "nothing there is overwritten; choose another --out")
    return "new"


def _read_run_record(out: Path) -> dict[str, Any] | None:
    """run.json, checked (None for runs made before it existed)."""
    if not (out / RUN_FILE).is_file():
        return None
    record = read_json(out / RUN_FILE)
    kinds = {"data": str, "data_sha256": str, "preset": str, "tokenizer": str,
             "tokenizer_sha256": str, "model_config": dict, "train_flags": dict}
    if not isinstance(record, dict) or any(not isinstance(record.get(k), t) for k, t in kinds.items()) \
            or not is_int(record.get("vocab_size"), 1):
        raise UsageError(f"{str(out / RUN_FILE)!r} is damaged: it needs {sorted([*kinds, 'vocab_size'])}")
    if record["preset"] not in PRESETS or record["tokenizer"] not in ("char", "bpe"):
        raise UsageError(f"{str(out / RUN_FILE)!r} is damaged: unknown preset {record['preset']!r:.40} "
                         f"or tokenizer {record['tokenizer']!r:.40}")
    return record


def _check_same_as_run(args: argparse.Namespace, record: dict[str, Any] | None, out: Path) -> None:
    """Fill the flags not given from the run's record (or the defaults); refuse given ones
    that differ from what the run was started with."""
    for name, default in RUN_DEFAULTS.items():
        given = getattr(args, name)
        if given is None:
            setattr(args, name, default if record is None else record[name])
        elif record is not None and given != record[name] and name != "data" \
                and (name != "vocab_size" or record["tokenizer"] == "bpe"):  # data: by content
            raise UsageError(f"{str(out)!r} holds a run started with {_flag(name)} {record[name]!r}, "
                             f"not {given!r}: drop {_flag(name)} to continue it, or train into "
                             "a new --out folder")


def _check_model_flags(args: argparse.Namespace, config: GPTConfig, out: Path) -> None:
    """A continued run keeps its shape: model flags may only repeat it."""
    different = [f"{_flag(name)} {getattr(args, name)} (the run has {getattr(config, name)})"
                 for name in MODEL_FLAGS
                 if getattr(args, name) is not None and getattr(args, name) != getattr(config, name)]
    if different:
        raise UsageError(f"{str(out)!r} already holds a run; its model shape is fixed, so drop "
                         f"{', '.join(different)} (or train into a new --out folder)")


def _build_tokenizer(args: argparse.Namespace, text: str) -> CharTokenizer | BPETokenizer:
    if args.tokenizer == "char":
        return CharTokenizer.from_text(text)
    return BPETokenizer.train(text, args.vocab_size)


def _train_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}


def _train_config(args: argparse.Namespace, out: Path, record: dict[str, Any] | None,
                  saved: dict[str, Any] | None) -> TrainConfig:
    """The run's TrainConfig. A continued run keeps its settings (``saved``, from its
    checkpoint), but flags given now (say a larger --max-iters) win. A new run starts from
    the preset's recipe, with the flags the run was started with (``record``) and now."""
    try:  # what the run's files say, checked alone: a bad value there is named with its file
        if saved is None:
            stored = TrainConfig.from_preset(args.preset,
                                             **(record["train_flags"] if record is not None else {}))
        else:
            stored = TrainConfig(**saved)
    except (TypeError, ValueError) as err:  # a key TrainConfig does not have, or a bad value
        source = TRAIN_STATE_FILE if saved is not None else RUN_FILE
        raise UsageError(f"{str(out / source)!r} holds an invalid training setting: {err}") from err
    return dataclasses.replace(stored, **_train_flags(args), compile=args.compile, out_dir=str(out))


@dataclasses.dataclass
class _Plan:
    """A training run, built in memory and checked, before anything is written."""

    state: str  # what --out was: "new" or "run" (see _out_state)
    resume: bool  # continue from the run's checkpoint (else start at step 0)
    record: dict[str, Any]  # run.json: what the run was started with
    tokenizer: CharTokenizer | BPETokenizer
    model: GPT
    cfg: TrainConfig
    train_ids: torch.Tensor
    val_ids: torch.Tensor


def _plan_training(args: argparse.Namespace, out: Path) -> _Plan:
    """Read and check everything a training run needs, and build it in memory, before
    anything is written: a mistake leaves the folder exactly as it was."""
    state = _out_state(out)
    record = _read_run_record(out) if state == "run" else None
    resume = state == "run" and has_training_checkpoint(out)
    _check_same_as_run(args, record, out)
    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    text = _read_corpus(args.data)
    if record is not None and sha256_hex(text.encode("utf-8")) != record["data_sha256"]:
        raise UsageError(f"--data {args.data!r} is not the corpus the run in {str(out)!r} was "
                         f"trained on ({record['data']!r}, or it has changed since): continue it "
                         "with that corpus, or train into a new --out folder")

    if resume:
        meta = read_training_state(out)
        if meta["train_config"] is None:
            raise UsageError(f"{str(out / TRAIN_STATE_FILE)!r} has no train_config, so the command "
                             "line cannot continue it: continue it from Python with train(..., resume=True)")
        model = load_checkpoint_model(out)  # checked here; train() loads the checkpoint again
        _check_model_flags(args, model.config, out)
        tokenizer = load_tokenizer(out / TOKENIZER_FILE)
        if tokenizer.vocab_size != model.config.vocab_size or (
                record is not None and tokenizer.fingerprint() != record["tokenizer_sha256"]):
            raise UsageError(f"{str(out / TOKENIZER_FILE)!r} is not the tokenizer this run was "
                             "trained with (swapped or edited?)")
        trained_with = meta["train_config"].get("optimizer", "adamw")
        if args.optimizer is not None and args.optimizer != trained_with:  # its state is the run's
            raise UsageError(f"{str(out)!r} holds a run trained with --optimizer {trained_with!r}, "
                             f"not {args.optimizer!r}: an optimizer cannot change mid-run; drop "
                             "--optimizer to continue it, or train into a new --out folder")
        cfg = _train_config(args, out, record, meta["train_config"])
    else:  # a new run, or one stopped before its first checkpoint: it starts from step 0
        tokenizer = _build_tokenizer(args, text)
        if record is None:
            overrides = {name: getattr(args, name) for name in MODEL_FLAGS if getattr(args, name) is not None}
            config = GPTConfig.from_preset(args.preset, vocab_size=tokenizer.vocab_size, **overrides)
        else:  # the same text and tokenizer settings, so the same tokenizer
            try:
                config = GPTConfig.from_dict(record["model_config"])
            except (TypeError, ValueError) as err:
                raise UsageError(f"{str(out / RUN_FILE)!r} holds an invalid model_config: {err}") from err
            _check_model_flags(args, config, out)
        cfg = _train_config(args, out, record, None)
        # Seed before the weights are drawn: every run (and every torchrun process) starts alike.
        torch.manual_seed(cfg.seed)
        model = GPT(config)
    resolve_device(cfg.device)  # "cuda" on a machine without one fails here, not mid-run

    ids = _encode(tokenizer, text, args.data)
    try:
        train_ids, val_ids = train_val_split(ids)
    except ValueError as err:
        raise UsageError(f"corpus {args.data!r} is too short to train on: {err}") from err
    if len(train_ids) <= model.config.block_size:
        raise UsageError(f"corpus {args.data!r} has {len(train_ids)} training tokens, fewer than "
                         f"one window of block_size {model.config.block_size}: use a longer "
                         "corpus or a smaller --block-size")
    new_record = {"data": args.data, "data_sha256": sha256_hex(text.encode("utf-8")),
                  "preset": args.preset, "tokenizer": args.tokenizer, "vocab_size": args.vocab_size,
                  "tokenizer_sha256": tokenizer.fingerprint(), "model_config": model.config.to_dict(),
                  "train_flags": _train_flags(args)}
    return _Plan(state, resume, record or new_record, tokenizer, model, cfg, train_ids, val_ids)


def _write_run_start(out: Path, plan: _Plan) -> None:
    """Under the lock: clear what a killed run left, then write the files a run starts with
    (run.json first: from then on the folder is a run and is continued, never refused)."""
    tidy_run_folder(out)
    if plan.resume:
        return
    if not (out / RUN_FILE).is_file():
        atomic_write_json(out / RUN_FILE, {"minillm_run_version": 1, **plan.record})
    tokenizer_file = out / TOKENIZER_FILE
    try:
        unchanged = load_tokenizer(tokenizer_file).fingerprint() == plan.tokenizer.fingerprint()
    except (OSError, ValueError):  # missing, or left damaged by a killed start
        unchanged = False
    if not unchanged:
        plan.tokenizer.save(tokenizer_file)


def cmd_train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    is_main = int(os.environ.get("RANK", "0")) == 0
    plan = _plan_training(args, out)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    lock = file_lock(out / LOCK_FILE, wait=False) if is_main else nullcontext()
    try:
        with lock:
            if is_main:
                if _out_state(out) != plan.state or has_training_checkpoint(out) != plan.resume:
                    raise UsageError(f"{str(out)!r} changed while this command started (another "
                                     "minillm train?); run it again")
                _write_run_start(out, plan)
                print(f"{'resuming' if plan.resume else 'training'} {plan.model.num_params():,} "
                      f"parameters on {len(plan.train_ids):,} tokens of {args.data!r} into "
                      f"{str(out)!r}", file=sys.stderr)
            history = train(plan.model, plan.train_ids, plan.val_ids, plan.cfg,
                            tokenizer=plan.tokenizer, resume=plan.resume, progress=not args.no_progress)
    except FileLockedError as err:
        raise UsageError(f"{str(out)!r} is in use: another minillm train is writing to it "
                         "(wait for it to finish, or stop it first)") from err
    if is_main and history.evals:
        last = history.evals[-1]
        print(f"step {last['step']}: val loss {last['loss']:.4f}, perplexity {last['perplexity']:.2f}, "
              f"{last['bits_per_char']:.3f} bits/char")


# ---------------------------------------------------------------- loading a run


def _load_run(path: str, device: torch.device) -> tuple[Path, GPT, CharTokenizer | BPETokenizer]:
    """The model and tokenizer of a run folder, checked: checksums, the tokenizer is the
    model's, the weights are finite."""
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"run folder {path!r} does not exist")
    repair = (f" (its training checkpoint is whole: `minillm train --out {path}` writes the "
              "model again from it)" if has_training_checkpoint(folder) else "")
    for name in (WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE):
        if not (folder / name).is_file():
            raise UsageError(f"{path!r} is not a run folder: it has no {name}"
                             + (repair or " (train into it first)"))
    try:
        model = load_model(folder, device=device)
    except ValueError as err:
        raise UsageError(f"{err}{repair}") from err
    tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
    check_tokenizer(folder, tokenizer)
    bad = first_non_finite(model)
    if bad is not None:
        raise UsageError(f"{str(folder / WEIGHTS_FILE)!r} holds NaN or infinite weights (in "
                         f"{bad!r}): the run diverged, and its samples or losses would mean nothing")
    return folder, model, tokenizer


# ---------------------------------------------------------------- sample


def _print_as_it_comes(tokenizer: CharTokenizer | BPETokenizer, ids: Iterable[int]) -> None:
    """Print the text of ``ids`` as they arrive. A BPE token may end inside a multi-byte
    character, so tokens are held back while their text ends with an incomplete one
    ("\ufffd"); once it is complete they are printed and forgotten (decoding only the
    held-back ones keeps printing linear in the length)."""
    pending: list[int] = []
    for token_id in ids:
        pending.append(token_id)
        text = tokenizer.decode(pending)
        if not text.endswith("\ufffd"):
            print(text, end="", flush=True)
            pending.clear()
    print(tokenizer.decode(pending))


def cmd_sample(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    _, model, tokenizer = _load_run(args.run, device)
    prompt_ids = tokenizer.encode(args.prompt)  # ValueError for characters it never saw
    if not prompt_ids:
        raise UsageError("--prompt is empty: give at least one character (the default is a newline)")
    idx = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    for i in range(args.num_samples):
        if i:
            print("-" * 40)
        print(args.prompt, end="", flush=True)
        new_ids = stream(model, idx, args.max_new_tokens, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                         repetition_penalty=args.repetition_penalty, generator=generator,
                         use_cache=not args.no_cache)
        _print_as_it_comes(tokenizer, new_ids)


# ---------------------------------------------------------------- chat


def cmd_chat(args: argparse.Namespace) -> None:
    """Talk to an instruction-tuned run (chapter 13): each line you type is one prompt, put in
    the chat template; the reply streams until the model writes ``<|end|>``."""
    device = resolve_device(args.device)
    _, model, tokenizer = _load_run(args.run, device)
    missing = [name for name in CHAT_SPECIAL_TOKENS if name not in tokenizer.special_tokens]
    if missing:
        raise UsageError(f"{args.run!r} was not instruction-tuned: its tokenizer has no "
                         f"{', '.join(missing)} token (fine-tune it on dialogues first, as in "
                         "chapter 13)")
    end_id = tokenizer.special_tokens[END]
    generator = torch.Generator(device=device).manual_seed(args.seed)
    interactive = sys.stdin.isatty()
    if interactive:
        print("Type a message and press Enter (an empty line or Ctrl-D ends the chat).",
              file=sys.stderr)
    while True:
        if interactive:
            print("you> ", end="", flush=True, file=sys.stderr)
        line = sys.stdin.readline()
        if not line.strip():
            return
        try:
            ids = encode_chat(tokenizer, line.rstrip("\n"))
        except ValueError as err:  # a character the model never saw, or a forged <|end|>
            print(f"minillm chat: {' '.join(str(err).split())}", file=sys.stderr)
            continue
        context = ids[-model.config.block_size:]
        idx = torch.tensor([context], dtype=torch.long, device=device)
        room = model.config.block_size - len(context)
        if room < 1:
            print(f"minillm chat: that message fills the model's whole context of "
                  f"{model.config.block_size} tokens; write a shorter one", file=sys.stderr)
            continue
        print("model> ", end="", flush=True)
        new_ids = stream(model, idx, min(args.max_new_tokens, room), temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, eos_id=end_id, generator=generator)
        _print_as_it_comes(tokenizer, (i for i in new_ids if i != end_id))


# ---------------------------------------------------------------- eval and export


def cmd_eval(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    _, model, tokenizer = _load_run(args.run, device)
    text = train_text = _read_corpus(args.data)
    if args.split == "val":
        try:  # the same last 10% that train validated on
            train_text, text = train_val_split(text)
        except ValueError as err:
            raise UsageError(f"corpus {args.data!r} is too short for a validation split "
                             f"({err}); use --split all") from err
    ids = _encode(tokenizer, text, args.data)
    if len(ids) < 2:
        raise UsageError(f"the {args.split} split of {args.data!r} has {len(ids)} tokens; "
                         "eval needs at least 2 (one to predict from, one to predict)")
    result = evaluate(model, ids, args.batch_size, tokenizer=tokenizer)
    print(f"{args.split} split of {args.data!r}: {len(ids):,} tokens")
    print(f"loss {result['loss']:.4f}  perplexity {result['perplexity']:.3f}  "
          f"bits/token {result['bits_per_token']:.4f}  bits/char {result['bits_per_char']:.4f}")
    if args.choices:
        _eval_choices(model, tokenizer, text, train_text if args.split == "val" else None, args)


def _eval_choices(model: GPT, tokenizer: Tokenizer, text: str, train_text: str | None,
                  args: argparse.Namespace) -> None:
    """The next-line multiple-choice test (``evaluation.next_line_task``) on ``text``: the
    model's accuracy with its 95 % interval, chance, and a trigram model's (fitted on
    ``train_text``; left out with --split all, which has no held-out text)."""
    items = next_line_task(text, args.choices, max_chars=model.config.block_size, seed=args.seed)
    ours = choice_accuracy(items, lambda context, choices: score_choices(
        model, tokenizer, context, choices))
    print(f"next line, {ours['n']} items of {len(items[0].choices)} choices: accuracy "
          f"{ours['accuracy']:.3f} (95% interval {ours['low']:.3f}-{ours['high']:.3f}), "
          f"chance {ours['chance']:.3f}")
    if train_text is not None:
        trigram = NGramModel(3).fit(train_text, vocab=text)
        theirs = choice_accuracy(items, trigram.score_choices)
        print(f"trigram baseline accuracy {theirs['accuracy']:.3f} "
              f"(95% interval {theirs['low']:.3f}-{theirs['high']:.3f})")


def _check_export_folder(out: Path, run: Path) -> None:
    """export writes a new folder: never over a file, a run (this one or another) or
    anything else that holds files."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"{str(out)!r} is a file: export writes a new folder (give a path "
                         "that does not exist)")
    if not out.is_dir():
        return
    if out.resolve() == run.resolve():
        raise UsageError(f"{str(out)!r} is the run folder itself: export writes a new folder "
                         "beside it, so that the run stays whole")
    names = sorted(p.name for p in out.iterdir())
    ours = [name for name in names if name in RUN_FILES]
    if ours:
        raise UsageError(f"{str(out)!r} holds model files ({', '.join(ours)}): export never "
                         "writes over them; give a new folder")
    if names:
        raise UsageError(f"{str(out)!r} is not empty: export writes only a new or empty folder")


def export_web(model: GPT, tokenizer: CharTokenizer | BPETokenizer, title: str, out: str) -> None:
    """Write one self-contained HTML page (weights inlined) that runs the model in a browser:
    prompt box, sampling sliders, attention view (minillm_lib.viz.live.web_page). Never over
    an existing file."""
    from .viz.live import web_page  # the explorers are only needed here

    path = Path(out)
    if path.exists() or path.is_symlink():
        raise UsageError(f"{out!r} already exists: choose another file name (nothing is overwritten)")
    if not path.parent.is_dir():
        raise UsageError(f"folder {str(path.parent)!r} does not exist")
    page = web_page(model, tokenizer, title=title)
    atomic_write_text(path, page)
    print(f"wrote {out!r} ({len(page.encode()) / 1e6:.2f} MB): open it in a browser, it needs no server or network")


def cmd_export(args: argparse.Namespace) -> None:
    if (args.out is None) == (args.web is None):
        raise UsageError("give an output folder or --web OUT.html, not both" if args.out
                         else "give an output folder (transformers) or --web OUT.html (a web page)")
    folder, model, tokenizer = _load_run(args.run, torch.device("cpu"))
    if args.web is not None:
        export_web(model, tokenizer, f"minillm: {folder.name}", args.web)
        return
    out = Path(args.out)
    _check_export_folder(out, folder)
    hf_model = to_hf(model)  # ValueError if no transformers class fits the config
    # Convert both before writing either, and write them into a temporary folder that is
    # renamed into place at the end: a failure leaves no half-exported folder.
    hf_tokenizer = to_hf_tokenizer(tokenizer)
    with atomic_folder(out) as tmp:
        hf_model.save_pretrained(tmp)
        hf_tokenizer.save_pretrained(tmp)  # so AutoTokenizer finds it next to the model
    print(f"wrote a transformers {type(hf_model).__name__} and its tokenizer to {args.out!r} "
          f"(load them with AutoModelForCausalLM.from_pretrained({args.out!r}) and "
          f"AutoTokenizer.from_pretrained({args.out!r}))")


# ---------------------------------------------------------------- the parser


class _Parser(argparse.ArgumentParser):
    """argparse, with its mistakes in one line like the commands' own."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in low..high."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low:,}" if high is None else f"between {low:,} and {high:,}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="minillm", description="Train and sample small GPTs.")
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")

    p = commands.add_parser("train", parents=[common],
                            help="train a model (continues the run in --out if there is one)")
    p.add_argument("--data", help="corpus name (shakespeare, tinyshakespeare) or text file "
                   "(default: shakespeare, or the run's)")
    p.add_argument("--tokenizer", choices=["char", "bpe"], help="default: char, or the run's")
    p.add_argument("--vocab-size", type=_int_in(1), help="BPE vocabulary size (default 512)")
    p.add_argument("--preset", help=f"model preset: {', '.join(sorted(PRESETS))} "
                   f"(with its training recipe: {', '.join(sorted(TRAIN_PRESETS))}; "
                   "default: baby, or the run's)")
    for name, kind in MODEL_FLAGS.items():
        p.add_argument(_flag(name), type=kind, help="override the preset")
    for name, kind in TRAIN_FLAGS.items():
        if name not in CHOICES:
            p.add_argument(_flag(name), type=kind, help=f"TrainConfig.{name}")
    p.add_argument("--device", help="auto (default), cpu, cuda, mps")
    for name in ("dtype", "optimizer", "schedule"):
        p.add_argument(f"--{name}", choices=CHOICES[name], help=f"TrainConfig.{name}")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--out", required=True, help="run folder: new, empty, or a run to continue")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("sample", parents=[common], help="generate text from a run, streaming it")
    p.add_argument("run", help="run folder")
    p.add_argument("--prompt", default="\n")
    p.add_argument("--max-new-tokens", type=_int_in(0, MAX_NEW_TOKENS), default=500)
    p.add_argument("--num-samples", type=_int_in(1), default=1)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--min-p", type=float)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--no-cache", action="store_true", help="recompute the context every step")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_sample)

    p = commands.add_parser("eval", parents=[common],
                            help="exact loss, perplexity and bits per character on a corpus")
    p.add_argument("run", help="run folder")
    p.add_argument("--data", default="shakespeare", help="corpus name or text file")
    p.add_argument("--split", choices=["val", "all"], default="val", help="val = the last 10%%")
    p.add_argument("--batch-size", type=_int_in(1), default=64)
    p.add_argument("--choices", type=_int_in(0), default=0, help="also score N next-line "
                   "multiple-choice items (which of 4 lines comes next?); 0 = none")
    p.add_argument("--seed", type=_int_in(0), default=0, help="draws the --choices items")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval)

    p = commands.add_parser("chat", parents=[common], help="talk to an instruction-tuned run "
                            "(chapter 13), one line per message")
    p.add_argument("run", help="run folder of an instruction-tuned model")
    p.add_argument("--max-new-tokens", type=_int_in(1, MAX_NEW_TOKENS), default=200)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_chat)

    p = commands.add_parser("export", parents=[common], help="write a run as a new Hugging Face "
                            "transformers folder (model and tokenizer), or as a web page that "
                            "runs it (--web)")
    p.add_argument("run", help="run folder")
    p.add_argument("out", nargs="?", help="new folder for save_pretrained (must not exist, or be empty)")
    p.add_argument("--web", metavar="OUT.html", help="write one offline HTML page that runs the "
                   "model instead (a new file)")
    p.set_defaults(func=cmd_export)
    return parser


def _report(command: str, message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"minillm {command}: {' '.join(message.split())}", file=sys.stderr)  # one line


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``minillm`` / ``python -m minillm_lib``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_info:  # --help, or a mistake argparse has reported
        return exit_info.code if isinstance(exit_info.code, int) else 2
    try:
        args.func(args)
    except KeyboardInterrupt as err:
        _report(args.command, f"interrupted{': ' + str(err) if str(err) else ''}", args.debug)
        return 130
    except NonFiniteLossError as err:
        _report(args.command, str(err), args.debug)
        return 1
    except (UsageError, ValueError, OSError) as err:  # OSError covers missing files and CorpusError
        _report(args.command, f"error: {err}", args.debug)
        return 2
    except Exception as err:  # a bug, or something this command did not foresee
        message = " ".join(str(err).split())
        _report(args.command, f"unexpected error ({type(err).__name__}: {message[:300]}); run "
                "with --debug for the traceback", args.debug)
        return 1
    return 0
