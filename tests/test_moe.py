"""The mixture of experts: routing, the balancing loss, capacity, and the MoE GPT."""

import doctest
import math

import pytest
import torch
import torch.nn.functional as F

import minillm_lib.moe
from minillm_lib.checkpoint import load_model, save_model
from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT
from minillm_lib.moe import (
    MoE,
    expert_capacity,
    expert_usage,
    load_balancing_loss,
    within_capacity,
)
from minillm_lib.training import evaluate

V = 29


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def moe_config(**overrides) -> GPTConfig:
    fields = dict(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=32, bias=False,
                  pos_encoding="rope", norm="rmsnorm", mlp="moe", n_expert=4,
                  n_expert_per_token=2, mlp_hidden=24)
    return GPTConfig(**{**fields, **overrides})


def test_the_docstring_examples_hold():
    assert doctest.testmod(minillm_lib.moe).failed == 0


# ---------------------------------------------------------------- the config


def test_moe_fields_get_defaults_only_with_mlp_moe():
    cfg = GPTConfig(vocab_size=V, n_layer=1, n_head=2, n_embd=16, mlp="moe")
    assert (cfg.n_expert, cfg.n_expert_per_token, cfg.moe_capacity_factor) == (8, 2, None)
    assert cfg.moe_aux_loss_coef == 0.01
    assert cfg.mlp_hidden == 48  # swiglu_hidden(16): each expert is a dense SwiGLU's size
    dense = GPTConfig(vocab_size=V, n_layer=1, n_head=2, n_embd=16, mlp="swiglu")
    assert (dense.n_expert, dense.n_expert_per_token, dense.moe_aux_loss_coef) == (None, None, None)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("overrides, message", [
    (dict(mlp="swiglu", n_expert=4), r"n_expert=4 needs mlp='moe' \(this config has mlp='swiglu'\)"),
    (dict(mlp="gelu", n_expert=None, n_expert_per_token=None, moe_capacity_factor=1.0),
     r"moe_capacity_factor=1.0 needs mlp='moe'"),
    (dict(n_expert=0), r"n_expert must be a positive integer, got 0"),
    (dict(n_expert_per_token=5), r"n_expert_per_token must be an integer in 1..n_expert \(4\), got 5"),
    (dict(n_expert_per_token=1.5), r"n_expert_per_token .* got 1.5"),
    (dict(moe_capacity_factor=0.0), r"moe_capacity_factor must be a positive number or None"),
    (dict(moe_capacity_factor=float("nan")), r"moe_capacity_factor must be .* got nan"),
    (dict(moe_aux_loss_coef=-0.1), r"moe_aux_loss_coef must be a number >= 0, got -0.1"),
])
def test_bad_moe_fields_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        moe_config(**overrides)


# ---------------------------------------------------------------- routing


def test_moe_layer_matches_a_token_by_token_computation():
    """Each token: softmax over the experts, its top k, weights renormalised, outputs mixed."""
    cfg = moe_config(n_expert=5, n_expert_per_token=3)
    layer = MoE(cfg).eval()
    with torch.no_grad():
        layer.router.weight.normal_(0, 1.0)  # decisive routing: no near-ties in the top k
    x = torch.randn(2, 7, cfg.n_embd)
    with torch.no_grad():
        out = layer(x)
        for b in range(2):
            for t in range(7):
                token = x[b, t]
                probs = torch.softmax(layer.router.weight @ token, dim=0)
                best = sorted(range(5), key=lambda e: -probs[e].item())[:3]
                total = sum(probs[e] for e in best)
                expected = sum(probs[e] / total * layer.experts[e](token[None, None])[0, 0]
                               for e in best)
                torch.testing.assert_close(out[b, t], expected, atol=1e-6, rtol=1e-5)


def test_balancing_loss_against_the_switch_formula_by_hand():
    probs = torch.softmax(torch.randn(10, 4), dim=-1)
    experts = probs.topk(2, dim=-1).indices
    share = [sum(e in experts[n].tolist() for n in range(10)) / 10 for e in range(4)]
    mean_prob = [sum(probs[n, e].item() for n in range(10)) / 10 for e in range(4)]
    expected = 4 * sum(f * p for f, p in zip(share, mean_prob, strict=True))
    assert load_balancing_loss(probs, experts).item() == pytest.approx(expected, rel=1e-6)


