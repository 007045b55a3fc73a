"""Our mixture of experts against Hugging Face's Mixtral: same weights in, same logits and the
same load-balancing loss out, in both directions (from_hf and to_hf)."""

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from test_reference_hf import max_diff, randomise  # noqa: E402

from minillm_lib.config import GPTConfig  # noqa: E402
from minillm_lib.interop import from_hf, to_hf  # noqa: E402
from minillm_lib.model import GPT  # noqa: E402
from minillm_lib.moe import load_balancing_loss  # noqa: E402

ATOL = 1e-4  # logits (as the GPT-2 and Llama parity tests); the balancing losses to 1e-5
V = 101

MIXTRAL_SHAPES = [
    dict(num_hidden_layers=2, num_local_experts=4, num_experts_per_tok=2, num_key_value_heads=2),
    dict(num_hidden_layers=1, num_local_experts=8, num_experts_per_tok=2, num_key_value_heads=4,
         tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 500.0}),
    dict(num_hidden_layers=3, num_local_experts=6, num_experts_per_tok=3, num_key_value_heads=1,
         attn_implementation="eager", rms_norm_eps=1e-6),
    dict(num_hidden_layers=2, num_local_experts=4, num_experts_per_tok=1, num_key_value_heads=4),
]


def mixtral(**shape) -> torch.nn.Module:
    fields = dict(vocab_size=V, hidden_size=64, intermediate_size=48, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=32, bos_token_id=None, eos_token_id=None,
                  router_aux_loss_coef=0.02)
    config = transformers.MixtralConfig(**{**fields, **shape})
    return randomise(transformers.MixtralForCausalLM(config)).eval()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("shape", MIXTRAL_SHAPES)
def test_mixtral_logits_match(shape):
    hf_model = mixtral(**shape)
    ours = from_hf(hf_model).eval()
    cfg = ours.config
    assert (cfg.mlp, cfg.n_expert, cfg.n_expert_per_token) == (
        "moe", shape["num_local_experts"], shape["num_experts_per_tok"])
    assert cfg.moe_capacity_factor is None and cfg.moe_aux_loss_coef == 0.02
    idx = torch.randint(0, V, (3, 32))
    assert max_diff(ours, hf_model, idx) < ATOL
    with torch.no_grad():  # the weights matter: the logits are far from each other's scale
        assert hf_model(idx).logits.std() > 1.0
    cache = ours.new_kv_cache(3)  # and token by token, through our KV cache
    with torch.no_grad():
        pieces = [ours(idx[:, :20], kv_cache=cache)[0]] + [
            ours(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(20, 32)]
        # (sums in another order: logits of size ~10 agree to ~1e-5 of their size)
        assert (torch.cat(pieces, 1) - hf_model(idx).logits).abs().max().item() < 2 * ATOL


@pytest.mark.parametrize("shape", MIXTRAL_SHAPES)
def test_the_balancing_loss_matches_mixtral_layer_by_layer(shape):
    """Per layer, ours is Mixtral's load_balancing_loss_func on that layer's router logits;
    Mixtral's model-level value pools all layers' tokens, which is ours on all their rows."""
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    hf_model = mixtral(**shape)
    ours = from_hf(hf_model).eval()
    idx = torch.randint(0, V, (2, 32))
    k, E = shape["num_experts_per_tok"], shape["num_local_experts"]
    with torch.no_grad():
        out = hf_model(idx, output_router_logits=True)
        ours(idx)
    for block, router_logits in zip(ours.transformer.h, out.router_logits, strict=True):
        theirs = load_balancing_loss_func((router_logits,), E, k)
        assert abs(block.mlp.aux_loss.item() - theirs.item()) < 1e-5
    probs = torch.cat([logits.float().softmax(-1) for logits in out.router_logits])
    pooled = load_balancing_loss(probs, probs.topk(k, dim=-1).indices)
    assert abs(pooled.item() - out.aux_loss.item()) < 1e-5


def test_the_training_loss_matches_mixtral_for_one_layer():
    """Mixtral's loss with labels is cross-entropy + router_aux_loss_coef * aux, as ours in
    training mode; with one MoE layer the two aux losses are the same number."""
    hf_model = mixtral(num_hidden_layers=1, num_local_experts=4, num_experts_per_tok=2).train()
    ours = from_hf(hf_model).train()
    idx = torch.randint(0, V, (2, 32))
    targets = torch.cat([idx[:, 1:], torch.full((2, 1), -100)], dim=1)  # HF shifts the labels
    with torch.no_grad():
        out = hf_model(idx, labels=idx, output_router_logits=True)
        logits, loss = ours(idx, targets)
    assert abs(ours.aux_loss.item() - out.aux_loss.item()) < 1e-5
    assert abs(loss.item() - out.loss.item()) < 1e-5
    cross_entropy = F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))
    assert abs(loss.item() - cross_entropy.item() - 0.02 * out.aux_loss.item()) < 1e-5


