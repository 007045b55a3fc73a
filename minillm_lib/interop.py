"""Hugging Face interop: copy weights between our GPT and `transformers` models.

Our layer names follow GPT-2, so GPT-2 maps one tensor at a time (its Conv1D layers
store weights as (in, out), the transpose of nn.Linear's (out, in)). Llama maps too:
its q/k/v projections are concatenated into our fused c_attn, its gate/up projections
into our c_fc (gate first, as MLP.forward chunks them), and its RoPE uses the same
half-split layout as ours, so no weights need permuting.

``transformers`` is imported only inside these functions: the rest of the library
works without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .config import GPTConfig
from .model import GPT

# Hugging Face GPT-2 activation names -> our MLP kinds ("gelu_new" is the tanh GELU).
_HF_GPT2_ACTIVATIONS = {
    "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu",
}
_OUR_GPT2_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


class PretrainedUnavailableError(OSError):
    """from_pretrained could not get the weights (offline, or not downloaded yet)."""


def _import_transformers() -> Any:
    """transformers >= 5 (its config names, e.g. LlamaConfig.rope_parameters, differ in 4.x)."""
    try:
        import transformers
    except ImportError as err:
        raise ImportError("Hugging Face interop needs `pip install 'transformers>=5'`") from err
    if int(transformers.__version__.split(".")[0]) < 5:
        raise ImportError(f"Hugging Face interop needs transformers>=5, found {transformers.__version__}")
    return transformers


# ---------------------------------------------------------------- Hugging Face -> ours

def from_hf(hf_model: nn.Module) -> GPT:
    """Copy a ``GPT2LMHeadModel`` or ``LlamaForCausalLM`` into a new GPT (same dtype)."""
    transformers = _import_transformers()
    if isinstance(hf_model, transformers.GPT2LMHeadModel):
        model = GPT(_config_from_gpt2(hf_model.config))
        _copy_from_gpt2(model, hf_model)
    elif isinstance(hf_model, transformers.LlamaForCausalLM):
        model = GPT(_config_from_llama(hf_model.config))
        _copy_from_llama(model, hf_model)
    else:
        raise TypeError(
            f"from_hf supports GPT2LMHeadModel and LlamaForCausalLM, got {type(hf_model).__name__}"
        )
    return model.to(hf_model.lm_head.weight.dtype).train(hf_model.training)


def _config_from_gpt2(hf: Any) -> GPTConfig:
    """Translate a GPT2Config, refusing options our model does not implement."""
    if hf.activation_function not in _HF_GPT2_ACTIVATIONS:
        raise ValueError(
            f"GPT-2 activation_function {hf.activation_function!r} is not supported; "
            f"supported: {sorted(_HF_GPT2_ACTIVATIONS)}"
        )
    for flag, wanted in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                         ("add_cross_attention", False)):
        if getattr(hf, flag) != wanted:
            raise ValueError(f"GPT-2 config {flag}={getattr(hf, flag)!r} is not supported (need {wanted})")
    return GPTConfig(
        vocab_size=hf.vocab_size, block_size=hf.n_positions, n_layer=hf.n_layer, n_head=hf.n_head,
        n_embd=hf.n_embd, dropout=float(hf.resid_pdrop), bias=True, pos_encoding="learned",
        norm="layernorm", norm_eps=hf.layer_norm_epsilon, mlp=_HF_GPT2_ACTIVATIONS[hf.activation_function],
        mlp_hidden=hf.n_inner or 4 * hf.n_embd, tie_weights=bool(hf.tie_word_embeddings),
    )


def _config_from_llama(hf: Any) -> GPTConfig:
    """Translate a LlamaConfig, refusing options our model does not implement."""
    rope = hf.rope_parameters or {}
    if rope.get("rope_type", "default") != "default" or rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(
            f"Llama rope_parameters {rope} are not supported: only plain RoPE (rope_type 'default')"
        )
    if hf.hidden_act != "silu":
        raise ValueError(f"Llama hidden_act {hf.hidden_act!r} is not supported (need 'silu' for SwiGLU)")
    if hf.head_dim != hf.hidden_size // hf.num_attention_heads:
        raise ValueError(
            f"Llama head_dim {hf.head_dim} != hidden_size // num_attention_heads "
            f"({hf.hidden_size // hf.num_attention_heads}) is not supported"
        )
    if hf.attention_bias != hf.mlp_bias:
        raise ValueError(
            f"Llama attention_bias={hf.attention_bias} with mlp_bias={hf.mlp_bias} is not supported: "
            "our config has one bias flag for both"
        )
    return GPTConfig(
        vocab_size=hf.vocab_size, block_size=hf.max_position_embeddings, n_layer=hf.num_hidden_layers,
        n_head=hf.num_attention_heads, n_kv_head=hf.num_key_value_heads, n_embd=hf.hidden_size,
        dropout=float(hf.attention_dropout), bias=bool(hf.attention_bias), pos_encoding="rope",
        rope_theta=float(rope.get("rope_theta", 10000.0)), norm="rmsnorm", norm_eps=hf.rms_norm_eps,
        mlp="swiglu", mlp_hidden=hf.intermediate_size, tie_weights=bool(hf.tie_word_embeddings),
    )


@torch.no_grad()
def _copy_from_gpt2(model: GPT, hf_model: nn.Module) -> None:
    ours, theirs = model.transformer, hf_model.transformer
    ours.wte.weight.copy_(theirs.wte.weight)
    ours.wpe.weight.copy_(theirs.wpe.weight)
    for block, hf_block in zip(ours.h, theirs.h, strict=True):
        for name in ("ln_1", "ln_2"):
            _copy_linear_or_norm(getattr(block, name), getattr(hf_block, name))
        for ours_lin, conv in _gpt2_linear_pairs(block, hf_block):
            ours_lin.weight.copy_(conv.weight.t())  # Conv1D's (in, out) -> nn.Linear's (out, in)
            _copy_bias(ours_lin, conv)
    _copy_linear_or_norm(ours.ln_f, theirs.ln_f)
    if not model.config.tie_weights:
        model.lm_head.weight.copy_(hf_model.lm_head.weight)


def _gpt2_linear_pairs(block: nn.Module, hf_block: nn.Module) -> list[tuple[nn.Linear, nn.Module]]:
    """Our nn.Linear layers of one block, each with its GPT-2 Conv1D twin."""
    return [(block.attn.c_attn, hf_block.attn.c_attn), (block.attn.c_proj, hf_block.attn.c_proj),
            (block.mlp.c_fc, hf_block.mlp.c_fc), (block.mlp.c_proj, hf_block.mlp.c_proj)]


@torch.no_grad()
def _copy_from_llama(model: GPT, hf_model: nn.Module) -> None:
    ours, theirs = model.transformer, hf_model.model
    ours.wte.weight.copy_(theirs.embed_tokens.weight)
    for block, hf_block in zip(ours.h, theirs.layers, strict=True):
        attn, mlp = hf_block.self_attn, hf_block.mlp
        block.ln_1.weight.copy_(hf_block.input_layernorm.weight)
        block.ln_2.weight.copy_(hf_block.post_attention_layernorm.weight)
        _concat_into(block.attn.c_attn, [attn.q_proj, attn.k_proj, attn.v_proj])  # q | k | v
        _copy_linear_or_norm(block.attn.c_proj, attn.o_proj)
        _concat_into(block.mlp.c_fc, [mlp.gate_proj, mlp.up_proj])  # gate | up
        _copy_linear_or_norm(block.mlp.c_proj, mlp.down_proj)
    ours.ln_f.weight.copy_(theirs.norm.weight)
    if not model.config.tie_weights:
        model.lm_head.weight.copy_(hf_model.lm_head.weight)


def _copy_linear_or_norm(dst: nn.Module, src: nn.Module) -> None:
    """Copy weight and bias of two modules with identical layouts (a missing bias is zero)."""
    dst.weight.copy_(src.weight)
    _copy_bias(dst, src)


def _copy_bias(dst: nn.Module, src: nn.Module) -> None:
    """dst.bias = src.bias, where a missing src bias means zeros (the same function)."""
    if dst.bias is None:
        return
    if src.bias is None:
        dst.bias.zero_()
    else:
        dst.bias.copy_(src.bias)


def _concat_into(dst: nn.Linear, parts: list[nn.Linear]) -> None:
    """Stack the outputs of several Linears into one: weights (sum of outs, in)."""
    dst.weight.copy_(torch.cat([p.weight for p in parts], dim=0))
    if dst.bias is not None:
        dst.bias.copy_(torch.cat([p.bias for p in parts], dim=0))


# ---------------------------------------------------------------- ours -> Hugging Face

def to_hf(model: GPT) -> nn.Module:
    """Export to ``GPT2LMHeadModel`` (learned positions, LayerNorm, GELU/ReLU, n_kv_head ==
    n_head) or ``LlamaForCausalLM`` (RoPE, RMSNorm, SwiGLU). bias=False exports to GPT-2 as
    zero biases, which computes the same function. Anything else raises ValueError."""
    transformers = _import_transformers()
    cfg = model.config
    if cfg.pos_encoding == "rope" or cfg.norm == "rmsnorm" or cfg.mlp == "swiglu":
        _require(cfg, "Llama", pos_encoding="rope", norm="rmsnorm", mlp="swiglu")
        hf_config = transformers.LlamaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=cfg.mlp_hidden,
            num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_kv_head, hidden_act="silu", max_position_embeddings=cfg.block_size,
            rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_weights,
            rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
            attention_bias=cfg.bias, mlp_bias=cfg.bias, attention_dropout=cfg.dropout,
            bos_token_id=None, eos_token_id=None,  # our model does not know its tokenizer
        )
        hf_model = transformers.LlamaForCausalLM(hf_config)
        _copy_to_llama(model, hf_model)
    else:
        _require(cfg, "GPT-2", pos_encoding="learned", norm="layernorm", n_kv_head=cfg.n_head)
        hf_config = transformers.GPT2Config(
            vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
            n_head=cfg.n_head, n_inner=cfg.mlp_hidden, activation_function=_OUR_GPT2_ACTIVATIONS[cfg.mlp],
            resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
            layer_norm_epsilon=cfg.norm_eps, tie_word_embeddings=cfg.tie_weights,
            # GPT-2's <|endoftext|> id only makes sense with GPT-2's vocabulary.
            bos_token_id=50256 if cfg.vocab_size == 50257 else None,
            eos_token_id=50256 if cfg.vocab_size == 50257 else None,
        )
        hf_model = transformers.GPT2LMHeadModel(hf_config)
        _copy_to_gpt2(model, hf_model)
    dtype = model.transformer.wte.weight.dtype
    return hf_model.to(dtype).train(model.training)


def _require(cfg: GPTConfig, family: str, **wanted: Any) -> None:
    for field, value in wanted.items():
        if getattr(cfg, field) != value:
            raise ValueError(
                f"cannot export to Hugging Face {family}: it needs {field}={value!r}, "
                f"this model has {field}={getattr(cfg, field)!r}"
            )


@torch.no_grad()
def _copy_to_gpt2(model: GPT, hf_model: nn.Module) -> None:
    ours, theirs = model.transformer, hf_model.transformer
    theirs.wte.weight.copy_(ours.wte.weight)
    theirs.wpe.weight.copy_(ours.wpe.weight)
    for block, hf_block in zip(ours.h, theirs.h, strict=True):
        for name in ("ln_1", "ln_2"):
            _copy_linear_or_norm(getattr(hf_block, name), getattr(block, name))
        for ours_lin, conv in _gpt2_linear_pairs(block, hf_block):
            conv.weight.copy_(ours_lin.weight.t())  # (out, in) -> Conv1D's (in, out)
            _copy_bias(conv, ours_lin)
    _copy_linear_or_norm(theirs.ln_f, ours.ln_f)
    if not model.config.tie_weights:
        hf_model.lm_head.weight.copy_(model.lm_head.weight)


@torch.no_grad()
def _copy_to_llama(model: GPT, hf_model: nn.Module) -> None:
    ours, theirs = model.transformer, hf_model.model
    theirs.embed_tokens.weight.copy_(ours.wte.weight)
    for block, hf_block in zip(ours.h, theirs.layers, strict=True):
        attn, mlp = hf_block.self_attn, hf_block.mlp
        hf_block.input_layernorm.weight.copy_(block.ln_1.weight)
        hf_block.post_attention_layernorm.weight.copy_(block.ln_2.weight)
        _split_into(block.attn.c_attn, [attn.q_proj, attn.k_proj, attn.v_proj])
        _copy_linear_or_norm(attn.o_proj, block.attn.c_proj)
        _split_into(block.mlp.c_fc, [mlp.gate_proj, mlp.up_proj])
        _copy_linear_or_norm(mlp.down_proj, block.mlp.c_proj)
    theirs.norm.weight.copy_(ours.ln_f.weight)
    if not model.config.tie_weights:
        hf_model.lm_head.weight.copy_(model.lm_head.weight)


def _split_into(src: nn.Linear, parts: list[nn.Linear]) -> None:
    """Inverse of _concat_into: rows of src's weight go to parts in order."""
    sizes = [p.out_features for p in parts]
    for part, w in zip(parts, src.weight.split(sizes, dim=0), strict=True):
        part.weight.copy_(w)
    if src.bias is not None:
        for part, b in zip(parts, src.bias.split(sizes, dim=0), strict=True):
            part.bias.copy_(b)


