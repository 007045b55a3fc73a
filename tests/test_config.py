"""GPTConfig: presets, defaults, validation messages, dict round trip."""

import json

import pytest

from minillm_lib.config import PRESETS, GPTConfig, swiglu_hidden


def test_baby_preset_has_nanogpt_baby_shape():
    cfg = GPTConfig.from_preset("baby", vocab_size=65)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (4, 4, 128, 64)
    assert (cfg.bias, cfg.dropout, cfg.pos_encoding, cfg.norm, cfg.mlp) == (False, 0.0, "learned", "layernorm", "gelu")
    assert cfg.vocab_size == 65


def test_gpt2_preset_is_124m_shape():
    cfg = GPTConfig.from_preset("gpt2")
    assert (cfg.vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd) == (50257, 1024, 12, 12, 768)
    assert cfg.bias and cfg.tie_weights and cfg.mlp == "gelu_tanh"


@pytest.mark.parametrize("name", ["llama", "baby-llama"])
def test_llama_presets_use_the_modern_recipe(name):
    cfg = GPTConfig.from_preset(name, vocab_size=1000)
    assert (cfg.pos_encoding, cfg.norm, cfg.mlp) == ("rope", "rmsnorm", "swiglu")
    assert cfg.n_kv_head < cfg.n_head
    assert not cfg.tie_weights and not cfg.bias


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_is_a_plain_dict(name):
    assert isinstance(PRESETS[name], dict)
    cfg = GPTConfig.from_preset(name, vocab_size=PRESETS[name].get("vocab_size", 100))
    assert cfg.n_embd % cfg.n_head == 0


def test_overrides_replace_preset_fields():
    cfg = GPTConfig.from_preset("baby", vocab_size=65, n_layer=2, dropout=0.1)
    assert cfg.n_layer == 2 and cfg.dropout == 0.1
    assert PRESETS["baby"]["n_layer"] == 4  # the preset itself is untouched


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'gpt5'.*baby.*gpt2"):
        GPTConfig.from_preset("gpt5", vocab_size=10)


def test_unknown_override_is_named():
    with pytest.raises(ValueError, match=r"unknown GPTConfig field\(s\) \['n_layers'\]"):
        GPTConfig.from_preset("baby", vocab_size=65, n_layers=3)


def test_vocab_size_is_required():
    with pytest.raises(ValueError, match="vocab_size is required"):
        GPTConfig.from_preset("baby")
    with pytest.raises(ValueError, match="vocab_size is required"):
        GPTConfig()


def test_defaults_are_filled_in():
    cfg = GPTConfig(vocab_size=10, n_embd=64, n_head=4)
    assert cfg.n_kv_head == 4
    assert cfg.mlp_hidden == 256
    assert cfg.head_dim == 16


def test_swiglu_hidden_default_is_two_thirds_of_4x_rounded_to_8():
    # 8/3 * 768 = 2048 exactly; 8/3 * 128 = 341.3 -> 344 (next multiple of 8).
    assert swiglu_hidden(768) == 2048
    assert swiglu_hidden(128) == 344
    assert GPTConfig(vocab_size=10, n_embd=128, n_head=4, mlp="swiglu").mlp_hidden == 344
    assert GPTConfig(vocab_size=10, n_embd=128, n_head=4, mlp="swiglu", mlp_hidden=100).mlp_hidden == 100


BAD_CONFIGS = [
    (dict(n_embd=130, n_head=4), r"n_embd \(130\) must be divisible by n_head \(4\)"),
    (dict(n_head=4, n_kv_head=3), r"n_head \(4\) must be divisible by n_kv_head \(3\)"),
    (dict(n_embd=36, n_head=4, pos_encoding="rope"), r"head size .* = 9 must be even with pos_encoding='rope'"),
    (dict(pos_encoding="alibi"), r"pos_encoding must be one of \['learned', 'sinusoidal', 'rope', 'none'\], got 'alibi'"),
    (dict(norm="batchnorm"), r"norm must be one of \['layernorm', 'rmsnorm'\], got 'batchnorm'"),
    (dict(mlp="geglu"), r"mlp must be one of \['gelu', 'gelu_tanh', 'relu', 'swiglu', 'moe'\], got 'geglu'"),
    (dict(n_layer=0), r"n_layer must be a positive integer, got 0"),
    (dict(block_size=-8), r"block_size must be a positive integer, got -8"),
    (dict(vocab_size=0), r"vocab_size must be a positive integer, got 0"),
    (dict(n_head=2.0), r"n_head must be a positive integer, got 2.0"),
    (dict(n_kv_head=0), r"n_kv_head must be a positive integer, got 0"),
    (dict(mlp_hidden=0), r"mlp_hidden must be a positive integer, got 0"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
    (dict(dropout=-0.1), r"dropout must be in \[0, 1\), got -0.1"),
    (dict(norm_eps=0.0), r"norm_eps must be a positive number, got 0.0"),
    (dict(rope_theta=-1.0), r"rope_theta must be a positive number, got -1.0"),
    (dict(bias="yes"), r"bias must be True or False, got 'yes'"),
]


@pytest.mark.parametrize("overrides, message", BAD_CONFIGS)
def test_invalid_configs_fail_at_construction_naming_the_rule(overrides, message):
    fields = dict(vocab_size=100, n_layer=2, n_head=4, n_embd=64, block_size=16)
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**fields, **overrides})


def test_dict_round_trip_through_json():
    cfg = GPTConfig.from_preset("baby-llama", vocab_size=321, rope_theta=500.0)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert GPTConfig.from_dict(d) == cfg
    assert d["n_kv_head"] == 2 and d["vocab_size"] == 321
