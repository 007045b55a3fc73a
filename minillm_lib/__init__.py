"""minillm_lib: the small GPT library that the minillm course builds, chapter by chapter.

The data takes one road through the library, and the modules follow it::

    text --data--> str --tokenizers--> ids --data--> (x, y) batches
         --model (config, layers, attention)--> logits --train--> loss, AdamW step
    prompt ids --generate (model + KV cache + logit filters)--> new ids --tokenizers--> text

Everything in ``__all__`` is importable from the top level (``from minillm_lib import GPT``)
or from its module (``from minillm_lib.model import GPT``), which is where the chapters point.
The two functions named like their modules stay in them, so ``minillm_lib.train`` and
``minillm_lib.generate`` remain the modules: ``from minillm_lib.train import train`` and
``from minillm_lib.generate import generate``.
``minillm_lib.viz`` (the notebooks' explorers) is not imported here: it is for notebooks.
"""

from .attention import CausalSelfAttention, KVCache, causal_mask
from .checkpoint import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    load_model,
    load_training_checkpoint,
    save_model,
    save_training_checkpoint,
)
from .config import PRESETS, GPTConfig
from .data import CorpusError, get_batch, iter_eval_batches, load_corpus, train_val_split
from .finetune import (
    add_special_tokens,
    dpo_loss,
    format_chat,
    load_dialogues,
    sequence_logprobs,
    sft_examples,
)
from .generate import (
    min_p_filter,
    repetition_penalty,
    stream,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)
from .interop import (
    PretrainedUnavailableError,
    from_hf,
    from_pretrained,
    to_hf,
    to_hf_tokenizer,
)
from .layers import MLP, LayerNorm, RMSNorm, apply_rope, rope_cos_sin, sinusoidal_positions
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
from .tokenizers import SPLIT_PATTERNS, BPETokenizer, CharTokenizer, load_tokenizer
from .train import NonFiniteLossError, TrainConfig, configure_optimizer, evaluate, lr_at
from .zoo import course_model_info, load_course_model

__version__ = "0.1.0"

__all__ = [
    # data and tokenizers (chapters 1-2)
    "load_corpus", "train_val_split", "get_batch", "iter_eval_batches", "CorpusError",
    "CharTokenizer", "BPETokenizer", "SPLIT_PATTERNS", "load_tokenizer",
    # the model (chapters 3-7)
    "GPTConfig", "PRESETS", "LayerNorm", "RMSNorm", "MLP", "sinusoidal_positions",
    "rope_cos_sin", "apply_rope", "CausalSelfAttention", "KVCache", "causal_mask", "Block", "GPT",
    "from_hf", "to_hf", "to_hf_tokenizer", "from_pretrained", "PretrainedUnavailableError",
    "save_model", "load_model", "atomic_write", "atomic_write_bytes", "atomic_write_json",
    # training (chapter 8)
    "TrainConfig", "configure_optimizer", "lr_at", "evaluate", "NonFiniteLossError",
    "save_training_checkpoint", "load_training_checkpoint", "load_course_model",
    "course_model_info",
    # generation (chapters 9-10)
    "stream", "temperature_scale", "top_k_filter", "top_p_filter", "min_p_filter",
    "repetition_penalty",
    # fine-tuning and compression (chapters 11-13)
    "LoRALinear", "apply_lora", "merge_lora", "save_lora", "load_lora", "count_trainable",
    "lora_layers", "lora_state_dict",
    "quantize_int8", "dequantize_int8", "quantize_int4", "dequantize_int4", "pack_int4", "unpack_int4", "QuantizedLinear",
    "quantize_model", "model_size_bytes",
    "load_dialogues", "format_chat", "sft_examples", "add_special_tokens", "sequence_logprobs",
    "dpo_loss",
]
