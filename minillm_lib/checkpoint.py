"""Saving and loading models and training runs, safely, as safetensors + JSON (chapter 8).

Every file is written with ``files.atomic_write``: a crash or an exception halfway leaves
the old file intact.

No pickle anywhere: tensors go to safetensors, everything else to JSON, so loading a
checkpoint cannot run code.

Each tensors file has a JSON sidecar that records its SHA-256 checksum (config.json for
model.safetensors, train_state.json for the training tensors), checked on every load: a
flipped byte is an error naming the file, never a silently different model. A model saved
with its tokenizer also records the tokenizer's size and fingerprint, so a swapped
tokenizer.json is caught too. Everything read from the JSON files is checked before it
is used, and a config is compared with the weights before any memory is allocated for it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes

from ._checks import is_int, is_number
from .config import GPTConfig
from .files import (
    atomic_write_bytes,
    atomic_write_files,
    atomic_write_json,
    json_text,
    read_json,
    remove_temp_files,
    sha256_hex,
)
from .model import GPT
from .tokenizers import Tokenizer

# Version 2 records checksums (weights_sha256; tensors_sha256) and, for a model saved with
# its tokenizer, the tokenizer's vocab_size and fingerprint. Version 1 files still load.
MODEL_FORMAT_VERSION = 2
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _where(path: Path) -> str:
    return repr(str(path))


def read_safetensors(path: str | os.PathLike, *, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file into CPU tensors; FileNotFoundError / ValueError name the file.

    sha256: the checksum recorded when it was saved; a file whose bytes differ is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {str(path)!r}")
    data = path.read_bytes()
    if sha256 is not None and sha256_hex(data) != sha256:
        raise ValueError(f"{_where(path)} does not match the SHA-256 checksum recorded when it "
                         "was saved: it is corrupted or was replaced")
    try:
        return safetensors_load(data)
    except (SafetensorError, ValueError, TypeError, RuntimeError) as err:
        raise ValueError(f"{_where(path)} is not a valid safetensors file (corrupted?): {err}") from err


def first_non_finite(model: torch.nn.Module) -> str | None:
    """The name of the first tensor of ``model`` holding a NaN or an infinity, else None."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


# ---------------------------------------------------------------- models


def _tensors_to_save(model: GPT) -> dict[str, torch.Tensor]:
    """The state dict with each tensor once: a tied lm_head.weight IS wte.weight, and
    safetensors refuses tensors that share memory, so it is left out (and re-tied on load)."""
    state = model.state_dict()
    if model.config.tie_weights:
        del state["lm_head.weight"]
    return state


def _config_from(d: Any, where: str) -> GPTConfig:
    """A GPTConfig from the dict ``d`` read from the file ``where``; ValueError names it."""
    if not isinstance(d, dict):
        raise ValueError(f"{where} holds no model config (a JSON object), got {d!r:.80}")
    try:
        return GPTConfig.from_dict(d)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} holds an invalid model config: {err}") from None


def _build_model(config: GPTConfig, shapes: dict[str, tuple[int, ...]], where: str) -> GPT:
    """A new GPT for ``config``, once its tensors are known to have exactly ``shapes``
    (those of the weights file ``where``). The check runs on a skeleton on the "meta"
    device, which allocates nothing, so a config asking for a billion layers or a huge
    vocabulary is refused before it takes any memory."""
    layers = {name.split(".")[2] for name in shapes if name.startswith("transformer.h.")}
    if config.n_layer > len(layers):  # even a skeleton costs time per layer
        raise ValueError(f"weights in {where} do not match their config: it says "
                         f"n_layer={config.n_layer}, the file holds {len(layers)} layers")
    with torch.device("meta"):
        skeleton = GPT(config)
    expected = {name: tuple(t.shape) for name, t in _tensors_to_save(skeleton).items()}
    problems = [f"missing tensor {name!r} (expected shape {shape})"
                for name, shape in expected.items() if name not in shapes]
    problems += [f"unexpected tensor {name!r}" for name in shapes if name not in expected]
    problems += [f"tensor {name!r} has shape {shape}, config expects {expected[name]}"
                 for name, shape in shapes.items() if name in expected and shape != expected[name]]
    if problems:
        raise ValueError(f"weights in {where} do not match their config: " + "; ".join(problems))
    return GPT(config)


