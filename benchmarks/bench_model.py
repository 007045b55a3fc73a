"""Model speed against Hugging Face ``transformers`` on the same weights.

1. Training step (forward + backward + AdamW step) of the baby shape (4 layers, 4 heads, 128
   wide, block 64, batch 12), ours and a ``GPT2LMHeadModel`` loaded with the same weights,
   alternating steps on the same batches. The loss trajectories are compared as well: speed
   that changes the numbers does not count.
2. Generation: batch 1, 500 new tokens, greedy, baby shape with a 1024-token context, our
   KV-cache ``generate`` against HF's ``generate(do_sample=False, use_cache=True)``; the tokens
   must be identical.

Each row also says where the time goes, so a missed target can be explained with numbers:
the training step's time in matrix products (``torch.profiler``) and its largest other
operations; generation's count of ATen operations (kernel launches) per token.

    python -m benchmarks.bench_model [--quick]
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import GPT2Config, GPT2LMHeadModel

from benchmarks._timing import alternate, command_line, row, run_quietly
from minillm_lib.interop import from_hf
from minillm_lib.sampling import generate
from minillm_lib.training import configure_optimizer

VOCAB = 65  # Tiny Shakespeare's characters
MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}


def time_split(step: Callable[[], object], steps: int) -> dict:
    """Profile ``steps`` calls of ``step``: ms per step in matrix products, and the five
    other operations with the most time of their own (ms per step)."""
    with torch.profiler.profile() as prof:
        for _ in range(steps):
            step()
    self_ms = {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}
    others = sorted((k for k in self_ms if k not in MATMULS and k.startswith("aten::")),
                    key=self_ms.get, reverse=True)
    return {"matmul_ms": sum(self_ms.get(k, 0.0) for k in MATMULS),
            "largest_other_ms": {k: round(self_ms[k], 2) for k in others[:5]}}


class CountOps(TorchDispatchMode):
    """Count the ATen operations PyTorch dispatches: each is a kernel launch with its own
    fixed overhead, which is what a batch-1 decoding step of a small model is made of."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def hf_baby(block_size: int, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_positions=block_size, n_embd=128, n_layer=4, n_head=4,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    config._attn_implementation = "sdpa"
    return GPT2LMHeadModel(config)


def bench_train_step(quick: bool) -> dict:
    steps = 6 if quick else 60
    batch, block = 12, 64
    hf = hf_baby(block).train()
    ours = from_hf(hf).train()
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    our_opt = configure_optimizer(ours, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(VOCAB, (batch, block + 1), generator=g) for _ in range(steps + 1)]
    losses = {"ours": [], "hf": []}
    state = {"i": 0}

    def our_step():
        xy = batches[state["i"]]
        _, loss = ours(xy[:, :-1], xy[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
        our_opt.step()
        our_opt.zero_grad(set_to_none=True)
        losses["ours"].append(loss.item())

    def hf_step():
        xy = batches[state["i"]]
        logits = hf(xy[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), xy[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
        hf_opt.step()
        hf_opt.zero_grad(set_to_none=True)
        losses["hf"].append(loss.item())
        state["i"] = (state["i"] + 1) % len(batches)

    our_step(), hf_step()  # warm-up (first-call allocations)
    t_ours, t_hf = alternate(our_step, hf_step, steps)
    drift = max(abs(a - b) for a, b in zip(losses["ours"], losses["hf"], strict=True))
    # Where the time goes (profiled apart: the profiler slows every operation a little).
    profile_steps = 2 if quick else 10
    ours_split, hf_split = time_split(our_step, profile_steps), time_split(hf_step, profile_steps)
    # The weight matmuls' arithmetic: 2 FLOPs per multiply-add, x3 with the backward pass.
    matmul_flops = 6 * ours.num_params(non_embedding=True) * batch * block
    return row("train step, baby shape (fwd+bwd+AdamW)", t_ours * 1e3, t_hf * 1e3, "ms/step",
               target=0.6, same_losses=drift < 1e-3, max_loss_difference=drift,
               ours_matmul_ms=ours_split["matmul_ms"], peer_matmul_ms=hf_split["matmul_ms"],
               ours_matmul_flops=matmul_flops / (ours_split["matmul_ms"] / 1e3),
               ours_largest_other_ms=ours_split["largest_other_ms"])


def bench_generation(quick: bool) -> dict:
    new_tokens = 50 if quick else 500
    hf = hf_baby(1024).eval()
    ours = from_hf(copy.deepcopy(hf)).eval()
    prompt = torch.tensor([[1, 2, 3]])
    out = {}

    def run_ours():
        with torch.inference_mode():
            out["ours"] = generate(ours, prompt, new_tokens, temperature=0.0)

    def run_hf():
        with torch.inference_mode():
            out["hf"] = hf.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                    do_sample=False, use_cache=True,
                                    attention_mask=torch.ones_like(prompt))

    run_ours(), run_hf()  # warm-up
    t_ours, t_hf = alternate(run_ours, run_hf, 2 if quick else 5)
    identical = torch.equal(out["ours"], out["hf"])
    ops = {}
    for name, run_side in (("ours", run_ours), ("hf", run_hf)):
        with CountOps() as counter:
            run_side()
        ops[name] = counter.count / new_tokens
    # Reported as tokens per second: higher is better, so the target is a minimum ratio.
    return row("generation, 500 tokens greedy, KV cache", new_tokens / t_ours, new_tokens / t_hf,
               "tokens/s", target=2.0, lower_is_better=False, identical_tokens=identical,
               ours_ops_per_token=round(ops["ours"], 1), peer_ops_per_token=round(ops["hf"], 1))


def run(quick: bool = False) -> list[dict]:
    return run_quietly([bench_train_step, bench_generation], quick)


if __name__ == "__main__":
    command_line(run, __doc__)
