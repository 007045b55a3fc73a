"""Model speed against Hugging Face ``transformers`` on the same weights.

1. Training step (forward + backward + AdamW step) of the baby shape (4 layers, 4 heads, 128
   wide, block 64, batch 12), ours and a ``GPT2LMHeadModel`` loaded with the same weights,
   alternating steps on the same batches. The loss trajectories are compared as well: speed
   that changes the numbers does not count.
2. Generation: batch 1, 500 new tokens, greedy, baby shape with a 1024-token context, our
   KV-cache ``generate`` against HF's ``generate(do_sample=False, use_cache=True)``; the tokens
   must be identical.

    python -m benchmarks.bench_model [--quick]
"""

from __future__ import annotations

import copy

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from benchmarks._timing import alternate, command_line, row, run_quietly
from minillm_lib.generate import generate
from minillm_lib.model import GPT
from minillm_lib.train import configure_optimizer

VOCAB = 65  # Tiny Shakespeare's characters


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
    ours = GPT.from_hf(hf).train()
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
        state["i"] += 1

    our_step(), hf_step()  # warm-up (first-call allocations)
    t_ours, t_hf = alternate(our_step, hf_step, steps)
    drift = max(abs(a - b) for a, b in zip(losses["ours"], losses["hf"], strict=True))
    return row("train step, baby shape (fwd+bwd+AdamW)", t_ours * 1e3, t_hf * 1e3, "ms/step",
               target=0.6, same_losses=drift < 1e-3, max_loss_difference=drift)


def bench_generation(quick: bool) -> dict:
    new_tokens = 50 if quick else 500
    hf = hf_baby(1024).eval()
    ours = GPT.from_hf(copy.deepcopy(hf)).eval()
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
    # Reported as tokens per second: higher is better, so the target is a minimum ratio.
    return row("generation, 500 tokens greedy, KV cache", new_tokens / t_ours, new_tokens / t_hf,
               "tokens/s", target=2.0, lower_is_better=False, identical_tokens=identical)


def run(quick: bool = False) -> list[dict]:
    return run_quietly([bench_train_step, bench_generation], quick)


if __name__ == "__main__":
    command_line(run, __doc__)