def save_model(model: GPT, directory: str | os.PathLike, *, tokenizer: Tokenizer | None = None) -> None:
    """Write ``directory``/model.safetensors and ``directory``/config.json (created if needed).

    config.json holds {"minillm_format_version": 2, "config": GPTConfig.to_dict(),
    "weights_sha256": checksum of model.safetensors}, and with ``tokenizer`` also
    "tokenizer": {"vocab_size", "sha256": its fingerprint}, which ``load_model`` checks.
    """
    if tokenizer is not None and tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's "
                         f"vocab_size is {model.config.vocab_size}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in _tensors_to_save(model).items()}
    # Serialise before opening the file, so a failure cannot even create a temp file.
    weights = safetensors_bytes(tensors, metadata={"format": "pt"})
    meta: dict[str, Any] = {"minillm_format_version": MODEL_FORMAT_VERSION,
                            "config": model.config.to_dict(), "weights_sha256": sha256_hex(weights)}
    if tokenizer is not None:
        meta["tokenizer"] = {"vocab_size": tokenizer.vocab_size, "sha256": tokenizer.fingerprint()}
    # Both whole before either is renamed into place: they always describe each other,
    # but for the moment between two renames.
    atomic_write_files({directory / WEIGHTS_FILE: weights,
                        directory / CONFIG_FILE: json_text(meta).encode("utf-8")})


def _read_model_meta(directory: Path) -> dict[str, Any]:
    """config.json, checked field by field; ValueError names the file."""
    path = directory / CONFIG_FILE
    where = _where(path)
    meta = read_json(path)
    if not isinstance(meta, dict) or "minillm_format_version" not in meta or "config" not in meta:
        raise ValueError(f"{where} is not a minillm model config "
                         "(no 'minillm_format_version' / 'config')")
    version = meta["minillm_format_version"]
    if not is_int(version, 1):
        raise ValueError(f"{where}: minillm_format_version must be a positive integer, got {version!r}")
    if version > MODEL_FORMAT_VERSION:
        raise ValueError(f"checkpoint format version {version} is newer than this library's "
                         f"{MODEL_FORMAT_VERSION}: upgrade minillm_lib")
    if version >= 2 and not (isinstance(meta.get("weights_sha256"), str)
                             and _SHA256.fullmatch(meta["weights_sha256"])):
        raise ValueError(f"{where}: weights_sha256 must be 64 hex digits, got "
                         f"{meta.get('weights_sha256')!r:.80}")
    record = meta.get("tokenizer")
    if record is not None and not (isinstance(record, dict) and is_int(record.get("vocab_size"), 1)
                                   and isinstance(record.get("sha256"), str)):
        raise ValueError(f"{where}: 'tokenizer' must be {{'vocab_size': int, 'sha256': str}}, "
                         f"got {record!r:.80}")
    return meta


def check_tokenizer(directory: str | os.PathLike, tokenizer: Tokenizer) -> None:
    """Refuse a tokenizer that is not the one the model in ``directory`` was saved with:
    one of another size, or (when config.json records it) with another fingerprint.
    ValueError says which."""
    directory = Path(directory)
    meta = _read_model_meta(directory)
    config = _config_from(meta["config"], _where(directory / CONFIG_FILE))
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model in "
                         f"{_where(directory)} has vocab_size {config.vocab_size}: it is not the "
                         "tokenizer this model was trained with")
    record = meta.get("tokenizer")
    if record is not None and record["sha256"] != tokenizer.fingerprint():
        raise ValueError(f"the tokenizer is not the one the model in {_where(directory)} was "
                         f"saved with (its fingerprint {tokenizer.fingerprint()[:12]}... differs "
                         f"from {record['sha256'][:12]}... in {CONFIG_FILE}): a swapped or edited "
                         "tokenizer file?")


