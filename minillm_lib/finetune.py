"""Instruction tuning (chapter 13): from a model that continues text to one that answers
(a little).

The recipe of InstructGPT (Ouyang et al., 2022), at the size of a course model:

1. A **chat template** marks who speaks, with special tokens the model has never seen::

       <|user|>What is AI?<|end|><|assistant|>A branch of computer science.<|end|>

   ``add_special_tokens`` gives a trained model and its tokenizer the new tokens without
   changing anything the model already knows.
2. **Supervised fine-tuning (SFT)** on (prompt, reply) pairs, with the loss on the reply
   only: ``sft_examples`` sets the targets of the prompt (and of the padding) to -100,
   which ``GPT.forward`` leaves out of the cross-entropy.
3. **Preference tuning**, here Direct Preference Optimization (Rafailov et al., 2023):
   ``dpo_loss`` makes a chosen reply more likely than a rejected one, relative to a frozen
   reference model, using ``sequence_logprobs``.

The dialogues come from the ``chatterbot-corpus`` package (``load_dialogues``): short,
hand-written English exchanges, mostly one question and one answer.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from importlib import resources
from itertools import pairwise
from pathlib import Path

import regex
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import is_int, is_number
from .evaluation import IGNORE_INDEX, token_logprobs
from .model import GPT
from .sampling import generate
from .tokenizers import BPETokenizer, CharTokenizer, Tokenizer

USER = "<|user|>"
ASSISTANT = "<|assistant|>"
END = "<|end|>"  # closes a turn; generation stops when the assistant writes it
CHAT_SPECIAL_TOKENS = (USER, ASSISTANT, END)

# Typographic characters of the dialogues -> the ASCII that Shakespeare's vocabulary has.
ASCII_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'",   # ‘ ’
    "\u201c": '"', "\u201d": '"',   # “ ”
    "\u2013": "-", "\u2014": "-",   # – —
    "\u2026": "...",                # …
    "\xa0": " ",                    # no-break space
})

Pair = tuple[str, str]  # (prompt, reply)


# ---------------------------------------------------------------- the dialogues


def dialogue_files(language: str = "english") -> list[Path]:
    """The YAML files of one language of ``chatterbot-corpus``, sorted by name."""
    try:
        root = resources.files("chatterbot_corpus") / "data"
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the dialogues need the PyPI package 'chatterbot-corpus' (and PyYAML): "
            "pip install chatterbot-corpus==1.3.3 pyyaml"
        ) from err
    languages = sorted(p.name for p in root.iterdir() if p.is_dir())
    if language not in languages:
        raise ValueError(f"unknown language {language!r}; chatterbot-corpus has {languages}")
    folder = root / language
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yml"))


def load_dialogues(language: str = "english") -> list[Pair]:
    """(prompt, reply) pairs from the ``chatterbot-corpus`` conversations, in a fixed order.

    Each YAML file holds ``conversations``: lists of statements, each one answering the one
    before. Every two neighbouring statements give a pair, so a conversation of k statements
    gives k - 1 pairs. Files are read in name order, conversations and statements in file
    order. Whitespace is normalised (runs of spaces and newlines -> one space). Malformed
    entries are skipped: a conversation that is not a list, and a pair with a statement that
    is not a non-empty string.

    The English part of chatterbot-corpus 1.3.3 gives 2,306 pairs from 21 files (one
    malformed conversation in trivia.yml is skipped). Prompts repeat: the corpus often lists
    several replies to one question.
    """
    import yaml  # PyYAML: needed only here

    pairs: list[Pair] = []
    for path in dialogue_files(language):
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
        conversations = content.get("conversations") if isinstance(content, dict) else None
        for conversation in conversations or []:
            if not isinstance(conversation, list):
                continue
            statements = [" ".join(s.split()) if isinstance(s, str) else "" for s in conversation]
            for prompt, reply in pairwise(statements):
                if prompt and reply:
                    pairs.append((prompt, reply))
    return pairs


def fold_text(text: str) -> str:
    """Replace typographic quotes, dashes, the ellipsis and no-break spaces by ASCII."""
    return text.translate(ASCII_FOLD)


def filter_pairs(
    pairs: Sequence[Pair], tokenizer: Tokenizer, block_size: int | None = None
) -> list[Pair]:
    """The pairs a model with this tokenizer can train on, with their text ASCII-folded.

    Every prompt and reply goes through ``fold_text``; a pair is then dropped (never
    altered further) if the tokenizer cannot encode it (a character outside its vocabulary,
    such as ``=`` or a backquote for Shakespeare's, or text that spells a special token) or,
    when ``block_size`` is given, if the templated dialogue is longer than block_size + 1
    tokens (so a whole example, the final ``<|end|>`` included, fits in one window).
    """
    _chat_ids(tokenizer)  # a tokenizer without the chat tokens is an error, not "drop all"
    kept = []
    for prompt, reply in pairs:
        prompt, reply = fold_text(prompt), fold_text(reply)
        try:
            n_tokens = len(encode_chat(tokenizer, prompt, reply))
        except ValueError:  # an unknown character or a special token in the text
            continue
        if block_size is None or n_tokens <= block_size + 1:
            kept.append((prompt, reply))
    return kept


# ---------------------------------------------------------------- the chat template


def format_chat(prompt: str, reply: str | None = None) -> str:
    """The chat template as text. Without a reply it ends with ``<|assistant|>``: the
    prompt a model continues to answer.

    >>> format_chat("Hi", "Hello!")
    '<|user|>Hi<|end|><|assistant|>Hello!<|end|>'
    """
    for name, text in (("prompt", prompt), ("reply", reply)):
        if text is not None and not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    text = f"{USER}{prompt}{END}{ASSISTANT}"
    return text if reply is None else f"{text}{reply}{END}"


def parse_chat(text: str) -> tuple[str, str | None]:
    """Inverse of ``format_chat``: (prompt, reply), reply None if ``text`` ends after
    ``<|assistant|>``. A missing final ``<|end|>`` is allowed (a reply cut short)."""
    if not isinstance(text, str) or not text.startswith(USER) or END + ASSISTANT not in text:
        template = format_chat("...", "...")
        raise ValueError(f"text does not follow the chat template {template!r}: {text!r:.80}")
    prompt, _, reply = text[len(USER):].partition(END + ASSISTANT)
    if not reply:
        return prompt, None
    return prompt, reply.removesuffix(END)


def _chat_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """The ids of the chat tokens; ValueError if the tokenizer lacks one."""
    missing = [name for name in CHAT_SPECIAL_TOKENS if name not in tokenizer.special_tokens]
    if missing:
        raise ValueError(
            f"the tokenizer has no special token {missing[0]!r} (its special tokens: "
            f"{list(tokenizer.special_tokens)}); extend the model and tokenizer with "
            "add_special_tokens(model, tokenizer) first"
        )
    return {name: tokenizer.special_tokens[name] for name in CHAT_SPECIAL_TOKENS}


def encode_chat(tokenizer: Tokenizer, prompt: str, reply: str | None = None) -> list[int]:
    """Token ids of ``format_chat(prompt, reply)``.

    The chat tokens are inserted as their ids; the prompt and reply are encoded as plain
    text, in which special tokens are NOT allowed: a user who types ``<|end|>`` gets a
    ValueError, not a forged end of turn.
    """
    ids = _chat_ids(tokenizer)
    tokens = [ids[USER], *tokenizer.encode(prompt), ids[END], ids[ASSISTANT]]
    if reply is not None:
        tokens += [*tokenizer.encode(reply), ids[END]]
    return tokens


def sft_examples(
    pairs: Sequence[Pair], tokenizer: Tokenizer, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Supervised fine-tuning examples: one row per (prompt, reply) pair.

    Returns x, y of shape (N, block_size): x holds the templated dialogue's ids, y the
    next id at each position (y[t] = ids[t + 1]), except that y is IGNORE_INDEX (-100) where
    the next id still belongs to the prompt (``<|user|>`` ... ``<|assistant|>``) and on the
    padding. So the loss only teaches the reply and its closing ``<|end|>``: the model
    learns to answer, not to write questions. Rows shorter than block_size are padded
    on the right (x with the ``<|end|>`` id, which the causal mask hides from earlier
    positions); a reply too long for the window is cropped (its ``<|end|>`` is then lost,
    so filter long pairs out first with ``filter_pairs(..., block_size=...)``).

    Raises ValueError for no pairs, a bad block_size, a tokenizer without the chat tokens,
    text it cannot encode, or a prompt that leaves no room in the window for the reply.
    """
    if not is_int(block_size, 1):
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    if len(pairs) == 0:
        raise ValueError("pairs is empty: need at least one (prompt, reply) pair")
    pad_id = _chat_ids(tokenizer)[END]
    x = torch.full((len(pairs), block_size), pad_id, dtype=torch.long)  # (N, T)
    y = torch.full((len(pairs), block_size), IGNORE_INDEX, dtype=torch.long)  # (N, T)
    for i, (prompt, reply) in enumerate(pairs):
        n_prompt = len(encode_chat(tokenizer, prompt))  # <|user|> ... <|assistant|>
        if n_prompt > block_size:
            raise ValueError(
                f"pair {i}: the templated prompt takes {n_prompt} tokens, but block_size is "
                f"{block_size}; a prompt may take at most block_size tokens so that at least "
                "one reply token is trained on (drop long pairs with filter_pairs(..., block_size))"
            )
        ids = torch.tensor(encode_chat(tokenizer, prompt, reply)[: block_size + 1])
        n = len(ids) - 1  # positions with a next token
        x[i, :n] = ids[:-1]
        y[i, :n] = ids[1:]
        y[i, : n_prompt - 1] = IGNORE_INDEX  # targets inside the prompt: no loss
    return x, y


# ---------------------------------------------------------------- new tokens for a trained model


def extend_tokenizer(tokenizer: Tokenizer, names: Sequence[str]) -> Tokenizer:
    """A copy of ``tokenizer`` with the special tokens ``names`` added after all others:
    every existing id keeps its meaning, the new tokens get ids vocab_size, vocab_size + 1, ..."""
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of special tokens, got the string {names!r}")
    taken = [name for name in names if name in tokenizer.special_tokens]
    if taken:
        raise ValueError(f"the tokenizer already has the special tokens {taken}")
    old_names = list(tokenizer.special_tokens)  # in id order (the unk token among them)
    if isinstance(tokenizer, CharTokenizer):
        new = CharTokenizer(tokenizer.chars, [*old_names, *names], tokenizer.unk_token)
    elif isinstance(tokenizer, BPETokenizer):
        new = BPETokenizer(tokenizer.merges, tokenizer.pattern, [*old_names, *names])
    else:
        raise TypeError(f"cannot extend a {type(tokenizer).__name__}; "
                        "expected a CharTokenizer or a BPETokenizer")
    assert all(new.special_tokens[name] == i for name, i in tokenizer.special_tokens.items())
    return new


@torch.no_grad()
def add_special_tokens(
    model: GPT, tokenizer: Tokenizer, names: Sequence[str] = CHAT_SPECIAL_TOKENS
) -> tuple[GPT, Tokenizer]:
    """Copies of a trained ``model`` and its ``tokenizer`` that know the new special tokens.

    The tokenizer gets ``names`` as extra ids after its vocabulary (see ``extend_tokenizer``).
    The model gets one new row per name in its token embedding and in its lm_head,
    initialised to the MEAN of the existing rows: a new token starts as an "average" token
    instead of a random vector whose huge or tiny logits would disturb the first steps of
    fine-tuning. Old rows are unchanged, so on text without new tokens the new model gives
    exactly the old logits, plus one column per new token. Tied weights stay tied.
    The originals are not modified.
    """
    if model.config.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"the model's vocab_size ({model.config.vocab_size}) differs from the tokenizer's "
            f"({tokenizer.vocab_size}): pass the tokenizer the model was trained with"
        )
    new_tokenizer = extend_tokenizer(tokenizer, names)
    n_new = len(names)
    new_model = copy.deepcopy(model)
    wte = model.transformer.wte.weight  # (V, C)
    rows = wte.mean(dim=0, keepdim=True).expand(n_new, -1)  # (n_new, C)
    new_model.transformer.wte = nn.Embedding.from_pretrained(torch.cat([wte, rows]), freeze=False)
    vocab_size, n_embd = new_model.transformer.wte.weight.shape
    new_model.lm_head = nn.Linear(n_embd, vocab_size, bias=False, device=wte.device, dtype=wte.dtype)
    if model.config.tie_weights:
        new_model.lm_head.weight = new_model.transformer.wte.weight  # one Parameter, as before
    else:
        head = model.lm_head.weight  # (V, C)
        head_rows = head.mean(dim=0, keepdim=True).expand(n_new, -1)  # (n_new, C)
        new_model.lm_head.weight.copy_(torch.cat([head, head_rows]))
    new_model.config = dataclasses.replace(model.config, vocab_size=vocab_size)
    return new_model.train(model.training), new_tokenizer


