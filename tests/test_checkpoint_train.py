"""Tests for the training checkpoint in minillm_lib.checkpoint: exact resume, atomic saves,
clear errors for corrupted or mismatched checkpoints."""

import hashlib
import json
import re

import pytest
import torch

from minillm_lib.checkpoint import (
    TRAIN_STATE_FILE,
    has_training_checkpoint,
    load_checkpoint_model,
    load_model,
    load_training_checkpoint,
    save_training_checkpoint,
    tidy_run_folder,
)
from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT
from minillm_lib.training import NonFiniteWeightsError, TrainConfig, configure_optimizer, train

VOCAB = 20


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1)
    return GPT(GPTConfig.from_preset("baby", **{**cfg, **overrides}))


DATA = torch.randint(VOCAB, (3000,), generator=torch.Generator().manual_seed(0))
TRAIN, VAL = DATA[:2500], DATA[2500:]


def config(out_dir=None, **overrides) -> TrainConfig:
    settings = dict(batch_size=4, grad_accum_steps=2, max_iters=8, lr_decay_iters=8, warmup_iters=2,
                    eval_interval=2, device="cpu", out_dir=None if out_dir is None else str(out_dir))
    return TrainConfig(**{**settings, **overrides})


def trained_checkpoint(tmp_path, steps: int = 2):
    """A model, optimizer and batch generator after ``steps`` steps, saved in tmp_path."""
    model = tiny_model()
    train(model, TRAIN, None, config(tmp_path, max_iters=steps), progress=False)
    return model


def fresh():
    model = tiny_model(seed=99)
    return model, configure_optimizer(model), torch.Generator()


def test_resume_reproduces_the_uninterrupted_losses_exactly(tmp_path):
    # Dropout, gradient accumulation and the lr schedule all continue where they stopped.
    straight = train(tiny_model(), TRAIN, VAL, config(), progress=False)
    first = train(tiny_model(), TRAIN, VAL, config(tmp_path, max_iters=4), progress=False)
    # A different initialisation: everything must come from the checkpoint.
    second = train(tiny_model(seed=1), TRAIN, VAL, config(tmp_path), resume=True, progress=False)
    assert first.losses + second.losses == straight.losses
    assert [s["step"] for s in second.steps] == [5, 6, 7, 8]
    assert first.evals + second.evals == straight.evals


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        train(tiny_model(), TRAIN, None, config(tmp_path), resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        train(tiny_model(), TRAIN, None, config(None), resume=True, progress=False)


def test_checkpoint_is_safetensors_plus_readable_json(tmp_path):
    trained_checkpoint(tmp_path, steps=4)  # saved at steps 2 and 4
    assert has_training_checkpoint(tmp_path) and not has_training_checkpoint(tmp_path / "elsewhere")
    meta = json.loads((tmp_path / TRAIN_STATE_FILE).read_text())
    assert meta["step"] == 4
    assert meta["tensors_file"] == "train_state-00000004.safetensors"
    assert meta["model_config"]["n_layer"] == 2 and meta["train_config"]["batch_size"] == 4
    assert [g["weight_decay"] for g in meta["optimizer"]["param_groups"]] == [0.1, 0.0]
    # Only the current tensors file is kept.
    assert sorted(p.name for p in tmp_path.glob("train_state-*")) == ["train_state-00000004.safetensors"]
    assert not list(tmp_path.glob("*.tmp"))


def test_load_restores_model_optimizer_and_random_states(tmp_path):
    model = tiny_model()
    optimizer = configure_optimizer(model)
    _, loss = model(TRAIN[:16][None], TRAIN[1:17][None])
    loss.backward()
    optimizer.step()
    batches = torch.Generator().manual_seed(123)
    torch.randint(10, (5,), generator=batches)
    torch.manual_seed(7)
    save_training_checkpoint(tmp_path, model, optimizer, step=1, batch_rng=batches)
    expected_batch = torch.randint(1000, (4,), generator=batches)
    expected_global = torch.rand(3)

    other, other_opt, other_batches = fresh()
    torch.manual_seed(0)
    assert load_training_checkpoint(tmp_path, other, other_opt, other_batches) == 1
    for name, tensor in model.state_dict().items():
        assert torch.equal(other.state_dict()[name], tensor), name
    assert other.lm_head.weight is other.transformer.wte.weight  # still tied
    for p, q in zip(model.parameters(), other.parameters(), strict=True):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(optimizer.state[p][key], other_opt.state[q][key])
    assert other_opt.param_groups[0]["betas"] == optimizer.param_groups[0]["betas"]
    assert torch.equal(torch.randint(1000, (4,), generator=other_batches), expected_batch)
    assert torch.equal(torch.rand(3), expected_global)


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path):
    model = trained_checkpoint(tmp_path, steps=2)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.transformer.wte.weight.add_(1.0)
    # The JSON cannot be written (an object JSON cannot hold): the save fails after the
    # new tensors file is written, as a crash at that moment would.
    with pytest.raises(TypeError):
        save_training_checkpoint(tmp_path, model, configure_optimizer(model), step=4,
                                 batch_rng=torch.Generator(), train_config={"bad": object()})
    other, opt, batches = fresh()
    assert load_training_checkpoint(tmp_path, other, opt, batches) == 2
    for name, tensor in weights.items():
        assert torch.equal(other.state_dict()[name], tensor), name
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written files left behind


