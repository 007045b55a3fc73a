"""RL with verifiable rewards: the task and its checker, advantages, REINFORCE and GRPO losses
checked against hand computations, sampling groups and their log-probabilities."""

import doctest
import math
import statistics

import pytest
import torch
import torch.nn.functional as F

import minillm_lib.rl
from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT
from minillm_lib.rl import (
    ARITHMETIC_CHARS,
    arithmetic_problems,
    check_answer,
    completion_logprobs,
    group_advantages,
    grpo_loss,
    kl_k3,
    reinforce_advantages,
    reinforce_loss,
    rewards,
    sample_completions,
)
from minillm_lib.tokenizers import CharTokenizer


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_the_docstring_examples_hold():
    assert doctest.testmod(minillm_lib.rl).failed == 0


# ---------------------------------------------------------------- the task


def test_problems_are_right_and_reproducible():
    problems = arithmetic_problems(300, seed=7, operations="+-*")
    assert problems == arithmetic_problems(300, seed=7, operations="+-*")
    assert problems != arithmetic_problems(300, seed=8, operations="+-*")
    for p in problems:
        assert p.prompt.endswith("=") and set(p.prompt + p.answer) <= set(ARITHMETIC_CHARS)
        assert int(p.answer) == eval(p.prompt[:-1])  # Python's own arithmetic as the reference
        assert int(p.answer) >= 0
    assert {p.prompt[:-1].strip("0123456789") for p in problems} == {"+", "-", "*"}
    assert max(int(n) for p in problems for n in p.prompt[:-1].replace("*", "+").replace("-", "+")
               .split("+")) <= 99
    with pytest.raises(ValueError, match="operations must be made of"):
        arithmetic_problems(3, operations="/")
    with pytest.raises(ValueError, match="positive integers, got 0"):
        arithmetic_problems(0)


@pytest.mark.parametrize("completion, right", [
    ("19", True), ("19\n", True), ("19\n3+4=7", True),
    ("190", False), ("19 ", False), (" 19", False), ("1", False), ("", False), ("\n19", False),
])
def test_the_checker_reads_the_first_line_exactly(completion, right):
    assert check_answer(completion, "19") is right


def test_rewards_are_the_checker_as_numbers():
    assert rewards(["19\n", "18\n", "7"], ["19", "19", "7"]).tolist() == [1.0, 0.0, 1.0]
    lenient = rewards(["19 "], ["19"], check=lambda c, a: c.strip() == a)
    assert lenient.tolist() == [1.0]
    with pytest.raises(ValueError, match="2 completions but 1 answers"):
        rewards(["1", "2"], ["1"])


# ---------------------------------------------------------------- advantages


def test_group_advantages_by_hand():
    table = [[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]]
    got = group_advantages(torch.tensor(table), eps=1e-4)
    for row, out in zip(table, got.tolist(), strict=True):
        mean, std = statistics.mean(row), statistics.stdev(row)  # stdev: Bessel's n - 1
        assert out == pytest.approx([(r - mean) / (std + 1e-4) for r in row], rel=1e-6)
    assert got[1].tolist() == [0.0] * 4  # all alike: nothing to learn
    centred = group_advantages(torch.tensor(table), scale=False)
    for row, out in zip(table, centred.tolist(), strict=True):
        assert out == pytest.approx([r - statistics.mean(row) for r in row])
    with pytest.raises(ValueError, match="G >= 2"):
        group_advantages(torch.tensor([[1.0], [0.0]]))


def test_reinforce_advantages_subtract_the_batch_mean():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert reinforce_advantages(r).tolist() == [0.75, -0.25, -0.25, -0.25]


# ---------------------------------------------------------------- the losses