# ---------------------------------------------------------------- released checkpoints

def from_pretrained(name: str | os.PathLike, *, dtype: torch.dtype = torch.float32, **hf_kwargs: Any) -> GPT:
    """Load released weights into our GPT.

    name: a Hugging Face hub id ("gpt2", "gpt2-medium", "HuggingFaceTB/SmolLM2-135M", ...)
    or a local folder: either one saved by ``hf_model.save_pretrained(folder)`` or one
    saved by ``GPT.save(folder)``. Hub ids need the network the first time (the download
    is cached); offline and not cached raises PretrainedUnavailableError.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        meta_file = path / "config.json"
        if meta_file.is_file() and "minillm_format_version" in json.loads(meta_file.read_text()):
            from .checkpoint import load_model
            return load_model(path).to(dtype)
    elif str(name).startswith((".", "~")) or path.is_absolute():  # a path, not a hub id like "org/model"
        raise FileNotFoundError(f"no model folder at {str(name)!r}")

    transformers = _import_transformers()
    if path.is_dir():  # a local Hugging Face folder: its errors are about the folder, pass them on
        hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **hf_kwargs)
        return from_hf(hf_model.eval())
    try:
        hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(name), dtype=dtype, **hf_kwargs)
    except OSError as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE=1 is set" if offline else "the Hugging Face hub could not be reached"
        raise PretrainedUnavailableError(
            f"cannot load {str(name)!r}: {why} and it is not in the local cache. "
            "from_pretrained needs the network once to download the weights (they are cached "
            "afterwards): unset HF_HUB_OFFLINE and run it online, or pre-download with "
            f"`hf download {name}`. Alternatively pass a local folder holding config.json "
            "and model.safetensors (e.g. written by hf_model.save_pretrained(folder))."
        ) from err
    return from_hf(hf_model.eval())