def test_truncated_tensors_file_is_a_clear_error(tmp_path):
    trained_checkpoint(tmp_path)
    path = tmp_path / "train_state-00000002.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="train_state-00000002.safetensors.*corrupted"):
        load_training_checkpoint(tmp_path, *fresh())


def test_missing_tensors_file_is_named(tmp_path):
    trained_checkpoint(tmp_path)
    (tmp_path / "train_state-00000002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="train_state-00000002.safetensors"):
        load_training_checkpoint(tmp_path, *fresh())


def test_garbled_json_is_a_clear_error(tmp_path):
    trained_checkpoint(tmp_path)
    (tmp_path / TRAIN_STATE_FILE).write_text('{"step": 2, "tensors_')
    with pytest.raises(ValueError, match="train_state.json.*not valid JSON"):
        load_training_checkpoint(tmp_path, *fresh())
    (tmp_path / TRAIN_STATE_FILE).write_text('{"step": 2}')
    with pytest.raises(ValueError, match="not a minillm training checkpoint"):
        load_training_checkpoint(tmp_path, *fresh())


def test_newer_format_is_refused(tmp_path):
    trained_checkpoint(tmp_path)
    meta = json.loads((tmp_path / TRAIN_STATE_FILE).read_text())
    meta["minillm_train_state_version"] = 99
    (tmp_path / TRAIN_STATE_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="version 99"):
        load_training_checkpoint(tmp_path, *fresh())


def test_a_different_model_is_named_field_by_field(tmp_path):
    trained_checkpoint(tmp_path)
    model = tiny_model(n_layer=3, n_embd=64)
    with pytest.raises(ValueError, match="different model.*n_layer: checkpoint 2, model 3.*n_embd"):
        load_training_checkpoint(tmp_path, model, configure_optimizer(model), torch.Generator())


def test_different_optimizer_groups_are_refused(tmp_path):
    trained_checkpoint(tmp_path)
    model = tiny_model(seed=5)
    optimizer = torch.optim.AdamW(model.parameters())  # one group instead of two
    with pytest.raises(ValueError, match="parameter groups"):
        load_training_checkpoint(tmp_path, model, optimizer, torch.Generator())


def test_tensors_of_the_wrong_shape_are_named(tmp_path):
    trained_checkpoint(tmp_path)
    # Swap in the tensors file of a wider model under the same name.
    wide = tiny_model(n_embd=64)
    save_training_checkpoint(tmp_path / "wide", wide, configure_optimizer(wide), step=2,
                             batch_rng=torch.Generator())
    (tmp_path / "wide" / "train_state-00000002.safetensors").replace(tmp_path / "train_state-00000002.safetensors")
    meta = json.loads((tmp_path / TRAIN_STATE_FILE).read_text())
    meta["tensors_sha256"] = json.loads((tmp_path / "wide" / TRAIN_STATE_FILE).read_text())["tensors_sha256"]
    (tmp_path / TRAIN_STATE_FILE).write_text(json.dumps(meta))  # as if edited on purpose
    with pytest.raises(ValueError, match="transformer.wte.weight' has shape"):
        load_training_checkpoint(tmp_path, *fresh())


# ---------------------------------------------------------------- integrity (issue 15)


def test_a_diverged_update_is_never_checkpointed(tmp_path):
    model = tiny_model()
    train(model, TRAIN, None, config(tmp_path, max_iters=2, ckpt_interval=1), progress=False)
    good = {name: t.clone() for name, t in model.state_dict().items()}
    # No float32 weight survives this learning rate: step 3's loss (measured before its
    # update) is still finite, the weights after the update are not.
    with pytest.raises(NonFiniteWeightsError, match="after step 3") as info:
        train(model, TRAIN, None, config(tmp_path, max_iters=4, ckpt_interval=1, lr=1e39, min_lr=0.0,
                                         warmup_iters=0, grad_clip=0.0), resume=True, progress=False)
    assert info.value.step == 3
    assert not all(torch.isfinite(p).all() for p in model.parameters())
    other, opt, batches = fresh()
    assert load_training_checkpoint(tmp_path, other, opt, batches) == 2
    saved = load_model(tmp_path).state_dict()
    for name, tensor in good.items():
        assert torch.equal(other.state_dict()[name], tensor) and torch.equal(saved[name], tensor), name


def test_the_tensors_file_is_checked_against_its_recorded_checksum(tmp_path):
    trained_checkpoint(tmp_path)
    meta = json.loads((tmp_path / TRAIN_STATE_FILE).read_text())
    path = tmp_path / meta["tensors_file"]
    assert meta["minillm_train_state_version"] == 2
    assert meta["tensors_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of one optimizer moment: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="train_state-00000002.safetensors' does not match the SHA-256"):
        load_training_checkpoint(tmp_path, *fresh())


def test_a_version_1_checkpoint_without_a_checksum_still_loads(tmp_path):
    model = trained_checkpoint(tmp_path)
    meta = json.loads((tmp_path / TRAIN_STATE_FILE).read_text())
    del meta["tensors_sha256"]
    meta["minillm_train_state_version"] = 1
    (tmp_path / TRAIN_STATE_FILE).write_text(json.dumps(meta))
    other, opt, batches = fresh()
    assert load_training_checkpoint(tmp_path, other, opt, batches) == 2
    assert all(torch.equal(other.state_dict()[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("key, value, message", [
    ("tensors_file", "/etc/passwd.safetensors", "tensors_file must name a .safetensors file inside"),
    ("tensors_file", "../run2/train_state-00000002.safetensors", "tensors_file"),
    ("step", -1, "step must be an integer >= 0, got -1"),
    ("step", 2.5, "step must be an integer >= 0, got 2.5"),
    ("minillm_train_state_version", "1", "minillm_train_state_version must be a positive integer"),
    ("tensors_sha256", "abc", "tensors_sha256 must be 64 hex digits"),
    ("model_config", [1], "model_config must be a JSON object"),
])
def test_every_field_of_train_state_json_is_checked(tmp_path, key, value, message):
    trained_checkpoint(tmp_path)
    meta = json.loads((tmp_path / TRAIN_STATE_FILE).read_text())
    meta[key] = value
    (tmp_path / TRAIN_STATE_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"train_state.json'.*{re.escape(message)}"):
        load_training_checkpoint(tmp_path, *fresh())


def test_optimizer_hyperparameters_of_the_wrong_kind_are_refused(tmp_path):
    trained_checkpoint(tmp_path)
    meta = json.loads((tmp_path / TRAIN_STATE_FILE).read_text())
    meta["optimizer"]["param_groups"][0]["betas"] = [0.9]
    (tmp_path / TRAIN_STATE_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="optimizer group 0 has betas=\\[0.9\\]"):
        load_training_checkpoint(tmp_path, *fresh())
    meta["optimizer"]["param_groups"][0]["betas"] = [0.9, 0.99]
    meta["optimizer"]["param_groups"][1]["lr"] = "fast"
    (tmp_path / TRAIN_STATE_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="optimizer group 1 has lr='fast'"):
        load_training_checkpoint(tmp_path, *fresh())


def test_the_checkpoint_model_is_rebuilt_from_the_checkpoint_alone(tmp_path):
    model = trained_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "config.json").write_text("{garbage")
    rebuilt = load_checkpoint_model(tmp_path)
    assert rebuilt.config == model.config
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in model.state_dict().items())


def test_tidy_removes_what_killed_saves_left_and_keeps_the_checkpoint(tmp_path):
    trained_checkpoint(tmp_path)
    (tmp_path / ".train_state.json.x8y9.tmp").write_text("{")
    (tmp_path / "train_state-00000004.safetensors").write_bytes(b"never pointed at")
    assert tidy_run_folder(tmp_path) == [".train_state.json.x8y9.tmp", "train_state-00000004.safetensors"]
    assert load_training_checkpoint(tmp_path, *fresh()) == 2
    (tmp_path / TRAIN_STATE_FILE).write_text("{")  # unreadable: no tensors file may go
    with pytest.raises(ValueError, match="not valid JSON"):
        tidy_run_folder(tmp_path)
    assert (tmp_path / "train_state-00000002.safetensors").is_file()
