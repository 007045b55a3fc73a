"""Our GPT against Hugging Face transformers: same weights in, same logits out."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from minillm_lib.checkpoint import save_model  # noqa: E402
from minillm_lib.config import GPTConfig  # noqa: E402
from minillm_lib.finetune import CHAT_SPECIAL_TOKENS, encode_chat, extend_tokenizer, format_chat  # noqa: E402
from minillm_lib.interop import (  # noqa: E402
    PretrainedUnavailableError,
    from_hf,
    from_pretrained,
    to_hf,
    to_hf_tokenizer,
)
from minillm_lib.model import GPT  # noqa: E402
from minillm_lib.positions import apply_rope, rope_cos_sin  # noqa: E402
from minillm_lib.tokenizers import BPETokenizer, CharTokenizer  # noqa: E402

ATOL = 1e-4


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def randomise(hf_model, std: float = 0.3):
    """HF zero-initialises biases and sets norms to one; randomise everything so a mix-up shows
    (std large enough that every sub-layer moves the logits by far more than ATOL)."""
    with torch.no_grad():
        for name, p in hf_model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.normal_(1.0, 0.2)
            else:
                p.normal_(0, std)
    return hf_model


def max_diff(ours: GPT, hf_model, idx: torch.Tensor) -> float:
    with torch.no_grad():
        return (ours(idx)[0] - hf_model(idx).logits).abs().max().item()


GPT2_SHAPES = [
    dict(n_layer=2, n_embd=48, n_head=4, tie_word_embeddings=True, activation_function="gelu_new"),
    dict(n_layer=3, n_embd=64, n_head=8, tie_word_embeddings=False, activation_function="gelu_new"),
    dict(n_layer=1, n_embd=32, n_head=2, n_inner=80, activation_function="relu", attn_implementation="eager"),
    dict(n_layer=2, n_embd=32, n_head=4, activation_function="gelu", layer_norm_epsilon=1e-6),
]


@pytest.mark.parametrize("shape", GPT2_SHAPES)
def test_gpt2_logits_match(shape):
    config = transformers.GPT2Config(vocab_size=97, n_positions=24, bos_token_id=None, eos_token_id=None, **shape)
    hf_model = randomise(transformers.GPT2LMHeadModel(config)).eval()
    ours = from_hf(hf_model).eval()
    assert ours.config.tie_weights == config.tie_word_embeddings
    idx = torch.randint(0, 97, (2, 24))
    assert max_diff(ours, hf_model, idx) < ATOL
    # And through our KV cache, one token at a time.
    cache = ours.new_kv_cache(2)
    with torch.no_grad():
        steps = torch.cat([ours(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(24)], dim=1)
        assert (steps - hf_model(idx).logits).abs().max().item() < ATOL


LLAMA_SHAPES = [
    dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
    dict(hidden_size=64, num_attention_heads=8, num_key_value_heads=1, tie_word_embeddings=True,
         rope_parameters={"rope_type": "default", "rope_theta": 500.0}),
    dict(hidden_size=48, num_attention_heads=6, num_key_value_heads=6, attention_bias=True, mlp_bias=True,
         attn_implementation="eager"),
    dict(hidden_size=96, num_attention_heads=6, num_key_value_heads=3, rms_norm_eps=1e-5,
         rope_parameters={"rope_type": "default", "rope_theta": 100000.0}),
]


@pytest.mark.parametrize("shape", LLAMA_SHAPES)
def test_llama_logits_match(shape):
    config = transformers.LlamaConfig(vocab_size=101, intermediate_size=120, num_hidden_layers=2,
                                      max_position_embeddings=32, bos_token_id=None, eos_token_id=None, **shape)
    hf_model = randomise(transformers.LlamaForCausalLM(config)).eval()
    ours = from_hf(hf_model).eval()
    assert (ours.config.n_head, ours.config.n_kv_head) == (config.num_attention_heads, config.num_key_value_heads)
    idx = torch.randint(0, 101, (3, 32))
    assert max_diff(ours, hf_model, idx) < ATOL
    cache = ours.new_kv_cache(3)
    with torch.no_grad():
        pieces = [ours(idx[:, :20], kv_cache=cache)[0]] + [ours(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(20, 32)]
        assert (torch.cat(pieces, 1) - hf_model(idx).logits).abs().max().item() < ATOL


@pytest.mark.parametrize("name", ["baby", "cpu-5min", "baby-llama", "gpt2-small-cpu"])
def test_cpu_presets_export_to_transformers_with_the_same_logits(name):
    ours = GPT(GPTConfig.from_preset(name, vocab_size=84)).eval()
    hf_model = to_hf(ours).eval()
    idx = torch.randint(0, 84, (2, ours.config.block_size))
    assert max_diff(ours, hf_model, idx) < ATOL


def test_swapping_gate_and_up_would_be_caught():
    """Guards the tests above: a wrong weight layout must show up as a large difference."""
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=40, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2, bos_token_id=None, eos_token_id=None)
    hf_model = randomise(transformers.LlamaForCausalLM(config)).eval()
    ours = from_hf(hf_model).eval()
    with torch.no_grad():
        c_fc = ours.transformer.h[0].mlp.c_fc.weight
        c_fc.copy_(torch.cat(c_fc.chunk(2)[::-1]))
    assert max_diff(ours, hf_model, torch.randint(0, 50, (1, 8))) > 1e-2


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(tie_weights=False, bias=False, mlp="relu"),
    dict(pos_encoding="rope", norm="rmsnorm", mlp="swiglu", n_kv_head=2, bias=False, tie_weights=False),
    dict(pos_encoding="rope", norm="rmsnorm", mlp="swiglu", n_kv_head=1, bias=True, rope_theta=1000.0),
])
def test_to_hf_round_trip(overrides):
    fields = dict(vocab_size=60, block_size=16, n_layer=2, n_head=4, n_embd=32, mlp="gelu_tanh")
    ours = GPT(GPTConfig(**{**fields, **overrides})).eval()
    with torch.no_grad():  # non-trivial norms and biases
        for name, p in ours.named_parameters():
            if "ln" in name or name.endswith("bias"):
                p.normal_(0.5, 0.1)
    hf_model = to_hf(ours).eval()
    expected = transformers.LlamaForCausalLM if ours.config.pos_encoding == "rope" else transformers.GPT2LMHeadModel
    assert type(hf_model) is expected
    idx = torch.randint(0, 60, (2, 16))
    assert max_diff(ours, hf_model, idx) < ATOL
    back_model = from_hf(hf_model)
    back = back_model.state_dict()
    for name, tensor in ours.state_dict().items():
        assert torch.equal(back[name], tensor), name
    for name in back.keys() - ours.state_dict().keys():  # bias=False went to GPT-2 as zero biases
        assert name.endswith("bias") and torch.all(back[name] == 0), name
    if ours.config.bias or ours.config.pos_encoding == "rope":
        assert back_model.config == ours.config


@pytest.mark.parametrize("overrides, field", [
    (dict(pos_encoding="sinusoidal"), "pos_encoding"),
    (dict(pos_encoding="none"), "pos_encoding"),
    (dict(n_kv_head=2), "n_kv_head"),
    (dict(pos_encoding="rope", norm="layernorm", mlp="swiglu"), "norm"),
    (dict(pos_encoding="rope", norm="rmsnorm", mlp="gelu"), "mlp"),
])
def test_unrepresentable_configs_name_the_field(overrides, field):
    ours = GPT(GPTConfig(vocab_size=60, block_size=16, n_layer=1, n_head=4, n_embd=32, **overrides))
    with pytest.raises(ValueError, match=f"cannot export to Hugging Face .* needs {field}="):
        to_hf(ours)


def test_num_params_matches_hf():
    for tie in (True, False):
        config = transformers.GPT2Config(vocab_size=97, n_positions=24, n_layer=2, n_embd=48, n_head=4,
                                         tie_word_embeddings=tie, bos_token_id=None, eos_token_id=None)
        hf_model = transformers.GPT2LMHeadModel(config)
        hf_count = sum(p.numel() for p in hf_model.parameters())  # parameters() yields a tied matrix once
        assert from_hf(hf_model).num_params() == hf_count
    with torch.device("meta"):  # shapes only, no memory or init time
        gpt2 = GPT(GPTConfig.from_preset("gpt2"))
    assert gpt2.num_params() == 124_439_808  # the famous "124M"


def test_rope_matches_hf_llama():
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = transformers.LlamaConfig(hidden_size=64, num_attention_heads=4, max_position_embeddings=40,
                                      rope_parameters={"rope_type": "default", "rope_theta": 5000.0})
    x = torch.randn(2, 4, 40, 16)
    hf_cos, hf_sin = LlamaRotaryEmbedding(config)(x, torch.arange(40)[None])
    cos, sin = rope_cos_sin(40, 16, theta=5000.0)
    torch.testing.assert_close(cos, hf_cos[0])
    torch.testing.assert_close(sin, hf_sin[0])
    hf_q, _ = apply_rotary_pos_emb(x, x, hf_cos, hf_sin)
    torch.testing.assert_close(apply_rope(x, cos, sin), hf_q)


def test_from_pretrained_local_hf_folder_and_our_folder(tmp_path):
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=40, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                                      bos_token_id=None, eos_token_id=None)
    hf_model = randomise(transformers.LlamaForCausalLM(config)).eval()
    hf_model.save_pretrained(tmp_path / "hf")
    ours = from_pretrained(tmp_path / "hf")
    idx = torch.randint(0, 50, (1, 16))
    assert max_diff(ours, hf_model, idx) < ATOL
    save_model(ours, tmp_path / "ours")
    again = from_pretrained(tmp_path / "ours")
    with torch.no_grad():
        assert torch.equal(again(idx)[0], ours(idx)[0])
    with pytest.raises(FileNotFoundError, match="no model folder"):
        from_pretrained(tmp_path / "missing")


def test_from_pretrained_offline_gives_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once at import
    with pytest.raises(PretrainedUnavailableError, match="needs the network once") as err:
        from_pretrained("gpt2", cache_dir=tmp_path)  # an empty cache: surely not downloaded
    assert isinstance(err.value, OSError)
    assert "HF_HUB_OFFLINE=1" in str(err.value) and "local folder" in str(err.value)


def test_unsupported_hf_models_are_refused():
    with pytest.raises(TypeError, match="GPT2LMHeadModel, LlamaForCausalLM and MixtralForCausalLM, got Linear"):
        from_hf(torch.nn.Linear(2, 2))
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=40, num_hidden_layers=1,
                                      num_attention_heads=4, bos_token_id=None, eos_token_id=None,
                                      rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4})
    with pytest.raises(ValueError, match="only plain RoPE"):
        from_hf(transformers.LlamaForCausalLM(config))


# ---------------------------------------------------------------- tokenizers: same ids, same text

PLAY = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.

All:
We know't, we know't.

First Citizen:
Let us kill him, and we'll have corn at our own price.
Is't a verdict?

All:
No more talking on't; let it be done: away, away!
"""
# Text the BPE never saw: newlines, runs of spaces, digits (the GPT-4 pattern cuts them in
# threes), accents, CJK and an emoji (several bytes each), and an empty string.
UNSEEN = ["Speak, speak.", "\n\nAll:\n", "   many    spaces  \n\t tab", "you're, YOU'LL 'tis",
          "café naïve Ærø", "12345678 and 3.14159", "漢字 and 😀!", "MARCIUS:\r\nO, me alone!", "", " "]