def load_model(directory: str | os.PathLike, *, device: torch.device | str = "cpu") -> GPT:
    """Rebuild the GPT saved by ``save_model``, in the dtype it was saved in.

    The weights must match the checksum in config.json (version 2 files), and every
    mismatch between the weights file and the config (missing tensor, unexpected tensor,
    wrong shape) is listed in one ValueError. ``check_tokenizer`` checks that a tokenizer
    is the one the model was saved with.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {str(directory)!r}")
    meta = _read_model_meta(directory)
    config = _config_from(meta["config"], _where(directory / CONFIG_FILE))
    tensors = read_safetensors(directory / WEIGHTS_FILE, sha256=meta.get("weights_sha256"))
    model = _build_model(config, {name: tuple(t.shape) for name, t in tensors.items()},
                         _where(directory / WEIGHTS_FILE))
    model.to(device=device, dtype=tensors["transformer.wte.weight"].dtype)
    # A tied lm_head shares wte's storage, so strict=False only skips that one key.
    model.load_state_dict(tensors, strict=not model.config.tie_weights)
    return model


# ---------------------------------------------------------------- training state

TRAIN_STATE_FORMAT_VERSION = 2  # 2: tensors_sha256; version 1 still loads
TRAIN_STATE_FILE = "train_state.json"
TENSORS_FILE_PATTERN = "train_state-*.safetensors"


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
      hyperparameters, the name of the tensors file and its SHA-256 checksum.

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
    data = safetensors_bytes({name: t.detach().cpu().contiguous() for name, t in tensors.items()})
    atomic_write_bytes(directory / tensors_file, data)
    atomic_write_json(directory / TRAIN_STATE_FILE, {
        "minillm_train_state_version": TRAIN_STATE_FORMAT_VERSION,
        "tensors_file": tensors_file,
        "tensors_sha256": sha256_hex(data),
        "step": step,
        "model_config": model.config.to_dict(),
        "train_config": train_config,
        "optimizer": {
            "param_groups": optimizer_state["param_groups"],
            "param_names": _param_names(model, optimizer),
            "other_state": other_state,
        },
    })
    for old in directory.glob(TENSORS_FILE_PATTERN):
        if old.name != tensors_file:
            old.unlink(missing_ok=True)


def _is_list_of(value: Any, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(v, kind) for v in value)


def read_training_state(directory: str | os.PathLike) -> dict[str, Any]:
    """train_state.json of ``directory``, checked: every key there with the right type,
    and a tensors_file that is a file name inside ``directory`` (never a path elsewhere).

    Raises FileNotFoundError or ValueError naming the file and the bad value.
    """
    path = Path(directory) / TRAIN_STATE_FILE
    where = _where(path)
    meta = read_json(path)
    required = ("minillm_train_state_version", "tensors_file", "step", "model_config", "optimizer")
    if not isinstance(meta, dict) or any(key not in meta for key in required):
        raise ValueError(f"{where} is not a minillm training checkpoint (it needs keys {list(required)})")
    version = meta["minillm_train_state_version"]
    if not is_int(version, 1):
        raise ValueError(f"{where}: minillm_train_state_version must be a positive integer, "
                         f"got {version!r:.80}")
    if version > TRAIN_STATE_FORMAT_VERSION:
        raise ValueError(f"training checkpoint version {version} is newer than "
                         f"this library's {TRAIN_STATE_FORMAT_VERSION}: upgrade minillm_lib")
    name = meta["tensors_file"]
    if not (isinstance(name, str) and name == Path(name).name and "\\" not in name
            and not name.startswith(".") and name.endswith(".safetensors")):
        raise ValueError(f"{where}: tensors_file must name a .safetensors file inside "
                         f"{_where(Path(directory))}, got {name!r:.80}")
    checksum = meta.get("tensors_sha256")
    if version >= 2 and not (isinstance(checksum, str) and _SHA256.fullmatch(checksum)):
        raise ValueError(f"{where}: tensors_sha256 must be 64 hex digits, got {checksum!r:.80}")
    if not is_int(meta["step"], 0):
        raise ValueError(f"{where}: step must be an integer >= 0, got {meta['step']!r:.80}")
    if not isinstance(meta["model_config"], dict):
        raise ValueError(f"{where}: model_config must be a JSON object, got {meta['model_config']!r:.80}")
    if not isinstance(meta.get("train_config"), dict | None):
        raise ValueError(f"{where}: train_config must be a JSON object or null, "
                         f"got {meta['train_config']!r:.80}")
    opt = meta["optimizer"]
    if not (isinstance(opt, dict) and _is_list_of(opt.get("param_groups"), dict)
            and isinstance(opt.get("param_names"), list)
            and all(_is_list_of(names, str) for names in opt["param_names"])
            and isinstance(opt.get("other_state"), dict)
            and all(isinstance(k, str) and k.isdecimal() and isinstance(v, dict)
                    for k, v in opt["other_state"].items())):
        raise ValueError(f"{where}: optimizer must hold param_groups (a list of objects), "
                         "param_names (a list of lists of names) and other_state "
                         "(an object keyed by parameter index)")
    return meta


def load_checkpoint_model(directory: str | os.PathLike) -> GPT:
    """The model of the training checkpoint in ``directory``, with its weights, on the CPU:
    what training continues from, whatever state model.safetensors and config.json are in."""
    directory = Path(directory)
    meta = read_training_state(directory)
    where = _where(directory / meta["tensors_file"])
    config = _config_from(meta["model_config"], f"{_where(directory / TRAIN_STATE_FILE)} (model_config)")
    tensors = read_safetensors(directory / meta["tensors_file"], sha256=meta.get("tensors_sha256"))
    weights = {name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")}
    model = _build_model(config, {name: tuple(t.shape) for name, t in weights.items()}, where)
    model.load_state_dict(weights, strict=not model.config.tie_weights)
    return model


def _kind(value: Any) -> str:
    """What a JSON value of an optimizer group is, for comparing a saved one with ours."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, tuple | list):
        return f"{len(value)} numbers"
    return "other"


