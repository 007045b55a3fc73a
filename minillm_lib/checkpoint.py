"""Saving and loading models and training runs, safely, as safetensors + JSON (chapter 8).

Every file is written with ``files.atomic_write``: a crash or an exception halfway leaves
the old file intact.

No pickle anywhere: tensors go to safetensors, everything else to JSON, so loading a
checkpoint cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .config import GPTConfig
from .files import atomic_write_bytes, atomic_write_json, read_json
from .model import GPT

MODEL_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


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
    atomic_write_bytes(directory / WEIGHTS_FILE, safetensors_bytes(tensors, metadata={"format": "pt"}))
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


# ---------------------------------------------------------------- training state

TRAIN_STATE_FORMAT_VERSION = 1
TRAIN_STATE_FILE = "train_state.json"


def has_training_checkpoint(directory: str | os.PathLike) -> bool:
    """True if ``directory`` holds a training checkpoint (its train_state.json)."""
    return (Path(directory) / TRAIN_STATE_FILE).is_file()


def _param_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    """The names of the parameters in each optimizer group, in the optimizer's order."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]


def save_training_checkpoint(
    directory: str | os.PathLike,
    model: GPT,
    optimizer: torch.optim.Optimizer,
    *,
    step: int,
    batch_rng: torch.Generator,
    train_config: dict[str, Any] | None = None,
) -> None:
    """Save all a training run needs to resume exactly where it stopped.

    Two files, tensors and the rest, no pickle:

    - ``train_state-<step>.safetensors``: model weights ("model.<name>"), the optimizer's
      per-parameter state ("optimizer.<index>.exp_avg", ...) and the random-number
      generator states ("rng.torch" for dropout, "rng.batches" for the batch order);
    - ``train_state.json``: the step, the model and training configs, the optimizer's
      hyperparameters, and the name of the tensors file.

    The tensors file is new for every step and the JSON is replaced last (each write is
    atomic), so until the new JSON is in place the old one still points at the old, whole
    tensors file: a crash or Ctrl-C at any moment leaves the last good checkpoint usable.
    Older tensors files are deleted after.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{name}": t for name, t in _tensors_to_save(model).items()}
    optimizer_state = optimizer.state_dict()
    other_state: dict[str, dict[str, Any]] = {}  # non-tensor per-parameter state, if any
    for index, state in optimizer_state["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                other_state.setdefault(str(index), {})[key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.batches"] = batch_rng.get_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    tensors_file = f"train_state-{step:08d}.safetensors"
    atomic_write_bytes(directory / tensors_file, safetensors_bytes(
        {name: t.detach().cpu().contiguous() for name, t in tensors.items()}))
    atomic_write_json(directory / TRAIN_STATE_FILE, {
        "minillm_train_state_version": TRAIN_STATE_FORMAT_VERSION,
        "tensors_file": tensors_file,
        "step": step,
        "model_config": model.config.to_dict(),
        "train_config": train_config,
        "optimizer": {
            "param_groups": optimizer_state["param_groups"],
            "param_names": _param_names(model, optimizer),
            "other_state": other_state,
        },
    })
    for old in directory.glob("train_state-*.safetensors"):
        if old.name != tensors_file:
            old.unlink(missing_ok=True)


def load_training_checkpoint(
    directory: str | os.PathLike,
    model: GPT,
    optimizer: torch.optim.Optimizer,
    batch_rng: torch.Generator,
    *,
    restore_global_rng: bool = True,
) -> int:
    """Restore what ``save_training_checkpoint`` saved into ``model``, ``optimizer``
    (built as for the original run) and ``batch_rng``; return the step to continue from.

    restore_global_rng: also restore torch's global generator (dropout).
    Raises FileNotFoundError or ValueError saying what is missing, corrupted or does not
    match (a different model config, different optimizer groups).
    """
    directory = Path(directory)
    meta = read_json(directory / TRAIN_STATE_FILE)
    where = str(directory / TRAIN_STATE_FILE)
    required = ("minillm_train_state_version", "tensors_file", "step", "model_config", "optimizer")
    if not isinstance(meta, dict) or any(key not in meta for key in required):
        raise ValueError(f"{where!r} is not a minillm training checkpoint (it needs keys {list(required)})")
    if meta["minillm_train_state_version"] > TRAIN_STATE_FORMAT_VERSION:
        raise ValueError(f"training checkpoint version {meta['minillm_train_state_version']} is newer than "
                         f"this library's {TRAIN_STATE_FORMAT_VERSION}: upgrade minillm_lib")
    ours = model.config.to_dict()
    different = [f"{k}: checkpoint {meta['model_config'].get(k)!r}, model {v!r}"
                 for k, v in ours.items() if meta["model_config"].get(k) != v]
    if different:
        raise ValueError(f"the checkpoint in {str(directory)!r} is for a different model ("
                         + "; ".join(different) + ")")
    names = _param_names(model, optimizer)
    if meta["optimizer"]["param_names"] != names:
        raise ValueError(f"the optimizer in {str(directory)!r} has different parameter groups "
                         "than this one: build it with the same configure_optimizer call")
    tensors = read_safetensors(directory / meta["tensors_file"])

    model_state = {name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")}
    expected = _tensors_to_save(model)
    problems = [f"missing {name!r}" for name in expected if name not in model_state]
    problems += [f"{name!r} has shape {tuple(t.shape)}, the model {tuple(expected[name].shape)}"
                 for name, t in model_state.items() if name in expected and t.shape != expected[name].shape]
    problems += [f"missing {name!r}" for name in ("rng.torch", "rng.batches") if name not in tensors]
    if problems:
        raise ValueError(f"{meta['tensors_file']!r} in {str(directory)!r} does not fit (corrupted?): "
                         + "; ".join(problems))
    model.load_state_dict(model_state, strict=not model.config.tie_weights)

    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = t
    for index, values in meta["optimizer"]["other_state"].items():
        state.setdefault(int(index), {}).update(values)
    groups = meta["optimizer"]["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])  # JSON turned the tuple into a list
    optimizer.load_state_dict({"state": state, "param_groups": groups})

    batch_rng.set_state(tensors["rng.batches"])
    if restore_global_rng:
        torch.set_rng_state(tensors["rng.torch"])
        cuda_states = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count())
                       if f"rng.cuda.{i}" in tensors]
        if cuda_states:
            torch.cuda.set_rng_state_all(cuda_states)
    return meta["step"]