def assert_same_tokenizer(hf_tok, ours, texts, allowed_special="none"):
    for text in texts:
        ids = ours.encode(text, allowed_special=allowed_special)
        assert hf_tok(text)["input_ids"] == ids, text
        assert hf_tok.decode(ids) == ours.decode(ids) == text


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(PLAY * 4, vocab_size=300)  # ~2.5 kB of text, GPT-4 split pattern


def test_char_tokenizer_converts_to_hf_with_the_same_ids():
    ours = CharTokenizer.from_text(PLAY)
    hf_tok = to_hf_tokenizer(ours)
    assert isinstance(hf_tok, transformers.PreTrainedTokenizerFast)
    assert len(hf_tok) == ours.vocab_size
    lines = PLAY.splitlines(keepends=True)
    assert_same_tokenizer(hf_tok, ours, [PLAY, *lines, "\n\n\n", "  speak ,  speak  ", "", "?!"])
    # One id per character, no spaces put back between them on decode.
    assert hf_tok.decode(ours.encode("we'll")) == "we'll"


def test_char_tokenizer_with_unk_and_special_tokens():
    ours = CharTokenizer.from_text(PLAY, special_tokens=["<|endoftext|>"], unk_token="<unk>")
    hf_tok = to_hf_tokenizer(ours)
    text = "Speak<|endoftext|>Zounds, é!"  # Z and é are not in the vocabulary: the unk id
    ids = ours.encode(text, allowed_special="all")
    assert ours.unk_id in ids
    assert hf_tok(text)["input_ids"] == ids
    assert hf_tok.decode(ids) == ours.decode(ids)
    assert hf_tok.unk_token == "<unk>" and hf_tok.unk_token_id == ours.unk_id


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
def test_bpe_tokenizer_converts_to_hf_with_the_same_ids(pattern):
    ours = BPETokenizer.train(PLAY * 4, vocab_size=300, pattern=pattern)
    hf_tok = to_hf_tokenizer(ours)
    assert len(hf_tok) == ours.vocab_size == 300
    assert_same_tokenizer(hf_tok, ours, [PLAY, *PLAY.split("\n\n"), *UNSEEN])
    # The merges really are used: the training text takes far fewer tokens than bytes.
    assert len(hf_tok(PLAY)["input_ids"]) < 0.7 * len(PLAY.encode())
    # Ids that end inside a multi-byte character decode to U+FFFD in both.
    ids = ours.encode("😀漢")
    for end in range(len(ids) + 1):
        assert hf_tok.decode(ids[:end]) == ours.decode(ids[:end])


