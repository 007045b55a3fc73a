"""Reinforcement learning with verifiable rewards: a task a program can check, and the
policy-gradient step, REINFORCE and GRPO, as small functions (Part 3's chapter "Reinforcement
learning with verifiable rewards", in preparation).

The loop of RL from verifiable rewards (as in DeepSeekMath and DeepSeek-R1, Tülu 3)::

    for each step:
        pick prompts; sample G completions of each from the model (the policy)
        reward each completion with a checker: 1 if its answer is right, else 0
        advantages: how much better each completion did than its group's average
        loss: raise the log-probability of completions with positive advantage, lower the
              others, while staying close to a frozen reference model; one optimizer step

No reward model and no human labels: ``arithmetic_problems`` makes problems ("12+7=", answer
"19") and ``check_answer`` is the checker. The pieces:

- ``reinforce_loss`` (Williams, 1992) with a baseline: A_i = r_i - mean(r) (``reinforce_advantages``),
  loss = -mean_i A_i * log pi(o_i), where log pi(o_i) sums the completion's tokens.
- ``grpo_loss`` (Shao et al., 2024, DeepSeekMath): advantages relative to the G completions of
  the same prompt, A_i = (r_i - mean_group) / (std_group + eps) (``group_advantages``), and
  PPO's clipped objective per token (Schulman et al., 2017) with the ratio
  rho = pi / pi_old, min(rho A, clip(rho, 1 - eps, 1 + eps) A), plus beta times a KL estimate
  to the reference model per token: Schulman's k3 (2020), ``kl_k3``. Each completion's
  tokens are averaged, then the completions (the GRPO paper's 1 / len(o_i); trl's "grpo" loss),
  or every token of the batch counts once (``average="token"``: DAPO, Yu et al., 2025, which
  removes the first's bias towards short right answers and long wrong ones).

Shapes: N completions (P prompts x G each), L completion tokens (padded; ``mask`` marks the
real ones).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ._checks import is_int, is_number
from .evaluation import IGNORE_INDEX, token_logprobs
from .model import GPT
from .sampling import generate

# ---------------------------------------------------------------- a task a program can check

OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
ARITHMETIC_CHARS = "0123456789+-*=\n"  # every character of the problems and their answers


@dataclass(frozen=True)
class Problem:
    """A prompt ("12+7=") and the answer its completion must start with ("19")."""

    prompt: str
    answer: str


def arithmetic_problems(n: int, *, seed: int = 0, max_operand: int = 99,
                        operations: str = "+-") -> list[Problem]:
    """``n`` problems "a+b=", "a-b=" (a >= b: answers are never negative) or "a*b=" with
    operands 0..max_operand, drawn with ``random.Random(seed)``: one seed, one list.

    >>> arithmetic_problems(2, seed=1)
    [Problem(prompt='17+72=', answer='89'), Problem(prompt='32-15=', answer='17')]
    """
    if not is_int(n, 1) or not is_int(max_operand, 1):
        raise ValueError(f"n and max_operand must be positive integers, got {n!r}, {max_operand!r}")
    if not operations or any(op not in OPERATIONS for op in operations):
        raise ValueError(f"operations must be made of {''.join(OPERATIONS)!r}, got {operations!r}")
    rng = random.Random(seed)
    problems = []
    for _ in range(n):
        a, b, op = rng.randint(0, max_operand), rng.randint(0, max_operand), rng.choice(operations)
        if op == "-" and a < b:
            a, b = b, a
        problems.append(Problem(f"{a}{op}{b}=", str(OPERATIONS[op](a, b))))
    return problems


def check_answer(completion: str, answer: str) -> bool:
    """The checker: True if the completion's first line is exactly the answer ("19\\n...",
    or "19" cut short by the length limit; not "19 " nor "190").

    >>> check_answer("19\\n5+5=10", "19"), check_answer("190", "19")
    (True, False)
    """
    return completion.split("\n", 1)[0] == answer


def rewards(completions: Sequence[str], answers: Sequence[str],
            check: Callable[[str, str], bool] = check_answer) -> torch.Tensor:
    """(N,) float rewards: 1.0 where ``check(completion, answer)`` holds, else 0.0."""
    if len(completions) != len(answers):
        raise ValueError(f"{len(completions)} completions but {len(answers)} answers")
    return torch.tensor([float(check(c, a)) for c, a in zip(completions, answers, strict=True)])


# ---------------------------------------------------------------- sampling and log-probabilities


@torch.no_grad()
def sample_completions(model: GPT, prompt_ids: Sequence[int], n: int, max_new_tokens: int, *,
                       eos_id: int, temperature: float = 1.0,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``n`` completions of one prompt (a group, for GRPO).

    Returns sequences (n, P + L), the prompt then the completion, and mask (n, L), True for
    the completion's tokens up to and including its first ``eos_id`` (after it: padding).
    L <= max_new_tokens (less when every completion stops early).
    """
    idx = torch.tensor([list(prompt_ids)] * n, device=model.device)
    sequences = generate(model, idx, max_new_tokens, temperature=temperature, eos_id=eos_id,
                         generator=generator)
    completion = sequences[:, idx.size(1):]
    is_eos = completion == eos_id
    mask = (is_eos.cumsum(1) - is_eos.long()) == 0  # no eos before this token
    return sequences, mask