def _restore_group(saved: dict[str, Any], ours: dict[str, Any], index: int, where: str) -> dict[str, Any]:
    """The saved hyperparameters of optimizer group ``index``, each checked against the
    kind of value this optimizer holds (a number, a flag, a pair of numbers); a key the
    file lacks keeps this optimizer's value."""
    group = dict(ours)
    for key, value in saved.items():
        if key == "params" or key not in ours:
            continue
        kind = _kind(ours[key])
        valid = _kind(value) == kind and (
            kind != "number" or is_number(value)) and (
            not kind.endswith("numbers") or all(is_number(v) for v in value))
        if not valid:
            raise ValueError(f"{where}: optimizer group {index} has {key}={value!r:.80}, "
                             f"expected a value like {ours[key]!r}")
        group[key] = tuple(value) if isinstance(ours[key], tuple) else value
    return group


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
    match (a different model config, different optimizer groups, a changed tensors file).
    """
    directory = Path(directory)
    meta = read_training_state(directory)
    where = _where(directory / TRAIN_STATE_FILE)
    ours = model.config.to_dict()
    different = [f"{k}: checkpoint {meta['model_config'].get(k)!r:.40}, model {v!r}"
                 for k, v in ours.items() if meta["model_config"].get(k) != v]
    if different:
        raise ValueError(f"the checkpoint {where} is for a different model ("
                         + "; ".join(different) + ")")
    names = _param_names(model, optimizer)
    if meta["optimizer"]["param_names"] != names:
        raise ValueError(f"the optimizer in {where} has different parameter groups "
                         "than this one: build it with the same configure_optimizer call")
    tensors = read_safetensors(directory / meta["tensors_file"], sha256=meta.get("tensors_sha256"))

    model_state = {name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")}
    expected = _tensors_to_save(model)
    problems = [f"missing {name!r}" for name in expected if name not in model_state]
    problems += [f"unexpected {name!r}" for name in model_state if name not in expected]
    problems += [f"{name!r} has shape {tuple(t.shape)}, the model {tuple(expected[name].shape)}"
                 for name, t in model_state.items() if name in expected and t.shape != expected[name].shape]
    rng_shapes = {"rng.torch": torch.get_rng_state().shape, "rng.batches": batch_rng.get_state().shape}
    for name, shape in rng_shapes.items():
        if name not in tensors:
            problems.append(f"missing {name!r}")
        elif tensors[name].dtype != torch.uint8 or tensors[name].shape != shape:
            problems.append(f"{name!r} is not a random-generator state")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = (name.split(".", 2) + ["", ""])[:3]
            if not (index.isdecimal() and int(index) < len(params) and key):
                problems.append(f"unexpected {name!r}")
            elif t.dim() > 0 and t.shape != params[int(index)].shape:
                problems.append(f"{name!r} has shape {tuple(t.shape)}, its parameter "
                                f"{tuple(params[int(index)].shape)}")
            else:
                state.setdefault(int(index), {})[key] = t
    if problems:
        raise ValueError(f"{meta['tensors_file']!r} in {str(directory)!r} does not fit (corrupted?): "
                         + "; ".join(problems))
    for index, values in meta["optimizer"]["other_state"].items():
        if int(index) >= len(params):
            raise ValueError(f"{where}: other_state names parameter {index}, the optimizer has "
                             f"{len(params)}")
        state.setdefault(int(index), {}).update(values)
    if len(meta["optimizer"]["param_groups"]) != len(optimizer.param_groups):
        raise ValueError(f"{where}: {len(meta['optimizer']['param_groups'])} optimizer groups, "
                         f"this optimizer has {len(optimizer.param_groups)}")
    our_groups = optimizer.state_dict()["param_groups"]  # "params" as indices, like the file's
    groups = [_restore_group(saved, group, i, where)
              for i, (saved, group) in enumerate(zip(meta["optimizer"]["param_groups"], our_groups,
                                                     strict=True))]
    model.load_state_dict(model_state, strict=not model.config.tie_weights)
    optimizer.load_state_dict({"state": state, "param_groups": groups})

    batch_rng.set_state(tensors["rng.batches"])
    if restore_global_rng:
        torch.set_rng_state(tensors["rng.torch"])
        cuda_states = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count())
                       if f"rng.cuda.{i}" in tensors]
        if cuda_states:
            torch.cuda.set_rng_state_all(cuda_states)
    return meta["step"]


def tidy_run_folder(directory: str | os.PathLike) -> list[str]:
    """Delete what saves killed halfway left in ``directory``: temporary files, and tensors
    files that train_state.json does not point at. Returns their names. Call it only while
    no other process writes into ``directory`` (hold its lock)."""
    directory = Path(directory)
    removed = remove_temp_files(directory)
    # Raises if train_state.json is unreadable: then no tensors file is deleted.
    keep = read_training_state(directory)["tensors_file"] if has_training_checkpoint(directory) else None
    for old in sorted(directory.glob(TENSORS_FILE_PATTERN)):
        if old.name != keep:
            old.unlink(missing_ok=True)
            removed.append(old.name)
    return removed
