"""The ``minillm`` command (chapter 16): train, sample, evaluate and export models from a
terminal.

    python -m minillm_lib train --data shakespeare --preset baby --out runs/baby
    python -m minillm_lib sample runs/baby --prompt "ROMEO:" --temperature 0.8 --top-k 40
    python -m minillm_lib eval runs/baby --data shakespeare
    python -m minillm_lib eval runs/baby --choices 200  # and a multiple-choice test: next line
    python -m minillm_lib export runs/baby hf/baby        # a transformers folder: model + tokenizer
    python -m minillm_lib chat runs/chat                  # talk to an instruction-tuned run
    python -m minillm_lib export runs/baby --web baby.html   # one offline page that runs the model

A run folder holds the model (model.safetensors + config.json), its tokenizer.json, the
training checkpoint (train_state.json + train_state-<step>.safetensors) and the training
log (train_log.jsonl). ``train`` continues a run when its folder holds a checkpoint, and
works under ``torchrun --nproc_per_node=N -m minillm_lib train ...``.

Mistakes (a missing folder, an unknown preset, an unreadable corpus) end with a one-line
message and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from .checkpoint import TRAIN_STATE_FILE, has_training_checkpoint, load_model
from .config import PRESETS, TRAIN_PRESETS, GPTConfig
from .data import load_corpus, train_val_split
from .evaluation import NGramModel, choice_accuracy, next_line_task, score_choices
from .files import atomic_write_text, read_json
from .finetune import CHAT_SPECIAL_TOKENS, END, encode_chat
from .interop import to_hf, to_hf_tokenizer
from .model import GPT
from .sampling import stream
from .tokenizers import BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer
from .training import (
    DTYPES,
    OPTIMIZERS,
    SCHEDULES,
    NonFiniteLossError,
    TrainConfig,
    evaluate,
    resolve_device,
    train,
)

TOKENIZER_FILE = "tokenizer.json"

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


def _run_folder(path: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"run folder {path!r} does not exist")
    for name in ("model.safetensors", "config.json", TOKENIZER_FILE):
        if not (folder / name).is_file():
            raise UsageError(f"{path!r} is not a run folder: it has no {name} (train into it first)")
    return folder


def _read_corpus(source: str) -> str:
    try:
        return load_corpus(source)
    except OSError as err:  # CorpusError is an OSError
        raise UsageError(f"cannot read corpus {source!r}: {err}") from err


# ---------------------------------------------------------------- train


def _build_tokenizer(args: argparse.Namespace, text: str) -> CharTokenizer | BPETokenizer:
    if args.tokenizer == "char":
        return CharTokenizer.from_text(text)
    return BPETokenizer.train(text, args.vocab_size)


def cmd_train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    resume = has_training_checkpoint(out)
    is_main = int(os.environ.get("RANK", "0")) == 0
    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    text = _read_corpus(args.data)

    if resume:
        given = [f"--{name.replace('_', '-')}" for name in MODEL_FLAGS if getattr(args, name) is not None]
        if given:
            raise UsageError(f"{args.out!r} already holds a run; its model shape is fixed, so drop "
                             f"{' '.join(given)} (or train into a new --out folder)")
        tokenizer = load_tokenizer(out / TOKENIZER_FILE)
        model = load_model(out)  # the weights are then replaced by the checkpoint's
    else:
        tokenizer = _build_tokenizer(args, text)
        overrides = {name: getattr(args, name) for name in MODEL_FLAGS if getattr(args, name) is not None}
        # Seed before the weights are drawn: every run (and every torchrun process) starts alike.
        torch.manual_seed(TrainConfig.seed if args.seed is None else args.seed)
        model = GPT(GPTConfig.from_preset(args.preset, vocab_size=tokenizer.vocab_size, **overrides))
        if is_main:
            out.mkdir(parents=True, exist_ok=True)
            tokenizer.save(out / TOKENIZER_FILE)

    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, val_ids = train_val_split(ids)
    # A continued run keeps its settings; flags given now (say a larger --max-iters) win.
    # A new run starts from the preset's training recipe (TRAIN_PRESETS), if it has one.
    given = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    given.update(compile=args.compile, out_dir=str(out))
    if resume:
        cfg = TrainConfig(**{**read_json(out / TRAIN_STATE_FILE)["train_config"], **given})
    else:
        cfg = TrainConfig.from_preset(args.preset, **given)
    if is_main:
        print(f"{'resuming' if resume else 'training'} {model.num_params():,} parameters on "
              f"{len(train_ids):,} tokens of {args.data!r} into {str(out)!r}", file=sys.stderr)
    history = train(model, train_ids, val_ids, cfg, tokenizer=tokenizer, resume=resume,
                    progress=not args.no_progress)
    if is_main and history.evals:
        last = history.evals[-1]
        print(f"step {last['step']}: val loss {last['loss']:.4f}, perplexity {last['perplexity']:.2f}, "
              f"{last['bits_per_char']:.3f} bits/char")


# ---------------------------------------------------------------- sample


def _print_as_it_comes(tokenizer: CharTokenizer | BPETokenizer, ids: Iterable[int]) -> None:
    """Print the text of ``ids`` as they arrive. A BPE token may end inside a multi-byte
    character, so text is held back while it ends with an incomplete one ("\ufffd")."""
    seen: list[int] = []
    printed = 0
    for token_id in ids:
        seen.append(token_id)
        text = tokenizer.decode(seen)
        if not text.endswith("\ufffd"):
            print(text[printed:], end="", flush=True)
            printed = len(text)
    print(tokenizer.decode(seen)[printed:])


def cmd_sample(args: argparse.Namespace) -> None:
    folder = _run_folder(args.run)
    device = resolve_device(args.device)
    model = load_model(folder, device=device)
    tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
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
    folder = _run_folder(args.run)
    device = resolve_device(args.device)
    model = load_model(folder, device=device)
    tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
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
    folder = _run_folder(args.run)
    device = resolve_device(args.device)
    model = load_model(folder, device=device)
    tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
    text = train_text = _read_corpus(args.data)
    if args.split == "val":
        train_text, text = train_val_split(text)  # the same last 10% that train validated on
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
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


def export_web(folder: Path, out: str) -> None:
    """Write one self-contained HTML page (weights inlined) that runs the model in a browser:
    prompt box, sampling sliders, attention view (minillm_lib.viz.live.web_page)."""
    from .viz.live import web_page  # the explorers are only needed here

    path = Path(out)
    if path.exists():
        raise UsageError(f"{out!r} already exists: choose another file name (nothing is overwritten)")
    if not path.parent.is_dir():
        raise UsageError(f"folder {str(path.parent)!r} does not exist")
    page = web_page(load_model(folder), load_tokenizer(folder / TOKENIZER_FILE), title=f"minillm: {folder.name}")
    atomic_write_text(path, page)
    print(f"wrote {out!r} ({len(page.encode()) / 1e6:.2f} MB): open it in a browser, it needs no server or network")


def cmd_export(args: argparse.Namespace) -> None:
    folder = _run_folder(args.run)
    if (args.out is None) == (args.web is None):
        raise UsageError("give an output folder or --web OUT.html, not both" if args.out
                         else "give an output folder (transformers) or --web OUT.html (a web page)")
    if args.web is not None:
        export_web(folder, args.web)
        return
    hf_model = to_hf(load_model(folder))  # ValueError if no transformers class fits the config
    # Convert both before writing either, so a failure leaves no half-exported folder.
    hf_tokenizer = to_hf_tokenizer(load_tokenizer(folder / TOKENIZER_FILE))
    hf_model.save_pretrained(args.out)
    hf_tokenizer.save_pretrained(args.out)  # so AutoTokenizer finds it next to the model
    print(f"wrote a transformers {type(hf_model).__name__} and its tokenizer to {args.out!r} "
          f"(load them with AutoModelForCausalLM.from_pretrained({args.out!r}) and "
          f"AutoTokenizer.from_pretrained({args.out!r}))")


# ---------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minillm", description="Train and sample small GPTs.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a model (continues the run in --out if there is one)")
    p.add_argument("--data", default="shakespeare", help="corpus name (shakespeare, tinyshakespeare) or text file")
    p.add_argument("--tokenizer", choices=["char", "bpe"], default="char")
    p.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size")
    p.add_argument("--preset", default="baby", help=f"model preset: {', '.join(sorted(PRESETS))} "
                   f"(with its training recipe: {', '.join(sorted(TRAIN_PRESETS))})")
    for name, kind in MODEL_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help="override the preset")
    for name, kind in TRAIN_FLAGS.items():
        if name not in CHOICES:
            p.add_argument(f"--{name.replace('_', '-')}", type=kind, help=f"TrainConfig.{name}")
    p.add_argument("--device", help="auto (default), cpu, cuda, mps")
    for name in ("dtype", "optimizer", "schedule"):
        p.add_argument(f"--{name}", choices=CHOICES[name], help=f"TrainConfig.{name}")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("sample", help="generate text from a run, streaming it")
    p.add_argument("run", help="run folder")
    p.add_argument("--prompt", default="\n")
    p.add_argument("--max-new-tokens", type=int, default=500)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--min-p", type=float)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--no-cache", action="store_true", help="recompute the context every step")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_sample)

    p = commands.add_parser("eval", help="exact loss, perplexity and bits per character on a corpus")
    p.add_argument("run", help="run folder")
    p.add_argument("--data", default="shakespeare", help="corpus name or text file")
    p.add_argument("--split", choices=["val", "all"], default="val", help="val = the last 10%%")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--choices", type=int, default=0, help="also score N next-line "
                   "multiple-choice items (which of 4 lines comes next?); 0 = none")
    p.add_argument("--seed", type=int, default=0, help="draws the --choices items")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval)

    p = commands.add_parser("chat", help="talk to an instruction-tuned run (chapter 13), one "
                            "line per message")
    p.add_argument("run", help="run folder of an instruction-tuned model")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_chat)

    p = commands.add_parser("export", help="write a run as a Hugging Face transformers folder "
                            "(model and tokenizer), or as a web page that runs it (--web)")
    p.add_argument("run", help="run folder")
    p.add_argument("out", nargs="?", help="folder for save_pretrained")
    p.add_argument("--web", metavar="OUT.html", help="write one offline HTML page that runs the model instead")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``minillm`` / ``python -m minillm_lib``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (UsageError, ValueError, OSError) as err:  # OSError covers missing files and CorpusError
        message = " ".join(str(err).split())  # one line
        print(f"minillm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"minillm {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nminillm {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