def test_balancing_loss_is_k_when_even_and_grows_when_collapsed():
    even = torch.full((8, 4), 0.25)
    experts = torch.tensor([[0, 1], [2, 3]] * 4)  # every expert takes 1/2 of the tokens
    assert load_balancing_loss(even, experts).item() == pytest.approx(2.0)
    collapsed = torch.tensor([[0.5, 0.5, 0.0, 0.0]] * 8)
    assert load_balancing_loss(collapsed, torch.tensor([[0, 1]] * 8)).item() == pytest.approx(4.0)


def test_balancing_loss_gradient_flows_through_the_probabilities_only():
    logits = torch.randn(6, 3, requires_grad=True)
    probs = torch.softmax(logits, dim=-1)
    probs.retain_grad()
    experts = probs.topk(1, dim=-1).indices
    load_balancing_loss(probs, experts).backward()
    share = F.one_hot(experts[:, 0], 3).float().mean(0)  # f, a constant
    # d/dp[n, e] of E * sum_e f_e * mean_n p[n, e] = E * f_e / N
    torch.testing.assert_close(probs.grad, (3 * share / 6).expand(6, 3))


def within_capacity_by_queue(experts: torch.Tensor, n_expert: int, capacity: int) -> list:
    """The rule written as a loop: choices rank by rank, tokens in order, first come first served."""
    taken = [0] * n_expert
    keep = [[False] * experts.shape[1] for _ in range(experts.shape[0])]
    for j in range(experts.shape[1]):
        for n in range(experts.shape[0]):
            e = experts[n, j].item()
            if taken[e] < capacity:
                taken[e] += 1
                keep[n][j] = True
    return keep


@pytest.mark.parametrize("capacity", [1, 3, 7, 100])
def test_capacity_keeps_first_choices_first(capacity):
    experts = torch.stack([torch.randperm(5)[:2] for _ in range(20)])  # (20, 2)
    keep = within_capacity(experts, 5, capacity)
    assert keep.tolist() == within_capacity_by_queue(experts, 5, capacity)
    assert all(keep[experts == e].sum() <= capacity for e in range(5))
    assert expert_capacity(20, 5, 2, 1.0) == 8 and expert_capacity(20, 5, 2, 1.01) == 9


def test_tokens_are_dropped_in_training_only():
    cfg = moe_config(moe_capacity_factor=0.5)
    model = GPT(cfg)
    idx = torch.randint(0, V, (4, 16))
    model.train()
    model(idx)
    usage = expert_usage(model)
    n_assignments = 4 * 16 * 2
    capacity = expert_capacity(64, 4, 2, 0.5)
    assert usage["tokens"].shape == (2, 4) and (usage["tokens"] <= capacity).all()
    assert (usage["tokens"].sum(1) + usage["dropped"] == n_assignments).all()
    assert (usage["dropped"] >= n_assignments - 4 * capacity).all()  # at least the overflow
    model.eval()
    model(idx)
    usage = expert_usage(model)
    assert (usage["dropped"] == 0).all() and (usage["tokens"].sum(1) == n_assignments).all()


def test_a_dropped_assignment_adds_nothing():
    cfg = moe_config(n_layer=1, moe_capacity_factor=0.25)
    layer = MoE(cfg).train()
    x = torch.randn(1, 16, cfg.n_embd)
    out = layer(x)
    probs, weights, experts = layer.route(x[0])
    keep = within_capacity(experts, 4, expert_capacity(16, 4, 2, 0.25))
    with torch.no_grad():
        for n in range(16):
            expected = sum(weights[n, j] * layer.experts[experts[n, j]](x[:, n:n + 1])[0, 0]
                           for j in range(2) if keep[n, j])
            torch.testing.assert_close(out[0, n], torch.zeros(cfg.n_embd) + expected,
                                       atol=1e-6, rtol=1e-5)
    assert (~keep).any() and (~keep[:, 0]).sum() <= (~keep[:, 1]).sum()


def test_expert_usage_needs_moe_layers_and_a_forward_pass():
    with pytest.raises(ValueError, match="has none"):
        expert_usage(GPT(GPTConfig(vocab_size=V, n_layer=1, n_head=2, n_embd=16)))
    with pytest.raises(ValueError, match="run the model once first"):
        expert_usage(GPT(moe_config()))


# ---------------------------------------------------------------- the MoE GPT


