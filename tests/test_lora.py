"""LoRA: the wrapped layer equals its formula, starts as the base model, merges exactly,
trains only the adapters, and saves only them."""

import copy
import math

import pytest
import torch
import torch.nn as nn

from minillm_lib.config import GPTConfig
from minillm_lib.data import get_batch
from minillm_lib.lora import (
    LoRALinear,
    apply_lora,
    count_trainable,
    load_lora,
    lora_state_dict,
    merge_lora,
    save_lora,
)
from minillm_lib.model import GPT


def tiny_gpt(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=32, bias=True)
    return GPT(GPTConfig.from_preset("baby", **{**cfg, **overrides})).eval()


def tokens(seed: int = 1, batch: int = 3, length: int = 16) -> torch.Tensor:
    return torch.randint(0, 40, (batch, length), generator=torch.Generator().manual_seed(seed))


def randomize_adapters(model: nn.Module, seed: int = 2) -> None:
    """Give every B a non-zero value, as after some training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.1)


# ---------------------------------------------------------------- the layer


def test_lora_linear_is_base_plus_scaled_low_rank_product():
    torch.manual_seed(0)
    base = nn.Linear(20, 12)
    layer = LoRALinear(base, rank=3, alpha=6)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 5, 20)
    # By hand: x W^T + b + (alpha / r) * (x A^T) B^T.
    expected = x @ base.weight.T + base.bias + (6 / 3) * ((x @ layer.lora_A.T) @ layer.lora_B.T)
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == (4, 5, 12)


def test_init_shapes_scaling_and_bounds():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(64, 24, bias=False), rank=4, alpha=8)
    assert layer.lora_A.shape == (4, 64) and layer.lora_B.shape == (24, 4)
    assert layer.scaling == 2.0
    assert torch.all(layer.lora_B == 0)
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(64)
    assert layer.lora_A.std() > 0.5 / math.sqrt(64) / math.sqrt(3)  # random, not tiny or zero
    assert "rank=4" in repr(layer) and "alpha=8" in repr(layer)


def test_base_is_frozen_and_shared_not_copied():
    base = nn.Linear(8, 8)
    layer = LoRALinear(base, rank=2, alpha=2)
    assert layer.base is base
    assert not base.weight.requires_grad and not base.bias.requires_grad
    assert layer.lora_A.requires_grad and layer.lora_B.requires_grad


def test_first_gradient_reaches_b_only():
    # With B = 0 the output does not depend on A yet (dL/dA = B^T ...= 0), but dL/dB does not vanish.
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 8), rank=4, alpha=4)
    layer(torch.randn(10, 16)).pow(2).sum().backward()
    assert torch.all(layer.lora_A.grad == 0)
    assert layer.lora_B.grad.abs().sum() > 0


def test_dropout_touches_only_the_adapter_path():
    torch.manual_seed(0)
    base = nn.Linear(16, 8)
    layer = LoRALinear(base, rank=4, alpha=4, dropout=0.5).train()
    x = torch.randn(6, 16)
    # B = 0: the adapter adds nothing, so even in training mode the output is the base's.
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=0)
    with torch.no_grad():
        layer.lora_B.normal_()
    assert not torch.allclose(layer(x), layer(x))  # two different dropout masks
    layer.eval()
    torch.testing.assert_close(layer(x), base(x) + layer.scaling * (x @ layer.lora_A.T @ layer.lora_B.T))


def test_merge_gives_a_plain_linear_with_the_same_outputs():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(20, 12), rank=3, alpha=5)
    with torch.no_grad():
        layer.lora_B.normal_()
    merged = layer.merge()
    assert type(merged) is nn.Linear
    x = torch.randn(7, 20)
    torch.testing.assert_close(merged(x), layer(x))
    torch.testing.assert_close(merged.weight, layer.base.weight + (5 / 3) * layer.lora_B @ layer.lora_A)
    torch.testing.assert_close(merged.bias, layer.base.bias, rtol=0, atol=0)


@pytest.mark.parametrize("name, value", [
    ("rank", 0), ("rank", 2.5), ("rank", True), ("alpha", 0), ("alpha", -3), ("alpha", float("inf")),
    ("dropout", 1.0), ("dropout", -0.1),
])
def test_bad_arguments_name_the_value(name, value):
    kwargs = {"rank": 2, "alpha": 1.0, "dropout": 0.0, name: value}
    with pytest.raises(ValueError, match=f"{name} must") as err:
        LoRALinear(nn.Linear(4, 4), **kwargs)
    assert repr(value) in str(err.value)


def test_wraps_only_linear_layers():
    with pytest.raises(TypeError, match="Embedding"):
        LoRALinear(nn.Embedding(4, 4), rank=1, alpha=1)


# ---------------------------------------------------------------- a whole model


def test_apply_lora_wraps_every_block_linear_and_starts_identical():
    model = tiny_gpt()
    original = copy.deepcopy(model)
    names = apply_lora(model, rank=4, alpha=8)
    assert names == [f"transformer.h.{i}.{layer}" for i in range(2)
                     for layer in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    assert all(isinstance(model.get_submodule(n), LoRALinear) for n in names)
    assert type(model.lm_head) is nn.Linear  # tied to wte: never wrapped by default
    assert model.lm_head.weight is model.transformer.wte.weight
    x = tokens()
    torch.testing.assert_close(model(x)[0], original(x)[0], rtol=0, atol=0)


def test_only_adapters_are_trainable_and_counted():
    model = tiny_gpt()
    rank, C, n_layer = 4, 32, 2
    apply_lora(model, rank=rank, alpha=8)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".lora_A", ".lora_B")) for n in trainable)
    # r * (in + out) per layer: c_attn C -> 3C, c_proj C -> C, c_fc C -> 4C, c_proj 4C -> C.
    per_block = rank * ((C + 3 * C) + (C + C) + (C + 4 * C) + (4 * C + C))
    assert count_trainable(model) == n_layer * per_block == 4096


def test_targets_select_layers_by_suffix_or_full_name():
    model = tiny_gpt()
    assert apply_lora(model, targets=("c_attn",)) == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    model = tiny_gpt()
    assert apply_lora(model, targets="transformer.h.1.mlp.c_fc") == ["transformer.h.1.mlp.c_fc"]


def test_bad_targets_raise_and_leave_the_model_untouched():
    model = tiny_gpt()
    with pytest.raises(ValueError, match=r"q_proj.*c_attn"):  # names the unknown target and the real ones
        apply_lora(model, targets=("c_attn", "q_proj"))
    with pytest.raises(ValueError, match="ln_1.*not an nn.Linear"):
        apply_lora(model, targets=("ln_1",))
    with pytest.raises(ValueError, match="lm_head.*tying"):
        apply_lora(model, targets=("lm_head",))
    with pytest.raises(ValueError, match="at least one"):
        apply_lora(model, targets=())
    with pytest.raises(ValueError, match="rank"):
        apply_lora(model, rank=0)
    assert all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, LoRALinear) for m in model.modules())


def test_untied_lm_head_can_be_wrapped_but_not_twice():
    model = tiny_gpt(tie_weights=False)
    assert apply_lora(model, targets=("lm_head",)) == ["lm_head"]
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, targets=("lm_head",))


def test_merged_model_equals_unmerged_model():
    model = tiny_gpt()
    apply_lora(model, rank=4, alpha=8)
    randomize_adapters(model)
    x = tokens()
    before = model(x)[0]
    merged_names = merge_lora(model)
    assert len(merged_names) == 8
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == set(tiny_gpt().state_dict())  # the original layout again
    torch.testing.assert_close(model(x)[0], before, rtol=1e-4, atol=1e-5)  # W + BA is rounded once
    with pytest.raises(ValueError, match="no LoRALinear"):
        merge_lora(model)


def test_training_a_few_steps_lowers_the_loss_and_moves_only_adapters():
    model = tiny_gpt().train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    apply_lora(model, rank=4, alpha=8)
    data = torch.randint(0, 40, (2000,), generator=torch.Generator().manual_seed(3))
    x, y = get_batch(data, 8, 16, generator=torch.Generator().manual_seed(4))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    torch.manual_seed(5)
    for _ in range(30):
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.2
    for name, value in frozen.items():
        wrapped = name.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        current = dict(model.named_parameters()).get(name, dict(model.named_parameters()).get(wrapped))
        torch.testing.assert_close(current, value, rtol=0, atol=0)


def test_adapter_state_dict_save_and_load(tmp_path):
    model = tiny_gpt()
    apply_lora(model, rank=4, alpha=8)
    randomize_adapters(model)
    adapters = lora_state_dict(model)
    assert len(adapters) == 16 and all(k.endswith((".lora_A", ".lora_B")) for k in adapters)
    assert sum(t.numel() for t in adapters.values()) == count_trainable(model)

    path = tmp_path / "adapter.safetensors"
    save_lora(model, path)
    assert path.stat().st_size < 4 * count_trainable(model) + 4096  # tensors plus a small header

    fresh = tiny_gpt()  # same base weights, new (zero-B) adapters
    apply_lora(fresh, rank=4, alpha=8)
    x = tokens()
    assert not torch.allclose(fresh(x)[0], model(x)[0])
    load_lora(fresh, path)
    torch.testing.assert_close(fresh(x)[0], model(x)[0], rtol=0, atol=0)

    other_rank = tiny_gpt()
    apply_lora(other_rank, rank=2, alpha=8)
    with pytest.raises(ValueError, match=r"has shape \(4, 32\), the model \(2, 32\)"):
        load_lora(other_rank, path)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        save_lora(tiny_gpt(), tmp_path / "none.safetensors")