def test_k3_is_an_unbiased_estimate_of_the_kl():
    pi = torch.tensor([0.5, 0.3, 0.15, 0.05])
    ref = torch.tensor([0.25, 0.25, 0.25, 0.25])
    exact = torch.distributions.kl_divergence(torch.distributions.Categorical(pi),
                                              torch.distributions.Categorical(ref)).item()
    samples = torch.multinomial(pi, 400_000, replacement=True, generator=torch.Generator().manual_seed(0))
    k3 = kl_k3(pi.log()[samples], ref.log()[samples])
    assert (k3 >= 0).all()
    assert k3.mean().item() == pytest.approx(exact, rel=0.01)
    naive = (pi.log() - ref.log())[samples]  # k1: unbiased too, but can be negative
    assert (naive < 0).any() and k3.var() < naive.var()


def grpo_by_hand(logp, old, ref, adv, mask, eps, beta, average="completion"):
    """The GRPO objective written out with Python floats, token by token."""
    per_completion, every_token = [], []
    for i in range(len(logp)):
        terms = []
        for t in range(len(logp[i])):
            if not mask[i][t]:
                continue
            ratio = math.exp(logp[i][t] - old[i][t])
            clipped = min(max(ratio, 1 - eps), 1 + eps)
            objective = min(ratio * adv[i], clipped * adv[i])
            log_r = ref[i][t] - logp[i][t]
            terms.append(-objective + beta * (math.exp(log_r) - log_r - 1))
        per_completion.append(sum(terms) / len(terms))
        every_token += terms
    if average == "token":
        return sum(every_token) / len(every_token)
    return sum(per_completion) / len(per_completion)


def test_grpo_loss_by_hand_with_clipping_on_both_sides():
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.4, 0.4, 0.4], [0.3, 0.3, 0.3]]))
    # ratios: 1.5 (clipped for A > 0), 0.6 (clipped for A < 0), 1.1 (inside), 0.5, ...
    logp = old + torch.log(torch.tensor([[1.5, 1.1, 0.5], [0.6, 1.5, 0.95], [1.0, 1.3, 0.7]]))
    ref = torch.log(torch.tensor([[0.45, 0.6, 0.2], [0.5, 0.3, 0.35], [0.3, 0.25, 0.5]]))
    adv = torch.tensor([1.2, -0.7, 0.4])
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    for eps, beta in [(0.2, 0.0), (0.2, 0.04), (0.1, 0.5)]:
        got = grpo_loss(logp, old, adv, mask, ref_logprobs=ref, clip_eps=eps, kl_coef=beta)
        expected = grpo_by_hand(logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(),
                                mask.tolist(), eps, beta)
        assert got.item() == pytest.approx(expected, rel=1e-6)
        got = grpo_loss(logp, old, adv, mask, ref_logprobs=ref, clip_eps=eps, kl_coef=beta,
                        average="token")
        expected = grpo_by_hand(logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(),
                                mask.tolist(), eps, beta, average="token")
        assert got.item() == pytest.approx(expected, rel=1e-6)


def test_grpo_gradient_on_the_first_update_is_the_policy_gradient():
    """With old = logp (ratio 1, nothing clipped) and no KL, d loss / d logp[i, t] =
    -A_i / |o_i| / N: each completion's tokens share its advantage."""
    logp = torch.randn(3, 4).requires_grad_()
    adv = torch.tensor([1.0, -2.0, 0.5])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    grpo_loss(logp, logp.detach(), adv, mask, kl_coef=0.0).backward()
    lengths = mask.sum(1, keepdim=True)
    torch.testing.assert_close(logp.grad, -adv[:, None] / lengths / 3 * mask)


def test_reinforce_loss_by_hand_and_its_gradient():
    logp = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -0.2, -0.3]], requires_grad=True)
    adv = torch.tensor([0.5, -0.5])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    loss = reinforce_loss(logp, adv, mask)
    assert loss.item() == pytest.approx(-(0.5 * -1.5 + -0.5 * -0.6) / 2)
    loss.backward()
    torch.testing.assert_close(logp.grad, -adv[:, None] / 2 * mask)