# ---------------------------------------------------------------- talking to the model


def generate_reply(
    model: GPT, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 100, **sampling
) -> str:
    """The model's reply to ``prompt``: the template up to ``<|assistant|>``, continued
    until the model writes ``<|end|>`` (not included) or max_new_tokens are reached.

    sampling: keyword arguments of ``generate`` (temperature=0 for greedy, top_k, top_p,
    generator, ...).
    """
    ids = encode_chat(tokenizer, prompt)
    device = model.device
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    end_id = tokenizer.special_tokens[END]
    out = generate(model, idx, max_new_tokens, eos_id=end_id, **sampling)  # (1, T + n)
    new_ids = out[0, len(ids):].tolist()
    if new_ids and new_ids[-1] == end_id:
        new_ids = new_ids[:-1]
    return tokenizer.decode(new_ids)


# ---------------------------------------------------------------- preference tuning (DPO)

# Chapter 13's preference: an assistant that speaks the English of the plays it learned from.
# Longer phrases first, so "you are" becomes "thou art" before "you" becomes "thee".
EARLY_MODERN: tuple[tuple[str, str], ...] = (
    ("you are", "thou art"), ("are you", "art thou"), ("you have", "thou hast"),
    ("have you", "hast thou"), ("do you", "dost thou"), ("your", "thy"), ("yours", "thine"),
    ("you", "thee"), ("yes", "aye"), ("does", "doth"), ("has", "hath"),
)
_EARLY_MODERN_RE = regex.compile(
    r"\b(" + "|".join(regex.escape(old) for old, _ in EARLY_MODERN) + r")\b", regex.IGNORECASE)


