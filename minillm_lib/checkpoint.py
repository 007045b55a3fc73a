"""Saving and loading, safely: atomic file writes, and models as safetensors + JSON.

Every save in the library goes through ``atomic_write``: the data is written to a
temporary file next to the target, flushed to disk, then renamed over the target in
one step (``os.replace``). A crash or an exception halfway leaves the old file intact.

No pickle anywhere: tensors go to safetensors, everything else to JSON, so loading a
checkpoint cannot run code.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .config import GPTConfig
from .model import GPT

MODEL_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

# ---------------------------------------------------------------- atomic writes


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` only if the block succeeds.

        with atomic_write("notes.txt", "w") as f:
            f.write("all or nothing")

    mode: "wb" (bytes) or "w" (UTF-8 text). The parent directory must exist.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    # Same directory as the target, so the final rename never crosses file systems.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the usual permissions of a saved file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; FileNotFoundError / ValueError name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {str(path)!r}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON (corrupted?): {err}") from err


def read_safetensors(path: str | os.PathLike, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file; FileNotFoundError / ValueError name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {str(path)!r}")
    try:
        return load_file(path, device=device)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not a valid safetensors file (corrupted?): {err}") from err


# ---------------------------------------------------------------- models


def _tensors_to_save(model: GPT) -> dict[str, torch.Tensor]:
    """The state dict with each tensor once: a tied lm_head.weight IS wte.weight, and
    safetensors refuses tensors that share memory, so it is left out (and re-tied on load)."""
    state = model.state_dict()
    if model.config.tie_weights:
        del state["lm_head.weight"]
    return state


def save_model(model: GPT, directory: str | os.PathLike) -> None:
    """Write ``directory``/model.safetensors and ``directory``/config.json (created if needed).

    config.json holds {"minillm_format_version": 1, "config": GPTConfig.to_dict()}.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in _tensors_to_save(model).items()}
    # Serialise before opening the file, so a failure cannot even create a temp file.
    atomic_write_bytes(directory / WEIGHTS_FILE, safetensors_bytes(tensors))
    atomic_write_json(directory / CONFIG_FILE,
                      {"minillm_format_version": MODEL_FORMAT_VERSION, "config": model.config.to_dict()})


def load_model(directory: str | os.PathLike, *, device: torch.device | str = "cpu") -> GPT:
    """Rebuild the GPT saved by ``save_model``, in the dtype it was saved in.

    Every mismatch between the weights file and the config (missing tensor, unexpected
    tensor, wrong shape) is listed in one ValueError.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {str(directory)!r}")
    meta = read_json(directory / CONFIG_FILE)
    version = meta.get("minillm_format_version") if isinstance(meta, dict) else None
    if version is None or "config" not in meta:
        raise ValueError(f"{str(directory / CONFIG_FILE)!r} is not a minillm model config "
                         "(no 'minillm_format_version' / 'config')")
    if version > MODEL_FORMAT_VERSION:
        raise ValueError(f"checkpoint format version {version} is newer than this library's "
                         f"{MODEL_FORMAT_VERSION}: upgrade minillm_lib")
    model = GPT(GPTConfig.from_dict(meta["config"]))
    tensors = read_safetensors(directory / WEIGHTS_FILE, device=str(device))

    expected = {name: tuple(t.shape) for name, t in _tensors_to_save(model).items()}
    problems = [f"missing tensor {name!r} (expected shape {shape})"
                for name, shape in expected.items() if name not in tensors]
    problems += [f"unexpected tensor {name!r}" for name in tensors if name not in expected]
    problems += [f"tensor {name!r} has shape {tuple(t.shape)}, config expects {expected[name]}"
                 for name, t in tensors.items() if name in expected and tuple(t.shape) != expected[name]]
    if problems:
        raise ValueError(f"weights in {str(directory / WEIGHTS_FILE)!r} do not match its config: "
                         + "; ".join(problems))

    model.to(device=device, dtype=tensors["transformer.wte.weight"].dtype)
    # A tied lm_head shares wte's storage, so strict=False only skips that one key.
    model.load_state_dict(tensors, strict=not model.config.tie_weights)
    return model
