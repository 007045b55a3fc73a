"""Model save/load (safetensors + config.json)."""

import hashlib
import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from minillm_lib.checkpoint import check_tokenizer, load_model, save_model
from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT
from minillm_lib.tokenizers import CharTokenizer

V = 41


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def small_gpt(**overrides) -> GPT:
    fields = dict(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=32, bias=True)
    return GPT(GPTConfig(**{**fields, **overrides})).eval()


def same_logits(a: GPT, b: GPT) -> None:
    idx = torch.randint(0, V, (2, 16))
    with torch.no_grad():
        assert torch.equal(a(idx)[0], b(idx)[0])


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(tie_weights=False, bias=False),
    dict(pos_encoding="rope", norm="rmsnorm", mlp="swiglu", n_kv_head=2, tie_weights=False),
    dict(pos_encoding="sinusoidal"),
])
def test_save_load_round_trip(tmp_path, overrides):
    model = small_gpt(**overrides)
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt").eval()
    assert loaded.config == model.config
    same_logits(model, loaded)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]


def test_tied_weights_are_saved_once_and_retied(tmp_path):
    save_model(small_gpt(tie_weights=True), tmp_path)
    assert "lm_head.weight" not in load_file(tmp_path / "model.safetensors")
    loaded = load_model(tmp_path)
    assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_config_json_holds_config_version_and_checksum(tmp_path):
    model = small_gpt()
    save_model(model, tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["minillm_format_version"] == 2
    assert GPTConfig.from_dict(meta["config"]) == model.config
    assert meta["weights_sha256"] == hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()
    assert "tokenizer" not in meta  # recorded only when saved with one


def replace_weights(folder, tensors) -> None:
    """Write ``tensors`` as the folder's model.safetensors and record their checksum in
    config.json, as someone editing both files on purpose would."""
    save_file(tensors, folder / "model.safetensors")
    meta = json.loads((folder / "config.json").read_text())
    meta["weights_sha256"] = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(meta))


def test_dtype_is_preserved(tmp_path):
    model = small_gpt().to(torch.bfloat16)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.transformer.wte.weight.dtype == torch.bfloat16
    same_logits(model, loaded)


def test_missing_directory_and_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_model(tmp_path / "nowhere")
    save_model(small_gpt(), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_model(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)


def test_shape_mismatch_names_every_tensor(tmp_path):
    save_model(small_gpt(), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["vocab_size"] = V + 1  # the config now disagrees with the weights
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"'transformer.wte.weight' has shape \(41, 32\), config expects \(42, 32\)"):
        load_model(tmp_path)


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    save_model(small_gpt(), tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["transformer.h.1.mlp.c_fc.bias"]
    tensors["transformer.h.2.mlp.c_fc.bias"] = torch.zeros(128)
    replace_weights(tmp_path, tensors)
    with pytest.raises(ValueError) as err:
        load_model(tmp_path)
    message = str(err.value)
    assert "missing tensor 'transformer.h.1.mlp.c_fc.bias' (expected shape (128,))" in message
    assert "unexpected tensor 'transformer.h.2.mlp.c_fc.bias'" in message


def test_corrupted_files_are_clear_errors(tmp_path):
    save_model(small_gpt(), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated download
    with pytest.raises(ValueError, match="model.safetensors' does not match the SHA-256 checksum"):
        load_model(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(  # a version 1 file: no checksum to compare
        {"minillm_format_version": 1, "config": meta["config"]}))
    with pytest.raises(ValueError, match="model.safetensors' is not a valid safetensors file"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json' is not valid JSON"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 3}))  # e.g. a Hugging Face config
    with pytest.raises(ValueError, match="not a minillm model config"):
        load_model(tmp_path)


def test_newer_format_version_is_refused(tmp_path):
    save_model(small_gpt(), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["minillm_format_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format version 99 is newer"):
        load_model(tmp_path)


def test_failed_model_save_leaves_previous_checkpoint_loadable(tmp_path):
    good = small_gpt()
    save_model(good, tmp_path)
    broken = small_gpt(tie_weights=False)
    broken.lm_head.weight = broken.transformer.wte.weight  # shares memory but config says untied
    with pytest.raises(RuntimeError):  # safetensors refuses tensors that share memory
        save_model(broken, tmp_path)
    same_logits(good, load_model(tmp_path))


def test_a_model_saved_with_its_tokenizer_refuses_any_other(tmp_path):
    tokenizer = CharTokenizer.from_text("".join(chr(ord("a") + i) for i in range(V)))
    save_model(small_gpt(), tmp_path, tokenizer=tokenizer)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["tokenizer"] == {"vocab_size": V, "sha256": tokenizer.fingerprint()}
    check_tokenizer(tmp_path, tokenizer)  # its own: fine
    check_tokenizer(tmp_path, CharTokenizer(list(tokenizer.chars)))  # an equal one: fine
    swapped = CharTokenizer([tokenizer.chars[1], tokenizer.chars[0], *tokenizer.chars[2:]])
    with pytest.raises(ValueError, match="not the one the model .* was saved with .*fingerprint"):
        check_tokenizer(tmp_path, swapped)
    with pytest.raises(ValueError, match="the tokenizer has 3 tokens but the model .* has vocab_size 41"):
        check_tokenizer(tmp_path, CharTokenizer.from_text("abc"))
    with pytest.raises(ValueError, match="the tokenizer has 3 tokens but the model's vocab_size is 41"):
        save_model(small_gpt(), tmp_path / "other", tokenizer=CharTokenizer.from_text("abc"))


def test_a_model_saved_without_a_tokenizer_checks_only_its_size(tmp_path):
    save_model(small_gpt(), tmp_path)
    check_tokenizer(tmp_path, CharTokenizer.from_text("".join(chr(ord("A") + i) for i in range(V))))
    with pytest.raises(ValueError, match="has vocab_size 41"):
        check_tokenizer(tmp_path, CharTokenizer.from_text("abc"))


@pytest.mark.parametrize("field, value, message", [
    ("n_layer", 10**9, "it says n_layer=1000000000, the file holds 2 layers"),
    ("vocab_size", 10**12, "'transformer.wte.weight' has shape (41, 32), config expects (1000000000000, 32)"),
    ("mlp_hidden", 2**40, "'transformer.h.0.mlp.c_fc.weight' has shape (128, 32)"),
])
def test_a_config_asking_for_a_huge_model_is_refused_before_any_memory_is_taken(tmp_path, field, value, message):
    save_model(small_gpt(), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"][field] = value
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=re.escape(message)):
        load_model(tmp_path)