def early_modern(text: str) -> str:
    """``text`` in the English of Shakespeare's plays, by the word rules of ``EARLY_MODERN``
    (a capital stays a capital). A rule the reader can check by eye, not a translation.

    >>> early_modern("Yes, you are right. Do you know your lines?")
    'Aye, thou art right. Dost thou know thy lines?'
    """
    table = dict(EARLY_MODERN)

    def swap(match: regex.Match) -> str:
        old = match.group(0)
        new = table[old.lower()]
        return new[0].upper() + new[1:] if old[0].isupper() else new

    return _EARLY_MODERN_RE.sub(swap, text)


def preference_triples(pairs: Sequence[Pair]) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) for every pair whose reply ``early_modern`` changes: the
    chosen reply is the changed one, the rejected one is the corpus's own reply."""
    return [(prompt, early_modern(reply), reply) for prompt, reply in pairs
            if early_modern(reply) != reply]


def sequence_logprobs(model: GPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Log-probability of each row's targets: sum over t of log p(y[t] | x[:t+1]),
    skipping positions where y is IGNORE_INDEX. With ``sft_examples`` rows that is
    ``log p(reply + <|end|> | prompt)``.

    x, y: (N, T) -> (N,). Gradients flow (call under torch.no_grad() for a reference model).
    """
    return token_logprobs(model, x, y).sum(dim=-1)  # (N, T) log p of each target, 0 if skipped


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Direct Preference Optimization loss (Rafailov et al., 2023, eq. 7), averaged over pairs:

        -log sigmoid(beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))])

    where y_w is the chosen and y_l the rejected reply. All four inputs: (N,) sequence
    log-probabilities (see ``sequence_logprobs``). beta > 0: how far the policy may move
    from the reference (small beta = far). Returns a scalar.
    """
    if not is_number(beta) or not beta > 0:
        raise ValueError(f"beta must be a number > 0, got {beta!r}")
    shapes = {tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps,
                                       ref_chosen_logps, ref_rejected_logps)}
    if len(shapes) != 1:
        raise ValueError(f"the four log-probability tensors must have one shape (N,), "
                         f"got {sorted(shapes)}")
    chosen = policy_chosen_logps - ref_chosen_logps  # (N,) log pi / ref of the chosen reply
    rejected = policy_rejected_logps - ref_rejected_logps  # (N,)
    return -F.logsigmoid(beta * (chosen - rejected)).mean()
