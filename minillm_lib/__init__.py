"""minillm_lib: the small GPT library that the minillm course builds, chapter by chapter.

The data takes one road through the library, and the modules follow it (each module's
docstring names the chapter it comes from)::

    text --data--> str --tokenizers--> ids --data--> (x, y) batches
         --model (config, positions, layers, attention)--> logits --training--> loss, AdamW step
    prompt ids --sampling (model + KV cache + logit filters)--> new ids --tokenizers--> text

Imports run one way, lower floors first: config -> positions, layers -> attention, moe ->
model -> checkpoint, interop, sampling -> training -> evaluation, zoo -> lora, quantize,
finetune, rl -> viz, cli. Everything in ``__all__`` is importable from the top level
(``from minillm_lib import GPT, generate, train``) or from its module
(``from minillm_lib.sampling import generate``), which is where the chapters point.
``minillm_lib.viz`` (the notebooks' explorers) is not imported here: it is for notebooks.

The names load lazily: ``import minillm_lib.model`` loads only the model and the floors
below it, and ``minillm_lib.generate`` imports ``sampling`` the first time it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API: module -> the names it exports, in the order of the chapters.
_MODULES: dict[str, tuple[str, ...]] = {
    # data and tokenizers (chapters 1-2)
    "data": ("load_corpus", "train_val_split", "get_batch", "iter_eval_batches", "CorpusError"),
    "tokenizers": ("CharTokenizer", "BPETokenizer", "SPLIT_PATTERNS", "load_tokenizer"),
    # positions (chapter 3), attention (chapters 4-5), the block and the model (chapters 6-7)
    "positions": ("sinusoidal_positions", "rope_cos_sin", "apply_rope"),
    "attention": ("CausalSelfAttention", "KVCache", "causal_mask"),
    "layers": ("LayerNorm", "RMSNorm", "MLP"),
    "model": ("Block", "GPT"),
    "config": ("GPTConfig", "PRESETS", "TRAIN_PRESETS"),
    "interop": ("from_hf", "to_hf", "to_hf_tokenizer", "from_pretrained",
                "PretrainedUnavailableError"),
    # training and saving (chapter 8)
    "training": ("TrainConfig", "configure_optimizer", "lr_at", "train_step", "train", "evaluate",
                 "NonFiniteLossError", "NonFiniteWeightsError"),
    "checkpoint": ("save_model", "load_model", "check_tokenizer", "save_training_checkpoint",
                   "load_training_checkpoint"),
    "zoo": ("load_course_model", "course_model_info"),
    # sampling and the KV cache (chapters 9-10), and judging what comes out
    "sampling": ("generate", "stream", "SamplingOptions", "temperature_scale", "top_k_filter",
                 "top_p_filter", "min_p_filter", "repetition_penalty"),
    "evaluation": ("real_word_rate", "sample_quality", "Vocabulary", "token_logprobs",
                   "bits_per_char", "compressed_bits_per_char", "NGramModel", "ngram_baseline",
                   "top_predictions", "calibration", "Calibration", "score_choices",
                   "ChoiceItem", "next_line_task", "wilson_interval", "choice_accuracy"),
    # fine-tuning and compression (chapters 11-13)
    "lora": ("LoRALinear", "apply_lora", "merge_lora", "save_lora", "load_lora",
             "count_trainable", "lora_layers", "lora_state_dict"),
    "quantize": ("quantize_int8", "dequantize_int8", "quantize_int4", "dequantize_int4",
                 "pack_int4", "unpack_int4", "QuantizedLinear", "quantize_model",
                 "model_size_bytes"),
    "finetune": ("load_dialogues", "format_chat", "sft_examples", "add_special_tokens",
                 "sequence_logprobs", "dpo_loss"),
    # Part 3: is it any good (evaluation, above), mixture of experts, RL with verifiable rewards
    "moe": ("MoE", "load_balancing_loss", "expert_capacity", "within_capacity", "moe_layers",
            "expert_usage"),
    "rl": ("Problem", "arithmetic_problems", "check_answer", "rewards", "sample_completions",
           "completion_logprobs", "reinforce_advantages", "group_advantages", "reinforce_loss",
           "kl_k3", "grpo_loss"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
__all__ = list(_HOME)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (PEP 562)."""
    if name not in _HOME:
        raise AttributeError(f"module 'minillm_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value  # later lookups are ordinary attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what editors and type checkers see: the same names, imported eagerly
    from .attention import CausalSelfAttention, KVCache, causal_mask
    from .checkpoint import (
        check_tokenizer,
        load_model,
        load_training_checkpoint,
        save_model,
        save_training_checkpoint,
    )
    from .config import PRESETS, TRAIN_PRESETS, GPTConfig
    from .data import CorpusError, get_batch, iter_eval_batches, load_corpus, train_val_split
    from .evaluation import (
        Calibration,
        ChoiceItem,
        NGramModel,
        Vocabulary,
        bits_per_char,
        calibration,
        choice_accuracy,
        compressed_bits_per_char,
        next_line_task,
        ngram_baseline,
        real_word_rate,
        sample_quality,
        score_choices,
        token_logprobs,
        top_predictions,
        wilson_interval,
    )
    from .finetune import (
        add_special_tokens,
        dpo_loss,
        format_chat,
        load_dialogues,
        sequence_logprobs,
        sft_examples,
    )
    from .interop import (
        PretrainedUnavailableError,
        from_hf,
        from_pretrained,
        to_hf,
        to_hf_tokenizer,
    )
    from .layers import MLP, LayerNorm, RMSNorm
    from .lora import (
        LoRALinear,
        apply_lora,
        count_trainable,
        load_lora,
        lora_layers,
        lora_state_dict,
        merge_lora,
        save_lora,
    )
    from .model import GPT, Block
    from .moe import (
        MoE,
        expert_capacity,
        expert_usage,
        load_balancing_loss,
        moe_layers,
        within_capacity,
    )
    from .positions import apply_rope, rope_cos_sin, sinusoidal_positions
    from .quantize import (
        QuantizedLinear,
        dequantize_int4,
        dequantize_int8,
        model_size_bytes,
        pack_int4,
        quantize_int4,
        quantize_int8,
        quantize_model,
        unpack_int4,
    )
    from .rl import (
        Problem,
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
    from .sampling import (
        SamplingOptions,
        generate,
        min_p_filter,
        repetition_penalty,
        stream,
        temperature_scale,
        top_k_filter,
        top_p_filter,
    )
    from .tokenizers import SPLIT_PATTERNS, BPETokenizer, CharTokenizer, load_tokenizer
    from .training import (
        NonFiniteLossError,
        NonFiniteWeightsError,
        TrainConfig,
        configure_optimizer,
        evaluate,
        lr_at,
        train,
        train_step,
    )
    from .zoo import course_model_info, load_course_model