def test_swapping_two_experts_would_be_caught():
    """Guards the tests above: experts in the wrong slots must change the logits."""
    hf_model = mixtral(num_hidden_layers=1, num_local_experts=4, num_experts_per_tok=2)
    ours = from_hf(hf_model).eval()
    experts = ours.transformer.h[0].mlp.experts
    with torch.no_grad():
        w0 = experts[0].c_fc.weight.clone()
        experts[0].c_fc.weight.copy_(experts[1].c_fc.weight)
        experts[1].c_fc.weight.copy_(w0)
    assert max_diff(ours, hf_model, torch.randint(0, V, (1, 16))) > 1e-2


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(n_expert=6, n_expert_per_token=3, n_kv_head=2, tie_weights=False, rope_theta=1000.0),
    dict(n_expert=4, n_expert_per_token=1, n_kv_head=1, moe_aux_loss_coef=0.1),
    dict(moe_capacity_factor=1.25),  # Mixtral has no capacity: exported as our eval mode
])
def test_to_hf_round_trip(overrides):
    fields = dict(vocab_size=60, block_size=16, n_layer=2, n_head=4, n_embd=32, bias=False,
                  pos_encoding="rope", norm="rmsnorm", mlp="moe", mlp_hidden=24)
    ours = GPT(GPTConfig(**{**fields, **overrides})).eval()
    with torch.no_grad():  # non-trivial norms and a decisive router
        for name, p in ours.named_parameters():
            if "ln" in name:
                p.normal_(1.0, 0.2)
            elif "router" in name:
                p.normal_(0, 0.5)
    hf_model = to_hf(ours).eval()
    assert type(hf_model) is transformers.MixtralForCausalLM
    assert hf_model.config.router_aux_loss_coef == ours.config.moe_aux_loss_coef
    idx = torch.randint(0, 60, (2, 16))
    assert max_diff(ours, hf_model, idx) < ATOL
    back = from_hf(hf_model)
    for name, tensor in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
    assert back.config == GPTConfig(**{**ours.config.to_dict(), "moe_capacity_factor": None})


@pytest.mark.parametrize("overrides, field", [
    (dict(bias=True), "bias"),
    (dict(norm="layernorm"), "norm"),
    (dict(pos_encoding="learned"), "pos_encoding"),
])
def test_to_hf_refuses_moe_models_mixtral_cannot_hold(overrides, field):
    fields = dict(vocab_size=60, block_size=16, n_layer=1, n_head=4, n_embd=32, bias=False,
                  pos_encoding="rope", norm="rmsnorm", mlp="moe", n_expert=4)
    ours = GPT(GPTConfig(**{**fields, **overrides}))
    with pytest.raises(ValueError, match=f"cannot export to Hugging Face Mixtral: it needs {field}="):
        to_hf(ours)


@pytest.mark.parametrize("option, value", [("sliding_window", 8), ("router_jitter_noise", 0.1)])
def test_from_hf_refuses_mixtral_options_we_lack(option, value):
    hf_model = mixtral(num_hidden_layers=1, **{option: value})
    with pytest.raises(ValueError, match=f"Mixtral {option}={value!r} is not supported"):
        from_hf(hf_model)
