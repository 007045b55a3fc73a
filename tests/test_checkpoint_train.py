"""Tests for the training checkpoint in minillm_lib.checkpoint: exact resume, atomic saves,
clear errors for corrupted or mismatched checkpoints."""

import json

import pytest
import torch

from minillm_lib.checkpoint import (
    TRAIN_STATE_FILE,
    has_training_checkpoint,
    load_training_checkpoint,
    save_training_checkpoint,
)
from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT
from minillm_lib.training import TrainConfig, configure_optimizer, train

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
    with pytest.raises(ValueError, match="transformer.wte.weight' has shape"):
        load_training_checkpoint(tmp_path, *fresh())
