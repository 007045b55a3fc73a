"""Hugging Face interop (chapters 7, 14, 16): copy weights between our GPT and `transformers`
models.

Our layer names follow GPT-2, so GPT-2 maps one tensor at a time (its Conv1D layers
store weights as (in, out), the transpose of nn.Linear's (out, in)). Llama maps too:
its q/k/v projections are concatenated into our fused c_attn, its gate/up projections
into our c_fc (gate first, as MLP.forward chunks them), and its RoPE uses the same
half-split layout as ours, so no weights need permuting. Mixtral is Llama with a mixture of
experts (chapter "Mixture of experts"): its router ("gate") is ours, and its experts' stacked
gate_up/down tensors are our experts' c_fc/c_proj, one slice each.

``to_hf_tokenizer`` turns our tokenizers into a Hugging Face fast tokenizer that gives the
same ids, so an exported folder loads with ``AutoTokenizer`` as well as with
``AutoModelForCausalLM``.

``transformers`` (and its ``tokenizers``) is imported only inside these functions: the rest
of the library works without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import regex
import torch
import torch.nn as nn

from .checkpoint import load_model
from .config import GPTConfig
from .model import GPT
from .tokenizers import BPETokenizer, CharTokenizer

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
    """Copy a ``GPT2LMHeadModel``, ``LlamaForCausalLM`` or ``MixtralForCausalLM`` into a new
    GPT (same dtype)."""
    transformers = _import_transformers()
    if isinstance(hf_model, transformers.GPT2LMHeadModel):
        model = GPT(_config_from_gpt2(hf_model.config))
        _copy_from_gpt2(model, hf_model)
    elif isinstance(hf_model, transformers.LlamaForCausalLM):
        model = GPT(_config_from_llama(hf_model.config))
        _copy_from_llama(model, hf_model)
    elif isinstance(hf_model, transformers.MixtralForCausalLM):
        model = GPT(_config_from_mixtral(hf_model.config))
        _copy_from_llama(model, hf_model)
    else:
        raise TypeError(
            "from_hf supports GPT2LMHeadModel, LlamaForCausalLM and MixtralForCausalLM, "
            f"got {type(hf_model).__name__}"
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
    if hf.attention_bias != hf.mlp_bias:
        raise ValueError(
            f"Llama attention_bias={hf.attention_bias} with mlp_bias={hf.mlp_bias} is not supported: "
            "our config has one bias flag for both"
        )
    return GPTConfig(**_llama_like_fields(hf, "Llama"), bias=bool(hf.attention_bias), mlp="swiglu")


def _config_from_mixtral(hf: Any) -> GPTConfig:
    """Translate a MixtralConfig (Llama's attention, a mixture of SwiGLU experts, no biases)."""
    for option, wanted in (("sliding_window", None), ("router_jitter_noise", 0.0)):
        if getattr(hf, option) != wanted:
            raise ValueError(f"Mixtral {option}={getattr(hf, option)!r} is not supported "
                             f"(need {wanted!r})")
    return GPTConfig(
        **_llama_like_fields(hf, "Mixtral"), bias=False, mlp="moe",
        n_expert=hf.num_local_experts, n_expert_per_token=hf.num_experts_per_tok,
        moe_aux_loss_coef=float(hf.router_aux_loss_coef),  # Mixtral has no capacity limit
    )


def _llama_like_fields(hf: Any, family: str) -> dict[str, Any]:
    """The GPTConfig fields of a Llama-like config (RoPE, RMSNorm, SiLU-gated MLPs)."""
    rope = hf.rope_parameters or {}
    if rope.get("rope_type", "default") != "default" or rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(
            f"{family} rope_parameters {rope} are not supported: only plain RoPE (rope_type 'default')"
        )
    if hf.hidden_act != "silu":
        raise ValueError(f"{family} hidden_act {hf.hidden_act!r} is not supported (need 'silu' for SwiGLU)")
    head_dim = hf.head_dim or hf.hidden_size // hf.num_attention_heads
    if head_dim != hf.hidden_size // hf.num_attention_heads:
        raise ValueError(
            f"{family} head_dim {head_dim} != hidden_size // num_attention_heads "
            f"({hf.hidden_size // hf.num_attention_heads}) is not supported"
        )
    return dict(
        vocab_size=hf.vocab_size, block_size=hf.max_position_embeddings, n_layer=hf.num_hidden_layers,
        n_head=hf.num_attention_heads, n_kv_head=hf.num_key_value_heads, n_embd=hf.hidden_size,
        dropout=float(hf.attention_dropout), pos_encoding="rope",
        rope_theta=float(rope.get("rope_theta", 10000.0)), norm="rmsnorm", norm_eps=hf.rms_norm_eps,
        mlp_hidden=hf.intermediate_size, tie_weights=bool(hf.tie_word_embeddings),
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
    """Llama's weights, or Mixtral's (the same but for the MLP: a router and experts)."""
    ours, theirs = model.transformer, hf_model.model
    ours.wte.weight.copy_(theirs.embed_tokens.weight)
    for block, hf_block in zip(ours.h, theirs.layers, strict=True):
        attn, mlp = hf_block.self_attn, hf_block.mlp
        block.ln_1.weight.copy_(hf_block.input_layernorm.weight)
        block.ln_2.weight.copy_(hf_block.post_attention_layernorm.weight)
        _concat_into(block.attn.c_attn, [attn.q_proj, attn.k_proj, attn.v_proj])  # q | k | v
        _copy_linear_or_norm(block.attn.c_proj, attn.o_proj)
        if model.config.mlp == "moe":
            block.mlp.router.weight.copy_(mlp.gate.weight)  # Mixtral's router is "gate"
            for e, expert in enumerate(block.mlp.experts):  # stacked: (E, 2*hidden, C), (E, C, hidden)
                expert.c_fc.weight.copy_(mlp.experts.gate_up_proj[e])  # gate | up, as ours
                expert.c_proj.weight.copy_(mlp.experts.down_proj[e])
        else:
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
    n_head), ``LlamaForCausalLM`` (RoPE, RMSNorm, SwiGLU) or ``MixtralForCausalLM`` (RoPE,
    RMSNorm, mlp="moe", no biases). bias=False exports to GPT-2 as zero biases, which
    computes the same function. Anything else raises ValueError.

    Mixtral has no capacity limit: the export computes what our model computes in eval mode
    (where no token is dropped), and trains without dropping tokens. Its balancing loss pools
    the tokens of all layers before multiplying f by P, where ours averages the layers' losses:
    the two agree for one layer (``load_balancing_loss`` on all layers' rows gives theirs)."""
    transformers = _import_transformers()
    cfg = model.config
    if cfg.mlp == "moe":
        _require(cfg, "Mixtral", pos_encoding="rope", norm="rmsnorm", bias=False)
        hf_config = transformers.MixtralConfig(
            **_llama_like_config(cfg), num_local_experts=cfg.n_expert,
            num_experts_per_tok=cfg.n_expert_per_token, router_aux_loss_coef=cfg.moe_aux_loss_coef,
            sliding_window=None, router_jitter_noise=0.0,
        )
        hf_model = transformers.MixtralForCausalLM(hf_config)
        _copy_to_llama(model, hf_model)
    elif cfg.pos_encoding == "rope" or cfg.norm == "rmsnorm" or cfg.mlp == "swiglu":
        _require(cfg, "Llama", pos_encoding="rope", norm="rmsnorm", mlp="swiglu")
        hf_config = transformers.LlamaConfig(**_llama_like_config(cfg), attention_bias=cfg.bias,
                                             mlp_bias=cfg.bias)
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


def _llama_like_config(cfg: GPTConfig) -> dict[str, Any]:
    """The fields that Hugging Face's LlamaConfig and MixtralConfig share, from ours."""
    return dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=cfg.mlp_hidden,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_kv_head, hidden_act="silu", max_position_embeddings=cfg.block_size,
        rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_weights,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        attention_dropout=cfg.dropout,
        bos_token_id=None, eos_token_id=None,  # our model does not know its tokenizer
    )


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
    """The inverse of _copy_from_llama (Llama or Mixtral)."""
    ours, theirs = model.transformer, hf_model.model
    theirs.embed_tokens.weight.copy_(ours.wte.weight)
    for block, hf_block in zip(ours.h, theirs.layers, strict=True):
        attn, mlp = hf_block.self_attn, hf_block.mlp
        hf_block.input_layernorm.weight.copy_(block.ln_1.weight)
        hf_block.post_attention_layernorm.weight.copy_(block.ln_2.weight)
        _split_into(block.attn.c_attn, [attn.q_proj, attn.k_proj, attn.v_proj])
        _copy_linear_or_norm(attn.o_proj, block.attn.c_proj)
        if model.config.mlp == "moe":
            mlp.gate.weight.copy_(block.mlp.router.weight)
            for e, expert in enumerate(block.mlp.experts):
                mlp.experts.gate_up_proj[e].copy_(expert.c_fc.weight)
                mlp.experts.down_proj[e].copy_(expert.c_proj.weight)
        else:
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
    saved by ``save_model(model, folder)``. Hub ids need the network the first time (the download
    is cached); offline and not cached raises PretrainedUnavailableError.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        meta_file = path / "config.json"
        if meta_file.is_file() and "minillm_format_version" in json.loads(meta_file.read_text()):
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


# ---------------------------------------------------------------- our tokenizers -> Hugging Face

# Oniguruma, the regex engine of ``tokenizers``, reads "X{1,3}+" as "(X{1,3})+" (one or more
# runs of 1-3), where Python's regex reads a possessive "X{1,3}": the GPT-4 pattern's
# "\p{N}{1,3}+" would keep "12345" whole instead of "123", "45". An atomic group "(?>X{1,3})"
# means the same in both. X: a \p{..} class, an escape, a [...] set or one plain character.
_POSSESSIVE_REPEAT = regex.compile(
    r"(\\p\{\w+\}|\\.|\[(?:\\.|[^\]\\])*\]|[^\\()\[\]])"  # X
    r"(\{\d+(?:,\d*)?\})\+"  # {m,n}+
)


def to_hf_tokenizer(tokenizer: CharTokenizer | BPETokenizer) -> Any:
    """A ``transformers.PreTrainedTokenizerFast`` that encodes and decodes like ``tokenizer``.

    Returns a fast tokenizer with ``hf_tok(text)["input_ids"] == tokenizer.encode(text)`` (no
    BOS/EOS is added) and ``hf_tok.decode(ids) == tokenizer.decode(ids)``; save it with
    ``save_pretrained(folder)`` next to the model so ``AutoTokenizer.from_pretrained(folder)``
    finds it. Our special tokens become special tokens with the same ids.

    What still differs: special tokens in the text are always encoded as their ids (ours needs
    ``allowed_special``); a character that a CharTokenizer without an unk token never saw raises
    an ``Exception`` from ``tokenizers`` instead of our ValueError; for a BPETokenizer, a
    special token spelt only with characters of GPT-2's byte alphabet, non-ASCII among them
    (``"<|café|>"``), decodes as bytes (ASCII names such as ``"<|end|>"`` are fine); a custom
    split pattern that leaves characters unmatched drops them in ours, not in theirs.

    CharTokenizer: a WordLevel model over single characters (newlines included).
    BPETokenizer: GPT-2's byte-level BPE: our split pattern, then bytes as printable characters.
    """
    _import_transformers()  # ImportError with the install hint; it brings `tokenizers` along
    import transformers
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    if isinstance(tokenizer, CharTokenizer):
        vocab = {ch: i for i, ch in enumerate(tokenizer.chars)} | tokenizer.special_tokens
        if len(vocab) != tokenizer.vocab_size:
            clash = sorted(set(tokenizer.chars) & tokenizer.special_tokens.keys())
            raise ValueError(
                f"cannot convert a CharTokenizer whose special tokens {clash} are also characters "
                "of its vocabulary: Hugging Face needs distinct token strings"
            )
        # The unk token must be in WordLevel's vocabulary, hence the special tokens above. With
        # none, "" (never a token) makes an unseen character an error, as it is in ours.
        backend = HFTokenizer(models.WordLevel(vocab, unk_token=tokenizer.unk_token or ""))
        # One piece per character, "\n" included (Oniguruma's "." does not match newlines).
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        backend.decoder = decoders.Fuse()  # join the characters without spaces between them
    elif isinstance(tokenizer, BPETokenizer):
        backend = HFTokenizer(_hf_byte_level_bpe(tokenizer, models))
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_onig_pattern(tokenizer.pattern)), behavior="isolated"),
            # our chunks -> their UTF-8 bytes as GPT-2's printable characters, nothing else
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        backend.decoder = decoders.ByteLevel()  # bytes back to text, bad UTF-8 as U+FFFD like ours
    else:
        raise ValueError(
            "to_hf_tokenizer supports CharTokenizer and BPETokenizer, "
            f"got {type(tokenizer).__name__}"
        )

    # Special tokens are cut out of the text before pre-tokenization, as ours are. Those not in
    # the model's vocabulary (all of a BPETokenizer's) get the next free ids in order, which
    # are ours: they follow the vocabulary, in id order. Checked, in case a name is a token.
    names = list(tokenizer.special_tokens)
    unk_token = getattr(tokenizer, "unk_token", None)  # BPETokenizer has none
    backend.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in names])
    for name, token_id in tokenizer.special_tokens.items():
        if backend.token_to_id(name) != token_id:
            raise ValueError(
                f"special token {name!r} has id {token_id} in our tokenizer but would get id "
                f"{backend.token_to_id(name)} in Hugging Face's: its text is also an ordinary token"
            )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=unk_token,
        extra_special_tokens=[name for name in names if name != unk_token],
        clean_up_tokenization_spaces=False,  # it would delete the space in "word ." on decode
    )


