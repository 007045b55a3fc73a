"""Training a GPT (chapter 8; several processes: chapter 14): AdamW with parameter groups,
a warm-up + cosine schedule, ``train_step`` and the loop ``train`` around it.

One optimizer step, as the field does it (``train_step``)::

    for each of grad_accum_steps micro-batches:    # a big batch in small pieces
        loss = model(x, y) / grad_accum_steps; loss.backward()
    clip the gradients to a global norm of grad_clip
    optimizer.step(); optimizer.zero_grad()

``train`` wraps it: the learning rate of each step (``lr_at``), batches, evaluation,
logging, checkpoints, resuming, DDP and ``torch.compile``.

Every ``eval_interval`` steps the model is evaluated on the WHOLE validation split (the
exact loss, not an estimate from a few random batches), shown also as perplexity and bits
per token / per character. Callbacks let a notebook draw the curves while it trains.

The same ``train`` runs on one process or under ``torchrun --nproc_per_node=N`` with
DistributedDataParallel: every process draws the same global batch, keeps its own slice,
and gradients are averaged across processes, so N processes take the same steps as one.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import clip_grads_with_norm_, get_total_norm
from tqdm.auto import tqdm

from ._checks import is_int, is_number
from .checkpoint import (
    first_non_finite,
    has_training_checkpoint,
    load_training_checkpoint,
    save_model,
    save_training_checkpoint,
)
from .config import PRESETS, TRAIN_PRESETS
from .data import get_batch, iter_eval_batches
from .files import atomic_write_text
from .model import GPT
from .tokenizers import Tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
OPTIMIZERS = ("adamw", "muon")
SCHEDULES = ("cosine", "wsd")
TRAIN_LOG_FILE = "train_log.jsonl"  # one JSON object per step and per evaluation


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (or gradient norm); the step was not taken."""

    def __init__(self, step: int, what: str, value: float) -> None:
        super().__init__(
            f"{what} is {value} at step {step}: training stopped before this update "
            "(lower the learning rate or enable grad_clip); the last checkpoint saved, "
            "if any, is from before this step"
        )
        self.step = step
        self.value = value


class NonFiniteWeightsError(NonFiniteLossError):
    """An update left a weight NaN or infinite (the loss before it was still finite); the
    weights were not saved, so the last checkpoint holds the last finite ones."""

    def __init__(self, step: int, name: str) -> None:
        RuntimeError.__init__(
            self,
            f"weight {name!r} holds NaN or inf after step {step}: training stopped and this "
            "step was not saved (lower the learning rate or enable grad_clip); the last "
            "checkpoint saved, if any, is from before this step",
        )
        self.step = step
        self.value = math.nan