def test_bpe_tokenizer_with_chat_special_tokens(bpe):
    ours = extend_tokenizer(bpe, CHAT_SPECIAL_TOKENS)
    hf_tok = to_hf_tokenizer(ours)
    for name in CHAT_SPECIAL_TOKENS:
        assert hf_tok.convert_tokens_to_ids(name) == ours.special_tokens[name]
    chat = format_chat("Speak, speak.", "We know't, we know't.\n")
    ids = encode_chat(ours, "Speak, speak.", "We know't, we know't.\n")
    assert hf_tok(chat)["input_ids"] == ids == ours.encode(chat, allowed_special="all")
    assert hf_tok.decode(ids) == ours.decode(ids) == chat
    assert hf_tok.decode(ids, skip_special_tokens=True) == "Speak, speak.We know't, we know't.\n"
    assert_same_tokenizer(hf_tok, ours, UNSEEN)  # ordinary text is unchanged


def test_char_tokenizer_with_chat_special_tokens():
    ours = extend_tokenizer(CharTokenizer.from_text(PLAY), CHAT_SPECIAL_TOKENS)
    hf_tok = to_hf_tokenizer(ours)
    chat = format_chat("hear me", "Speak.\n")
    ids = encode_chat(ours, "hear me", "Speak.\n")
    assert hf_tok(chat)["input_ids"] == ids
    assert hf_tok.decode(ids) == chat


def test_hf_tokenizer_survives_save_pretrained(bpe, tmp_path):
    ours = extend_tokenizer(bpe, ["<|endoftext|>"])
    to_hf_tokenizer(ours).save_pretrained(tmp_path)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert_same_tokenizer(hf_tok, ours, [PLAY, *UNSEEN, "All:<|endoftext|>First"], allowed_special="all")


def test_unconvertible_tokenizers_are_refused(bpe):
    with pytest.raises(ValueError, match="CharTokenizer and BPETokenizer, got str"):
        to_hf_tokenizer("abc")
    with pytest.raises(ValueError, match=r"special tokens \['a'\] are also characters"):
        to_hf_tokenizer(CharTokenizer.from_text("abc", special_tokens=["a"]))
    with pytest.raises(ValueError, match="'e' has id 300 .* would get id 101"):  # the byte "e"
        to_hf_tokenizer(extend_tokenizer(bpe, ["e"]))