def _hf_byte_level_bpe(tokenizer: BPETokenizer, models: Any) -> Any:
    """A ``tokenizers`` BPE model with our vocabulary, in GPT-2's byte-to-character spelling."""
    spell = _gpt2_bytes_to_unicode()

    def text(piece: bytes) -> str:
        return "".join(spell[b] for b in piece)

    ranks = tokenizer.mergeable_ranks  # bytes -> id; ids 256.. in merge order
    vocab = {text(piece): token_id for piece, token_id in ranks.items()}
    merges = []
    for k, (a, b) in enumerate(tokenizer.merges):
        piece = tokenizer.token_bytes(256 + k)
        # Our encode (tiktoken's) joins ANY two neighbours whose bytes form a token, not only
        # the pair that created it; so list every such split, right after one another at this
        # token's place in the order, the recorded merge first (as transformers' tiktoken
        # converter does).
        recorded = (tokenizer.token_bytes(a), tokenizer.token_bytes(b))
        splits = [(piece[:i], piece[i:]) for i in range(1, len(piece))]
        others = [(left, right) for left, right in splits
                  if (left, right) != recorded and left in ranks and right in ranks]
        merges += [(text(left), text(right)) for left, right in [recorded, *others]]
    # ignore_merges: a chunk that is a whole token becomes that token, as in ours.
    return models.BPE(vocab, merges, ignore_merges=True)


def _gpt2_bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character table: printable bytes stand for themselves, the other 68
    (controls, space, ...) for the characters from U+0100 up, so every token is visible text."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]
    table |= {b: chr(256 + n) for n, b in enumerate(others)}
    return table


def _onig_pattern(pattern: str) -> str:
    """Our split regex (Python's ``regex`` syntax) in the syntax of ``tokenizers``' Oniguruma."""
    translated = _POSSESSIVE_REPEAT.sub(r"(?>\1\2)", pattern)
    if regex.search(r"\{\d+(?:,\d*)?\}\+", translated):  # left: the repeat of a group
        raise ValueError(
            f"split pattern {pattern!r} has a possessive repeat 'X{{m,n}}+' of a group, which "
            "Oniguruma (Hugging Face tokenizers) reads differently; write it as an atomic group "
            "'(?>X{m,n})'"
        )
    return translated