def test_the_training_loss_adds_the_weighted_balancing_loss():
    model = GPT(moe_config(moe_aux_loss_coef=0.05))
    idx, targets = torch.randint(0, V, (3, 16)), torch.randint(0, V, (3, 16))
    model.train()
    logits, loss = model(idx, targets)
    per_layer = torch.stack([block.mlp.aux_loss for block in model.transformer.h])
    torch.testing.assert_close(model.aux_loss, per_layer.mean())
    cross_entropy = F.cross_entropy(logits.view(-1, V), targets.view(-1))
    torch.testing.assert_close(loss, cross_entropy + 0.05 * model.aux_loss)
    model.eval()
    logits, loss = model(idx, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits.view(-1, V), targets.view(-1)))
    data = torch.randint(0, V, (200,))
    assert evaluate(model, data, 4)["loss"] == pytest.approx(
        evaluate_by_hand(model, data), rel=1e-5)


def evaluate_by_hand(model: GPT, data: torch.Tensor) -> float:
    """Mean cross-entropy over consecutive windows of block_size (what evaluate covers)."""
    total, count, T = 0.0, 0, model.config.block_size
    with torch.no_grad():
        for start in range(0, len(data) - 1, T):
            x = data[start:start + T][None]
            y = data[start + 1:start + T + 1][None]
            x = x[:, :y.size(1)]
            logits, _ = model(x)
            total += F.cross_entropy(logits[0], y[0], reduction="sum").item()
            count += y.numel()
    return total / count


def test_a_dense_model_has_no_aux_loss_and_the_same_loss():
    model = GPT(GPTConfig(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=32)).train()
    idx = torch.randint(0, V, (2, 16))
    logits, loss = model(idx, idx)
    assert model.aux_loss is None
    torch.testing.assert_close(loss, F.cross_entropy(logits.view(-1, V), idx.view(-1)))


def test_active_parameters_count_k_experts():
    moe = GPT(moe_config(n_expert=6, n_expert_per_token=2, mlp_hidden=24))
    # k experts of width h hold as many weights as one SwiGLU of width k * h; plus the routers.
    dense = GPT(moe_config(mlp="swiglu", n_expert=None, n_expert_per_token=None, mlp_hidden=48))
    routers = 2 * 32 * 6
    assert moe.num_params(active=True) == dense.num_params() + routers
    assert moe.num_params() == dense.num_params() + routers + 2 * 4 * 3 * 32 * 24
    assert dense.num_params(active=True) == dense.num_params()
    assert moe.flops_per_token() == dense.flops_per_token() + 6 * routers


def test_kv_cache_decoding_matches_the_full_forward():
    model = GPT(moe_config()).eval()
    idx = torch.randint(0, V, (2, 16))
    cache = model.new_kv_cache(2)
    with torch.no_grad():
        full = model(idx)[0]
        steps = torch.cat([model(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(16)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-4)


def test_every_expert_gets_a_gradient_even_when_unused():
    model = GPT(moe_config(n_expert=8, n_expert_per_token=2)).train()
    idx = torch.randint(0, V, (1, 2))  # 2 tokens x 2 choices: at most 4 of 8 experts used
    _, loss = model(idx, idx)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    unused = expert_usage(model)["tokens"][0] == 0
    assert unused.any()
    first_unused = model.transformer.h[0].mlp.experts[int(unused.nonzero()[0])]
    assert all((p.grad == 0).all() for p in first_unused.parameters())
    assert model.transformer.h[0].mlp.router.weight.grad.abs().sum() > 0


def test_a_step_on_the_balancing_loss_moves_probability_off_the_busiest_expert():
    layer = MoE(moe_config(n_expert=4, n_expert_per_token=1))
    with torch.no_grad():
        layer.router.weight[0] += 0.05  # with inputs of mean 1, expert 0 wins most tokens
    x = torch.randn(256, 1, 32) + 1.0
    layer(x)
    before, busiest = layer.aux_loss.item(), layer.tokens_per_expert.argmax().item()
    probs_before = layer.route(x[:, 0])[0].mean(0)
    assert busiest == 0 and layer.tokens_per_expert[0] > 128 and before > 1.5
    optimizer = torch.optim.SGD(layer.router.parameters(), lr=1e-3)
    optimizer.zero_grad()
    layer.aux_loss.backward()
    optimizer.step()
    layer(x)
    assert layer.aux_loss.item() < before
    assert layer.route(x[:, 0])[0].mean(0)[0] < probs_before[0]


def test_save_and_load_keep_the_experts(tmp_path):
    model = GPT(moe_config(moe_capacity_factor=1.25)).eval()
    save_model(model, tmp_path / "moe")
    loaded = load_model(tmp_path / "moe").eval()
    assert loaded.config == model.config
    idx = torch.randint(0, V, (2, 16))
    with torch.no_grad():
        assert torch.equal(loaded(idx)[0], model(idx)[0])
    assert math.isclose(loaded.config.moe_capacity_factor, 1.25)