def test_bad_loss_inputs_are_named():
    logp = torch.zeros(2, 3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="needs ref_logprobs"):
        grpo_loss(logp, logp, torch.zeros(2), mask, kl_coef=0.1)
    with pytest.raises(ValueError, match=r"advantages must be \(N,\) = \(2,\), got \(3,\)"):
        grpo_loss(logp, logp, torch.zeros(3), mask, kl_coef=0.0)
    with pytest.raises(ValueError, match="old_logprobs must have logprobs' shape"):
        grpo_loss(logp, torch.zeros(2, 4), torch.zeros(2), mask, kl_coef=0.0)
    with pytest.raises(ValueError, match=r"clip_eps must be in \(0, 1\), got 1.5"):
        grpo_loss(logp, logp, torch.zeros(2), mask, kl_coef=0.0, clip_eps=1.5)
    with pytest.raises(ValueError, match="average must be 'completion' or 'token', got 'sum'"):
        grpo_loss(logp, logp, torch.zeros(2), mask, kl_coef=0.0, average="sum")
    with pytest.raises(ValueError, match="logprobs and mask must be"):
        reinforce_loss(logp, torch.zeros(2), mask[:, :2])


# ---------------------------------------------------------------- sampling and log-probabilities


@pytest.fixture
def task_model() -> tuple[GPT, CharTokenizer]:
    tok = CharTokenizer(sorted(ARITHMETIC_CHARS))
    model = GPT(GPTConfig.from_preset("cpu-5min", vocab_size=tok.vocab_size, n_layer=1,
                                      n_embd=32, n_head=2, block_size=24)).eval()
    return model, tok


def test_sampled_groups_stop_at_the_end_of_line(task_model):
    model, tok = task_model
    eos = tok.encode("\n")[0]
    prompt = tok.encode("12+7=")
    gen = torch.Generator().manual_seed(0)
    sequences, mask = sample_completions(model, prompt, 16, 10, eos_id=eos, generator=gen)
    assert sequences.shape[0] == 16 and (sequences[:, :5] == torch.tensor(prompt)).all()
    completion = sequences[:, 5:]
    assert mask.shape == completion.shape
    for row, keep in zip(completion.tolist(), mask.tolist(), strict=True):
        n = row.index(eos) + 1 if eos in row else len(row)  # up to and including the first eos
        assert keep == [True] * n + [False] * (len(row) - n)
    again, _ = sample_completions(model, prompt, 16, 10, eos_id=eos,
                                  generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, sequences)


def test_completion_logprobs_against_log_softmax_by_hand(task_model):
    model, tok = task_model
    eos = tok.encode("\n")[0]
    prompt = tok.encode("3*4=")
    sequences, mask = sample_completions(model, prompt, 6, 8, eos_id=eos,
                                         generator=torch.Generator().manual_seed(1))
    got = completion_logprobs(model, sequences, len(prompt), mask)
    with torch.no_grad():
        logp = F.log_softmax(model(sequences)[0], dim=-1)  # (N, P + L, V)
    for i in range(6):
        for t in range(mask.size(1)):
            position = len(prompt) + t  # the token at this position is predicted from before it
            expected = logp[i, position - 1, sequences[i, position]].item() if mask[i, t] else 0.0
            assert got[i, t].item() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="must be the prompt"):
        completion_logprobs(model, sequences, len(prompt) + 1, mask)


def test_one_grpo_step_moves_probability_towards_the_rewarded_completion(task_model):
    model, tok = task_model
    prompt = tok.encode("2+2=")
    right, wrong = tok.encode("4\n"), tok.encode("5\n")
    sequences = torch.tensor([prompt + right, prompt + wrong])
    mask = torch.ones(2, 2, dtype=torch.bool)
    advantages = group_advantages(rewards(["4\n", "5\n"], ["4", "4"])[None])[0]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)  # small: the first-order regime
    with torch.no_grad():
        before = completion_logprobs(model, sequences, len(prompt), mask).sum(1)
        reference = completion_logprobs(model, sequences, len(prompt), mask)
    model.train()
    logp = completion_logprobs(model, sequences, len(prompt), mask)
    loss = grpo_loss(logp, logp.detach(), advantages, mask, ref_logprobs=reference)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = completion_logprobs(model, sequences, len(prompt), mask).sum(1)
    assert after[0] > before[0] and after[1] < before[1]
