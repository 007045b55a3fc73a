"""How much of the machine training uses: model FLOPs utilisation (MFU) and peak memory.

1. Peak: the best float32 matrix-multiply rate this machine reaches with torch's threads
   (square matmuls of a few sizes, best of several runs), in FLOP/s.
2. MFU: training FLOP/s (``GPT.flops_per_token()`` x tokens per second, forward + backward +
   AdamW step) divided by that peak, for our baby model and for Hugging Face's
   ``GPT2LMHeadModel`` of the same shape, steps alternating. Higher is better.
3. Training memory at its peak (the start of the backward pass): weights, gradients, AdamW's
   two moments, and the activations the forward pass saves for the backward one, counted
   exactly with autograd's saved-tensor hooks. (The process's resident memory was tried
   first: the allocator made it vary by tens of MB between identical runs.) Lower is better.

    python -m benchmarks.bench_hardware [--quick]
"""

from __future__ import annotations

import time

import torch

from benchmarks._timing import alternate, command_line, row, run_quietly
from benchmarks.bench_model import VOCAB, hf_baby
from minillm_lib.interop import from_hf
from minillm_lib.model import GPT
from minillm_lib.training import configure_optimizer

BATCH, BLOCK = 12, 64


def matmul_peak(sizes: tuple[int, ...], repeats: int) -> float:
    """Best float32 matmul rate over ``sizes`` (n x n times n x n: 2 n^3 FLOPs), in FLOP/s."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, xy: torch.Tensor,
                  hf: bool) -> None:
    """One forward + backward + clip + AdamW step on the (B, T + 1) batch ``xy``."""
    if hf:
        logits = model(xy[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), xy[:, 1:].reshape(-1))
    else:
        _, loss = model(xy[:, :-1], xy[:, 1:])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def models() -> tuple[GPT, torch.optim.Optimizer, torch.nn.Module, torch.optim.Optimizer]:
    hf = hf_baby(BLOCK).train()
    ours = from_hf(hf).train()
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    return ours, configure_optimizer(ours, lr=1e-3, betas=(0.9, 0.99)), hf, hf_opt


def bench_mfu(quick: bool) -> dict:
    peak = matmul_peak((256,) if quick else (256, 512, 1024), 2 if quick else 5)
    ours, our_opt, hf, hf_opt = models()
    g = torch.Generator().manual_seed(0)
    xy = torch.randint(VOCAB, (BATCH, BLOCK + 1), generator=g)
    training_step(ours, our_opt, xy, hf=False), training_step(hf, hf_opt, xy, hf=True)  # warm-up
    t_ours, t_hf = alternate(lambda: training_step(ours, our_opt, xy, hf=False),
                             lambda: training_step(hf, hf_opt, xy, hf=True), 4 if quick else 40)
    flops_per_step = ours.flops_per_token() * BATCH * BLOCK  # the same shape for both
    ours_mfu, hf_mfu = flops_per_step / t_ours / peak, flops_per_step / t_hf / peak
    return row("training MFU, baby shape (share of matmul peak)", ours_mfu, hf_mfu, "fraction",
               target=1.0, lower_is_better=False, peak_flops=peak,
               ours_flops=flops_per_step / t_ours, peer_flops=flops_per_step / t_hf)


def training_memory(model: torch.nn.Module, xy: torch.Tensor, hf: bool) -> int:
    """Bytes a training step holds at its peak, at the start of the backward pass: the weights,
    their gradients, AdamW's two moments (4 x the weights) and every activation the forward
    pass saved for the backward one, counted by autograd's saved-tensor hooks (each storage
    once; the weights themselves are not counted twice)."""
    weights = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if hf:
            logits = model(xy[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), xy[:, 1:].reshape(-1))
        else:
            _, loss = model(xy[:, :-1], xy[:, 1:])
    del loss
    return 4 * sum(weights.values()) + sum(saved.values())


def bench_memory(quick: bool) -> dict:
    ours, _, hf, _ = models()
    xy = torch.randint(VOCAB, (BATCH, BLOCK + 1), generator=torch.Generator().manual_seed(0))
    mb = [training_memory(m, xy, is_hf) / 2**20 for m, is_hf in ((ours, False), (hf, True))]
    return row("training memory at its peak, baby shape", *mb, "MB", target=1.0)


def run(quick: bool = False) -> list[dict]:
    return run_quietly([bench_mfu, bench_memory], quick)


if __name__ == "__main__":
    command_line(run, __doc__)