@dataclass
class TrainConfig:
    """Hyperparameters of a training run. The defaults are nanoGPT's CPU "baby GPT" recipe
    for Tiny Shakespeare (warm-up 100, cosine decay to 1e-4 over 2000 steps, beta2 = 0.99).

    A step uses ``batch_size * grad_accum_steps`` sequences of the model's block_size
    tokens, summed over all processes when training runs distributed.
    """

    batch_size: int = 12             # sequences per micro-batch (all processes together)
    max_iters: int = 2000            # optimizer steps
    lr: float = 1e-3                 # peak learning rate, reached at the end of warm-up
    min_lr: float = 1e-4             # floor of the cosine decay
    warmup_iters: int = 100          # linear warm-up from lr / warmup_iters to lr
    lr_decay_iters: int | None = None  # cosine reaches min_lr here (None = max_iters)
    weight_decay: float = 0.1        # AdamW decay, on weight matrices only
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0           # clip the global gradient norm to this (0 = off)
    grad_accum_steps: int = 1        # micro-batches per optimizer step
    optimizer: str = "adamw"         # "adamw", or "muon": Muon for the blocks' matrices
    schedule: str = "cosine"         # "cosine", or "wsd": warm-up, stable, then linear decay
    decay_fraction: float = 0.2      # "wsd": the share of the steps after warm-up that decay
    eval_interval: int = 250         # evaluate every this many steps (0 = only at the end)
    eval_batch_size: int | None = None  # sequences per evaluation batch (None = batch_size)
    seed: int = 1337                 # seeds the batches and dropout
    device: str = "auto"             # "auto" = CUDA, then Apple MPS, then CPU
    dtype: str = "float32"           # "bfloat16" = autocast matmuls to bf16
    compile: bool = False            # torch.compile the model for training
    out_dir: str | None = None       # where checkpoints and the log go (None = nowhere)
    ckpt_interval: int | None = None  # save every this many steps (None = eval_interval)

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON gives lists back
        positive = ("batch_size", "max_iters", "grad_accum_steps")
        non_negative = ("warmup_iters", "eval_interval", "seed")
        for name in positive + non_negative:
            value = getattr(self, name)
            low = 1 if name in positive else 0
            if not is_int(value, low):
                rule = "a positive integer" if low else "an integer >= 0"
                raise ValueError(f"TrainConfig.{name} must be {rule}, got {value!r}")
        for name in ("lr_decay_iters", "eval_batch_size", "ckpt_interval"):
            value = getattr(self, name)
            if value is not None and not is_int(value, 1):
                raise ValueError(f"TrainConfig.{name} must be a positive integer or None, got {value!r}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not is_number(value) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {value!r}")
        if self.min_lr > self.lr:
            raise ValueError(f"TrainConfig.min_lr ({self.min_lr}) must not exceed TrainConfig.lr ({self.lr})")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {list(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be one of {list(SCHEDULES)}, "
                             f"got {self.schedule!r}")
        if not is_number(self.decay_fraction) or not 0 < self.decay_fraction <= 1:
            raise ValueError(f"TrainConfig.decay_fraction must be in (0, 1], "
                             f"got {self.decay_fraction!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"TrainConfig.dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(f"TrainConfig.device must be 'auto', 'cpu', 'cuda', 'mps', ..., "
                                 f"got {self.device!r}") from err

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """The training recipe that goes with model preset ``name`` (``config.TRAIN_PRESETS``;
        a preset without one gets the defaults), with any field replaced by ``overrides``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
        return cls(**{**TRAIN_PRESETS.get(name, {}), **overrides})


# ---------------------------------------------------------------- optimizer and schedule


def decay_groups(model: nn.Module) -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter]]:
    """Split the trainable parameters by name into (decay, no_decay).

    Weight decay pulls weights towards 0. It suits the weight matrices of linear layers.
    Biases and norm gains (1-D) only shift and rescale, so they are left out; so are the
    weights of nn.Embedding layers (minGPT's convention; nanoGPT decays every 2-D tensor).
    An untied input embedding gets a gradient only in the rows of tokens that occur, and
    decay would push rare tokens' rows to 0 between their appearances; a tied lm_head IS the
    token embedding (one Parameter) and gets a gradient in every row at every step, but
    follows the same rule (chapter 8, section 8.4).
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay: dict[str, nn.Parameter] = {}
    no_decay: dict[str, nn.Parameter] = {}
    for name, p in model.named_parameters():  # each shared Parameter is listed once
        if p.requires_grad:
            group = decay if p.dim() >= 2 and id(p) not in embeddings else no_decay
            group[name] = p
    # Every parameter in exactly one group: none forgotten, none optimized twice.
    decay_ids, no_decay_ids = {id(p) for p in decay.values()}, {id(p) for p in no_decay.values()}
    assert not decay_ids & no_decay_ids
    assert decay_ids | no_decay_ids == {id(p) for p in model.parameters() if p.requires_grad}
    return decay, no_decay


def configure_optimizer(
    model: GPT,
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.99),
    fused: bool | None = None,
    optimizer: str = "adamw",
) -> torch.optim.Optimizer | MuonAdamW:
    """The optimizer of a training run, with weight decay on weight matrices only (see
    ``decay_groups``).

    optimizer: "adamw" (two parameter groups, decayed and not), or "muon": Muon
    (Jordan et al., 2024) for the weight matrices of the blocks, which orthogonalises each
    matrix's momentum before the step, and AdamW for everything else (embeddings, a tied
    lm_head, norms, biases). Muon scales its steps to match AdamW's size
    (``adjust_lr_fn="match_rms_adamw"``, Liu et al., 2025), so one ``lr`` and one
    ``weight_decay`` serve both.
    fused: update every AdamW parameter in one kernel. None = fused on CPU and CUDA, where
    PyTorch has it: for the baby GPT on a 2-core CPU the optimizer step took 1.4 ms
    instead of 5.4 ms with the default multi-tensor ("foreach") path.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    if fused is None:
        fused = model.device.type in ("cpu", "cuda")
    decay, no_decay = decay_groups(model)
    matrices = {}
    if optimizer == "muon":  # the blocks' matrices; an untied lm_head stays with AdamW
        matrices = {n: p for n, p in decay.items() if n.startswith("transformer.h.")}
        decay = {n: p for n, p in decay.items() if n not in matrices}
    groups = [
        {"params": list(decay.values()), "weight_decay": weight_decay},
        {"params": list(no_decay.values()), "weight_decay": 0.0},
    ]
    adamw = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, fused=fused)
    if not matrices:
        return adamw
    muon = torch.optim.Muon(list(matrices.values()), lr=lr, weight_decay=weight_decay,
                            adjust_lr_fn="match_rms_adamw")
    return MuonAdamW(muon, adamw)


class MuonAdamW:
    """Muon and AdamW stepping together as one optimizer: ``param_groups`` lists both's
    groups (so a loop that sets every group's lr sets both), and the state dict numbers
    the parameters across both, in order, as one ``torch.optim.Optimizer`` would."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for opt in self.optimizers for group in opt.param_groups]

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        state, groups, offset = {}, [], 0
        for opt in self.optimizers:
            sd = opt.state_dict()
            state.update({offset + i: s for i, s in sd["state"].items()})
            groups += [{**g, "params": [offset + i for i in g["params"]]} for g in sd["param_groups"]]
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups, offset = list(state_dict["param_groups"]), 0
        for opt in self.optimizers:
            mine, groups = groups[:len(opt.param_groups)], groups[len(opt.param_groups):]
            count = sum(len(g["params"]) for g in mine)
            opt.load_state_dict({
                "state": {i - offset: s for i, s in state_dict["state"].items()
                          if offset <= i < offset + count},
                "param_groups": [{**g, "params": [i - offset for i in g["params"]]} for g in mine],
            })
            offset += count


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based): a pure function, easy to plot.

    Linear warm-up over ``warmup_iters`` steps (Adam's moment estimates are poor at first,
    so big early steps would be noisy), then down to ``min_lr`` at ``lr_decay_iters``
    (default max_iters), then ``min_lr``. The way down is ``cfg.schedule``:

    - "cosine": half a cosine from ``lr`` to ``min_lr`` over all the steps after warm-up;
    - "wsd" (warm-up, stable, decay; Hu et al., 2024): ``lr`` stays flat, and only the last
      ``decay_fraction`` of the steps after warm-up fall linearly to ``min_lr``.
    """
    decay_iters = cfg.max_iters if cfg.lr_decay_iters is None else cfg.lr_decay_iters
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    if step >= decay_iters:
        return cfg.min_lr
    if cfg.schedule == "wsd":
        decay_start = decay_iters - cfg.decay_fraction * (decay_iters - cfg.warmup_iters)
        if step < decay_start:
            return cfg.lr
        progress = (step - decay_start) / (decay_iters - decay_start)  # 0 -> 1
        return cfg.lr + progress * (cfg.min_lr - cfg.lr)
    progress = (step - cfg.warmup_iters) / (decay_iters - cfg.warmup_iters)  # 0 -> 1
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


# ---------------------------------------------------------------- devices and processes


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> CUDA if available, else Apple MPS, else CPU; any other name as given,
    once it is known to exist here (ValueError otherwise: "cuda" on a machine without
    a GPU fails now, not deep inside the first tensor copy)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:<index> or mps") from err
    # torch.cpu, torch.cuda, torch.xpu, ...: is_available() and device_count(); MPS answers in
    # torch.backends. A type with neither ("meta", "hpu" without its plugin) cannot train here.
    backend = torch.backends.mps if device.type == "mps" else getattr(torch, device.type, None)
    if not hasattr(backend, "is_available"):
        raise ValueError(f"device {name!r} is not supported: use auto, cpu, cuda, cuda:<index> or mps")
    if not backend.is_available() or (device.index or 0) >= getattr(backend, "device_count", lambda: 1)():
        raise ValueError(f"device {name!r} is not available on this machine "
                         "(use --device cpu or auto)")
    return device


def autocast(device: torch.device, dtype: str) -> AbstractContextManager:
    """Mixed precision: with "bfloat16" matmuls run in bf16 (weights stay float32)."""
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


def _start_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1).

    Returns (rank, world_size, device). The group is created once per process and kept
    until the process exits (torch cannot create a second one after destroying the first),
    so train() may be called several times under torchrun.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, resolve_device(device_name)
    device = resolve_device(device_name)
    if device.type == "cuda":  # one GPU per process
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
    return dist.get_rank(), dist.get_world_size(), device


# ---------------------------------------------------------------- evaluation


def measure_chars_per_token(tokenizer: Tokenizer, data: torch.Tensor) -> float:
    """Characters per predicted token of ``data`` (N,): the text of its N - 1 targets
    data[1:], decoded, per token. 1.0 for a character tokenizer, more for BPE.
    Turns a loss per token into a loss per character, comparable across tokenizers."""
    if len(data) < 2:
        raise ValueError(f"data needs at least 2 tokens (one target), got {len(data)}")
    return len(tokenizer.decode(data[1:].tolist())) / (len(data) - 1)


@torch.no_grad()
def evaluate(
    model: GPT,
    data: torch.Tensor,
    batch_size: int,
    *,
    chars_per_token: float | None = None,
    tokenizer: Tokenizer | None = None,
    dtype: str = "float32",
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, float]:
    """Exact mean loss of ``model`` over every next-token prediction in ``data`` (N,).

    Returns a dict with::

        loss: cross-entropy in nats per token;
        perplexity: exp(loss), the number of equally likely tokens the model hesitates among;
        bits_per_token: loss / ln 2;
        bits_per_char: bits_per_token / chars_per_token, when chars_per_token or the
            tokenizer (to measure it, see measure_chars_per_token) is given: comparable
            across tokenizers, unlike the loss per token.

    With ``world_size`` > 1 (inside a process group) each process takes every
    world_size-th batch and the sums are added up across processes.
    """
    if not is_int(batch_size, 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(data) < 2:
        raise ValueError(f"data needs at least 2 tokens (one target) to evaluate, got {len(data)}")
    device = model.device
    block_size = model.config.block_size
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of losses, count)
    was_training = model.training
    model.eval()
    try:
        for i, (x, y) in enumerate(iter_eval_batches(data, batch_size, block_size)):
            if i % world_size != rank:
                continue
            x, y = x.to(device), y.to(device)
            with autocast(device, dtype):
                _, loss = model(x, y)  # mean over the b * t targets of this batch
            total[0] += loss.double() * y.numel()
            total[1] += y.numel()
    finally:
        model.train(was_training)
    if world_size > 1:
        dist.all_reduce(total)
    loss = (total[0] / total[1]).item()
    # exp overflows a float above a loss of ~709.8 nats: such a perplexity is infinite.
    perplexity = math.inf if loss > math.log(sys.float_info.max) else math.exp(loss)
    result = {"loss": loss, "perplexity": perplexity, "bits_per_token": loss / math.log(2)}
    if chars_per_token is None and tokenizer is not None:
        chars_per_token = measure_chars_per_token(tokenizer, data)
    if chars_per_token is not None:
        result["bits_per_char"] = result["bits_per_token"] / chars_per_token
    return result


# ---------------------------------------------------------------- one step


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    grad_clip: float = 1.0,
    dtype: str = "float32",
    step: int = 0,
) -> tuple[float, float]:
    """One optimizer step on ``batches``: a list of (x, y) micro-batches, each (b, T).

    The gradients of the micro-batches add up (each loss is divided by their number,
    so the sum is the gradient of the mean loss); then one global gradient norm is
    measured, the gradients are clipped to ``grad_clip`` (0 = off) and the optimizer
    takes its step. ``model`` may be wrapped in DistributedDataParallel: gradients are
    then averaged across processes once, after the last micro-batch. ``step`` (updates
    done so far) only names the step in errors.
    Returns (mean loss, gradient norm before clipping).

    Raises NonFiniteLossError before the update if the loss or the gradient norm is
    NaN or infinite: the weights stay as they were.
    """
    device = next(model.parameters()).device  # model may be a DDP or compiled wrapper
    ddp = isinstance(model, DistributedDataParallel)
    loss_sum = torch.zeros((), device=device)
    for i, (x, y) in enumerate(batches):
        last = i == len(batches) - 1
        with nullcontext() if last or not ddp else model.no_sync():  # sync at the end
            with autocast(device, dtype):
                _, loss = model(x, y)
            (loss / len(batches)).backward()  # backward() ADDS into p.grad
        loss_sum += loss.detach()
    if ddp:
        dist.all_reduce(loss_sum)  # every process checks and reports the global loss
    n_losses = len(batches) * (dist.get_world_size() if ddp else 1)
    loss_value = loss_sum.item() / n_losses
    if not math.isfinite(loss_value):
        raise NonFiniteLossError(step + 1, "the training loss", loss_value)
    params = [p for p in model.parameters() if p.grad is not None]
    grad_norm = get_total_norm([p.grad for p in params])  # one norm for all gradients
    if not torch.isfinite(grad_norm):
        raise NonFiniteLossError(step + 1, "the gradient norm", grad_norm.item())
    if grad_clip > 0:  # rescale all gradients together: keeps their direction
        clip_grads_with_norm_(params, grad_clip, grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_value, grad_norm.item()


# ---------------------------------------------------------------- the loop


@dataclass
class TrainHistory:
    """What one ``train`` call did: one record per optimizer step and per evaluation."""

    steps: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        """Training loss of every step, in order."""
        return [record["loss"] for record in self.steps]


def _log_lines_until(path: Path, step: int) -> list[str]:
    """The lines of the log at ``path`` whose record is of a step <= ``step``: what a run
    resumed from that step's checkpoint has done (later lines were written after it, and
    will be written again). A line cut short by a crash is dropped."""
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if line.endswith("\n") and isinstance(record, dict) and is_int(record.get("step"), 0) \
                and record["step"] <= step:
            kept.append(line)
    return kept


class _RunLog:
    """Where the records of a run go: the history, train_log.jsonl and the callbacks
    (the file and the callbacks on the main process only).

    resume_step: continue the log of a run resumed from this step's checkpoint, without the
    records written after it (so no step appears twice); None starts a new log.
    """

    def __init__(self, history: TrainHistory, path: Path | None, resume_step: int | None,
                 is_main: bool, on_step: Callable | None, on_eval: Callable | None) -> None:
        self.history, self.is_main = history, is_main
        self.callbacks = {"step": on_step, "eval": on_eval}
        self.file = None
        if path and is_main:
            if resume_step is not None:
                atomic_write_text(path, "".join(_log_lines_until(path, resume_step)))
            self.file = open(path, "w" if resume_step is None else "a", encoding="utf-8")

    def record(self, kind: str, info: dict[str, float]) -> None:
        (self.history.steps if kind == "step" else self.history.evals).append(info)
        if self.file is not None:
            self.file.write(json.dumps({"event": kind, **info}) + "\n")
            self.file.flush()
        if self.is_main and self.callbacks[kind] is not None:
            self.callbacks[kind](info)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class _StopOnCtrlC:
    """Between ``start`` and ``stop``, the first Ctrl-C (SIGINT) only asks the training loop
    to stop after the step it is in, so that it can save a checkpoint first; a second
    Ctrl-C interrupts at once (the last checkpoint stays whole: every save is atomic).

    Only on the main thread (where Python runs signal handlers), and not where SIGINT is
    ignored (a job started in the background).
    """

    def __init__(self, active: bool) -> None:
        self.active = active and threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        self.requested = False
        self.previous: Any = None
        self.started = False

    def start(self) -> None:
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._handle)
            self.started = True

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        self.stop()  # the next Ctrl-C interrupts at once
        print("\nCtrl-C: stopping after this step to save a checkpoint (press it again to "
              "stop at once)", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.started:
            # None: the old handler was not set from Python; Python's own raises KeyboardInterrupt.
            signal.signal(signal.SIGINT, signal.default_int_handler if self.previous is None
                          else self.previous)
            self.started = False


def train(
    model: GPT,
    train_data: torch.Tensor,
    val_data: torch.Tensor | None,
    cfg: TrainConfig,
    *,
    on_step: Callable[[dict[str, float]], None] | None = None,
    on_eval: Callable[[dict[str, float]], None] | None = None,
    chars_per_token: float | None = None,
    tokenizer: Tokenizer | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainHistory:
    """Train ``model`` on token ids ``train_data`` (N,), evaluating on ``val_data`` (M,).

    Args:
        cfg: the hyperparameters (see TrainConfig).
        on_step: called after every step with {"step", "loss", "lr", "grad_norm",
            "tokens_per_sec", "elapsed"}; "step" counts the updates done so far.
        on_eval: called after every evaluation with {"step", "loss", "perplexity",
            "bits_per_token", ("bits_per_char")}; also at step 0, before training.
        chars_per_token, tokenizer: for bits per character, the ratio or a tokenizer to
            measure it on val_data (see measure_chars_per_token).
        resume: continue from the checkpoint in cfg.out_dir (model, optimizer, step,
            random states): the losses continue exactly as in an uninterrupted run.
        progress: show a progress bar with the loss and tokens/s.

    With cfg.out_dir set, a checkpoint (see checkpoint.save_training_checkpoint) and
    the model (model.safetensors + config.json, recording the tokenizer if it fits the
    model) are saved every cfg.ckpt_interval steps and at the end, and every step and
    evaluation is appended to train_log.jsonl. Weights that are not finite are never
    saved. Ctrl-C stops after the current step and saves a checkpoint first (then raises
    KeyboardInterrupt). A resumed run rewrites the model files from its checkpoint and
    drops the log records written after it. Under torchrun, only rank 0 logs, saves and
    calls the callbacks (and Ctrl-C interrupts at once).

    Raises:
        NonFiniteLossError: the loss or the gradient norm became NaN or infinite.
        NonFiniteWeightsError: a weight became NaN or infinite (checked before each save).
    """
    n_processes = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.batch_size % n_processes != 0:
        raise ValueError(f"TrainConfig.batch_size ({cfg.batch_size}) must be divisible by the "
                         f"number of processes ({n_processes}): each takes an equal slice")
    if resume and (cfg.out_dir is None or not has_training_checkpoint(cfg.out_dir)):
        raise FileNotFoundError(f"resume=True but there is no training checkpoint in out_dir={cfg.out_dir!r}")
    rank, world_size, device = _start_distributed(cfg.device)
    is_main = rank == 0
    out_dir = Path(cfg.out_dir) if cfg.out_dir is not None else None
    ckpt_interval = cfg.ckpt_interval or cfg.eval_interval
    block_size = model.config.block_size
    local = slice(rank * cfg.batch_size // world_size, (rank + 1) * cfg.batch_size // world_size)
    tokens_per_step = cfg.batch_size * cfg.grad_accum_steps * block_size
    if chars_per_token is None and tokenizer is not None and val_data is not None:
        chars_per_token = measure_chars_per_token(tokenizer, val_data)  # once, not every eval
    history = TrainHistory()
    log: _RunLog | None = None
    bar = tqdm(total=cfg.max_iters, disable=not (progress and is_main),
               desc="training", unit="step", dynamic_ncols=True)

    model.to(device)
    optimizer = configure_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas,
                                    optimizer=cfg.optimizer)
    # Batches come from their own generator, seeded alike in every process, so all
    # processes draw the same global batch; the global generator drives dropout.
    batch_rng = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed + rank)
    step = 0

    def next_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This process's slice of each of the step's grad_accum_steps global batches."""
        batches = []
        for _ in range(cfg.grad_accum_steps):
            x, y = get_batch(train_data, cfg.batch_size, block_size, generator=batch_rng)
            batches.append((x[local].to(device), y[local].to(device)))  # (B / world_size, T)
        return batches

    def run_eval() -> None:
        if val_data is not None:
            result = evaluate(model, val_data, cfg.eval_batch_size or cfg.batch_size,
                              chars_per_token=chars_per_token, dtype=cfg.dtype,
                              rank=rank, world_size=world_size)
            log.record("eval", {"step": step, **result})
            bar.set_postfix_str(f"val loss {result['loss']:.4f}", refresh=False)

    # The tokenizer is recorded with the model only if it is the model's (same size).
    model_tokenizer = tokenizer if tokenizer is not None and \
        tokenizer.vocab_size == model.config.vocab_size else None
    saved_step = 0  # the step of the last checkpoint (0: none is needed yet)
    ctrl_c = _StopOnCtrlC(is_main and out_dir is not None and world_size == 1)

    def save() -> None:
        nonlocal saved_step
        if out_dir is None:
            return
        bad = first_non_finite(model)  # on every process, so all of them stop together
        if bad is not None:
            raise NonFiniteWeightsError(step, bad)
        if is_main:
            save_training_checkpoint(out_dir, model, optimizer, step=step, batch_rng=batch_rng,
                                     train_config=cfg.to_dict())
            save_model(model, out_dir, tokenizer=model_tokenizer)
        saved_step = step

    try:
        if resume:
            step = saved_step = load_training_checkpoint(out_dir, model, optimizer, batch_rng,
                                                         restore_global_rng=world_size == 1)
            if is_main:  # the model files may be older than the checkpoint, or damaged
                save_model(model, out_dir, tokenizer=model_tokenizer)
            if world_size > 1:  # per-process dropout streams are not saved: start fresh ones
                torch.manual_seed(cfg.seed + rank + step)
            bar.update(step)
        train_model: nn.Module = torch.compile(model) if cfg.compile else model
        if world_size > 1:
            train_model = DistributedDataParallel(
                train_model, device_ids=[device.index] if device.type == "cuda" else None)
        if is_main and out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        log = _RunLog(history, out_dir / TRAIN_LOG_FILE if out_dir else None,
                      step if resume else None, is_main, on_step, on_eval)

        model.train()
        ctrl_c.start()
        if step == 0:
            run_eval()  # the loss before training: about ln(vocab_size) for a fresh model
        start_time = time.perf_counter()
        while step < cfg.max_iters:
            if ctrl_c.requested:
                if step != saved_step:
                    save()
                raise KeyboardInterrupt(
                    f"stopped after step {step} of {cfg.max_iters}; the checkpoint of step "
                    f"{step} is in {str(out_dir)!r}: run the same command to continue"
                    if step else "stopped before the first step; nothing to save")
            t0 = time.perf_counter()
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, grad_norm = train_step(train_model, optimizer, next_batches(),
                                         grad_clip=cfg.grad_clip, dtype=cfg.dtype, step=step)
            step += 1
            seconds = time.perf_counter() - t0
            info = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                    "tokens_per_sec": tokens_per_step / seconds,
                    "elapsed": time.perf_counter() - start_time}
            log.record("step", info)
            bar.set_postfix_str(f"loss {loss:.4f}, {info['tokens_per_sec']:,.0f} tok/s", refresh=False)
            bar.update(1)
            if (cfg.eval_interval and step % cfg.eval_interval == 0) or step == cfg.max_iters:
                run_eval()
            if (ckpt_interval and step % ckpt_interval == 0) or step == cfg.max_iters:
                save()
    finally:
        ctrl_c.stop()
        bar.close()
        if log is not None:
            log.close()
    return history