def completion_logprobs(model: GPT, sequences: torch.Tensor, prompt_len: int,
                        mask: torch.Tensor) -> torch.Tensor:
    """log pi(token) of each completion token: sequences (N, P + L), mask (N, L) -> (N, L),
    0 where mask is False. Gradients flow (wrap in torch.no_grad() for old / reference)."""
    if sequences.size(1) - prompt_len != mask.size(1) or not is_int(prompt_len, 1):
        raise ValueError(f"sequences {tuple(sequences.shape)} must be the prompt ({prompt_len} "
                         f"tokens, at least 1) then the {mask.size(1)} tokens of mask")
    x, y = sequences[:, :-1], sequences[:, 1:].clone()
    y[:, : prompt_len - 1] = IGNORE_INDEX  # the prompt is given, not sampled
    y[:, prompt_len - 1:][~mask] = IGNORE_INDEX  # padding after the eos
    return token_logprobs(model, x, y)[:, prompt_len - 1:]


# ---------------------------------------------------------------- advantages


def reinforce_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE's baseline: r - mean(r), over the whole batch (N,) -> (N,).

    >>> reinforce_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0])).tolist()
    [0.5, -0.5, -0.5, 0.5]
    """
    return rewards - rewards.mean()


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4, *, scale: bool = True) -> torch.Tensor:
    """GRPO's advantages: each completion against its own group, the G completions of one
    prompt. rewards (P, G) -> (P, G) = (r - group mean) / (group std + eps), the std with
    Bessel's correction (as trl); scale=False leaves out the division (Dr. GRPO, Liu et al.,
    2025). A group whose completions all scored alike gets 0: it teaches nothing.

    >>> advantages = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    >>> [[round(a, 3) for a in group] for group in advantages.tolist()]
    [[0.866, -0.866, -0.866, 0.866], [0.0, 0.0, 0.0, 0.0]]
    """
    if rewards.dim() != 2 or rewards.size(1) < 2:
        raise ValueError(f"rewards must be (P prompts, G >= 2 completions each), "
                         f"got shape {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


# ---------------------------------------------------------------- the losses


def _check_shapes(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                  **others: torch.Tensor | None) -> None:
    if logprobs.dim() != 2 or mask.shape != logprobs.shape:
        raise ValueError(f"logprobs and mask must be (N, L) of one shape, "
                         f"got {tuple(logprobs.shape)} and {tuple(mask.shape)}")
    if advantages.shape != logprobs.shape[:1]:
        raise ValueError(f"advantages must be (N,) = ({logprobs.size(0)},), "
                         f"got {tuple(advantages.shape)}")
    for name, tensor in others.items():
        if tensor is not None and tensor.shape != logprobs.shape:
            raise ValueError(f"{name} must have logprobs' shape {tuple(logprobs.shape)}, "
                             f"got {tuple(tensor.shape)}")


def reinforce_loss(logprobs: torch.Tensor, advantages: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """REINFORCE: -mean over completions of A_i * log pi(o_i), log pi(o_i) = the sum of the
    completion's token log-probabilities. logprobs, mask (N, L); advantages (N,). Its gradient
    is the policy gradient estimate: likely completions with A > 0 get likelier."""
    _check_shapes(logprobs, advantages, mask)
    return -(advantages * (logprobs * mask).sum(dim=1)).mean()


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimate of KL(pi || ref) per sampled token (2020, "Approximating KL
    divergence"): with log r = log ref - log pi, r - 1 - log r. It is >= 0 for every sample,
    and its mean over tokens sampled from pi is the KL (unbiased), with lower variance than
    -log r. Same shape as its inputs.

    >>> round(kl_k3(torch.tensor([-1.0]), torch.tensor([-2.0])).item(), 4)  # e^-1 - 1 + 1
    0.3679
    """
    log_ratio = ref_logprobs - logprobs
    return torch.exp(log_ratio) - log_ratio - 1


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, *, ref_logprobs: torch.Tensor | None = None,
              clip_eps: float = 0.2, kl_coef: float = 0.04,
              average: str = "completion") -> torch.Tensor:
    """The GRPO loss (to minimise), a scalar.

    logprobs (N, L): the policy's token log-probabilities now (with gradients);
    old_logprobs (N, L): the same tokens under the policy that sampled them (no gradient;
    equal to logprobs.detach() on the first update after sampling);
    advantages (N,): ``group_advantages``, flattened; mask (N, L): the completions' tokens;
    ref_logprobs (N, L): the frozen reference model's, needed when kl_coef > 0.

    Per token: -min(rho A, clip(rho, 1 - clip_eps, 1 + clip_eps) A) + kl_coef * k3, with
    rho = exp(logprobs - old_logprobs); average="completion": averaged over each
    completion's tokens, then over the completions (trl's GRPOTrainer with loss_type="grpo",
    beta=kl_coef, epsilon=clip_eps); average="token": over all the batch's tokens at once
    (trl's "bnpo", and its "dapo" on one process without gradient accumulation). trl also
    multiplies the KL term by rho by default (use_bias_correction_kl, as the tokens were
    sampled from pi_old); the two agree on the first update after sampling, where rho = 1.
    """
    _check_shapes(logprobs, advantages, mask, old_logprobs=old_logprobs,
                  ref_logprobs=ref_logprobs)
    if not is_number(clip_eps) or not 0 < clip_eps < 1:
        raise ValueError(f"clip_eps must be in (0, 1), got {clip_eps!r}")
    if not is_number(kl_coef) or kl_coef < 0:
        raise ValueError(f"kl_coef must be a number >= 0, got {kl_coef!r}")
    if average not in ("completion", "token"):
        raise ValueError(f"average must be 'completion' or 'token', got {average!r}")
    if kl_coef > 0 and ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs, the reference model's log-probabilities")
    ratio = torch.exp(logprobs - old_logprobs)  # (N, L)
    A = advantages[:, None]
    per_token = -torch.min(ratio * A, ratio.clamp(1 - clip_eps, 1 + clip_eps) * A)
    if kl_coef > 0:
        per_token = per_token + kl_coef * kl_k3(logprobs, ref_logprobs)
    mask = mask.to(per_token.dtype)
    if average == "token":
        return (per_token * mask).sum() / mask.sum().clamp(min=1)
    per_completion = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_completion.mean()
