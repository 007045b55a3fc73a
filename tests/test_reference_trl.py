"""Our GRPO loss against trl's GRPOTrainer: the same completions, advantages and old /
reference log-probabilities in; trl scores them with our model exported to Hugging Face, we
score them with ours; the same loss out."""

import datasets
import pytest
import torch
import trl  # in requirements.txt: a missing trl fails here, it is not skipped

from minillm_lib.config import GPTConfig
from minillm_lib.interop import to_hf, to_hf_tokenizer
from minillm_lib.model import GPT
from minillm_lib.rl import (
    ARITHMETIC_CHARS,
    arithmetic_problems,
    completion_logprobs,
    group_advantages,
    grpo_loss,
    rewards,
    sample_completions,
)
from minillm_lib.tokenizers import CharTokenizer

END = "<|end|>"


def trl_trainer(folder, hf_tok, tmp_path, *, loss_type: str, beta: float, epsilon: float):
    """A GRPOTrainer on the model saved in ``folder`` (with beta > 0 trl loads its reference
    model from the same folder)."""
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, bf16=False, loss_type=loss_type,
        beta=beta, epsilon=epsilon, num_generations=4, per_device_train_batch_size=8,
        max_completion_length=8, logging_steps=1, save_strategy="no",
        use_bias_correction_kl=False,  # the GRPO paper's KL term (trl weights it by the ratio)
    )
    prompts = datasets.Dataset.from_dict({"prompt": ["1+1="] * 8})
    return trl.GRPOTrainer(model=str(folder), reward_funcs=lambda completions, **_: [0.0] * len(completions),
                           args=args, train_dataset=prompts, processing_class=hf_tok)


@pytest.mark.parametrize("loss_type, average", [("grpo", "completion"), ("bnpo", "token")])
def test_grpo_loss_matches_trl(tmp_path, loss_type, average):
    torch.manual_seed(0)
    tok = CharTokenizer(sorted(ARITHMETIC_CHARS), special_tokens=[END])
    eos = tok.special_tokens[END]
    model = GPT(GPTConfig.from_preset("cpu-5min", vocab_size=tok.vocab_size, n_layer=2,
                                      n_embd=32, n_head=2, block_size=24)).eval()
    with torch.no_grad():  # far from uniform, so the ratios and the KL are not all ~1 and ~0
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    # Two prompts (of one length: trl pads prompts on the left, ours are not padded), four
    # completions each, sampled from our model; a tokenised "right answer" reward.
    problems = [p for p in arithmetic_problems(50, seed=3) if len(p.prompt) == 6][:2]
    groups = [sample_completions(model, tok.encode(p.prompt), 4, 8, eos_id=eos,
                                 generator=torch.Generator().manual_seed(i))
              for i, p in enumerate(problems)]
    width = max(seq.size(1) for seq, _ in groups)
    sequences = torch.cat([torch.cat([seq, torch.full((4, width - seq.size(1)), eos)], 1)
                           for seq, _ in groups])  # (8, 6 + L)
    mask = torch.cat([torch.cat([m, torch.zeros(4, width - 6 - m.size(1), dtype=torch.bool)], 1)
                      for _, m in groups])  # (8, L)
    texts = [tok.decode(row[6:][keep].tolist()) for row, keep in zip(sequences, mask, strict=True)]
    answers = [p.answer for p in problems for _ in range(4)]
    advantages = group_advantages(rewards(texts, answers).view(2, 4)).flatten()
    advantages = advantages + torch.linspace(-1, 1, 8)  # nonzero even if every reward is 0
    # "old" and "reference" log-probabilities: the sampled tokens' under nearby models
    with torch.no_grad():
        current = completion_logprobs(model, sequences, 6, mask)
    gen = torch.Generator().manual_seed(1)
    old = (current + 0.3 * torch.randn(current.shape, generator=gen)) * mask
    ref = (current + 0.5 * torch.randn(current.shape, generator=gen)) * mask
    ours = grpo_loss(current, old, advantages, mask, ref_logprobs=ref, clip_eps=0.2,
                     kl_coef=0.04, average=average)

    hf_tok = to_hf_tokenizer(tok)
    hf_tok.eos_token = hf_tok.pad_token = END
    to_hf(model).save_pretrained(tmp_path / "hf")
    trainer = trl_trainer(tmp_path / "hf", hf_tok, tmp_path, loss_type=loss_type, beta=0.04,
                          epsilon=0.2)
    inputs = {
        "prompt_ids": sequences[:, :6], "prompt_mask": torch.ones(8, 6, dtype=torch.long),
        "completion_ids": sequences[:, 6:], "completion_mask": mask.long(),
        "advantages": advantages, "old_per_token_logps": old, "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),
    }
    with torch.no_grad():
        theirs = trainer._compute_loss(trainer.model, inputs)
    assert abs(ours.item() - theirs.item()) < 1e-5
    assert abs(ours.item()) > 0.05  # a loss worth comparing
