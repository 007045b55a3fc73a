"""Tests for minillm_lib.train: config checks, parameter groups, schedule, evaluation, the loop."""

import dataclasses
import json
import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from minillm_lib.checkpoint import load_model, load_training_checkpoint
from minillm_lib.config import PRESETS, TRAIN_PRESETS, GPTConfig
from minillm_lib.data import get_batch
from minillm_lib.model import GPT
from minillm_lib.tokenizers import BPETokenizer, CharTokenizer
from minillm_lib.training import (
    NonFiniteLossError,
    TrainConfig,
    configure_optimizer,
    decay_groups,
    evaluate,
    lr_at,
    measure_chars_per_token,
    resolve_device,
    train,
    train_step,
)

VOCAB = 24


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=VOCAB, block_size=16, n_layer=1, n_head=2, n_embd=32, dropout=0.0)
    return GPT(GPTConfig.from_preset("baby", **{**cfg, **overrides}))


def token_data(n: int = 4000, seed: int = 0) -> torch.Tensor:
    """A learnable sequence: a repeating pattern with some noise."""
    pattern = torch.arange(n) % 7 * 3 % VOCAB
    noise = torch.randint(VOCAB, (n,), generator=torch.Generator().manual_seed(seed))
    keep = torch.rand(n, generator=torch.Generator().manual_seed(seed + 1)) < 0.8
    return torch.where(keep, pattern, noise)


def quick(**overrides) -> TrainConfig:
    settings = dict(batch_size=8, max_iters=6, warmup_iters=2, eval_interval=3, device="cpu")
    return TrainConfig(**{**settings, **overrides})


# ---------------------------------------------------------------- TrainConfig


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0), ("max_iters", -1), ("grad_accum_steps", 1.5), ("warmup_iters", -2),
        ("eval_interval", -1), ("lr", -1e-3), ("lr", math.inf), ("min_lr", -1.0),
        ("weight_decay", float("nan")), ("grad_clip", -1.0), ("betas", (0.9, 1.0)), ("betas", (0.9,)),
        ("dtype", "float16"), ("device", "toaster"), ("lr_decay_iters", 0), ("ckpt_interval", 0),
        ("eval_batch_size", True),
    ],
)
def test_bad_train_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})


def test_min_lr_above_lr_is_refused():
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)


def test_train_presets_belong_to_model_presets_and_build_valid_configs():
    assert TRAIN_PRESETS and set(TRAIN_PRESETS) <= set(PRESETS)
    assert TrainConfig.from_preset("baby") == TrainConfig()  # the defaults are the baby's recipe
    for name, recipe in TRAIN_PRESETS.items():
        cfg = TrainConfig.from_preset(name, seed=7)
        assert cfg.seed == 7 and all(getattr(cfg, k) == (tuple(v) if k == "betas" else v)
                                     for k, v in recipe.items() if k != "seed")
    assert TrainConfig.from_preset("gpt2") == TrainConfig()  # no recipe of its own: the defaults
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        TrainConfig.from_preset("nope")


def test_train_config_round_trips_through_json():
    cfg = TrainConfig(betas=(0.8, 0.95), lr_decay_iters=500)
    assert TrainConfig(**json.loads(json.dumps(cfg.to_dict()))) == cfg


# ---------------------------------------------------------------- optimizer and schedule


def test_decay_groups_decay_weight_matrices_only():
    model = tiny_model(bias=True, n_layer=2)
    decay, no_decay = decay_groups(model)
    for name in decay:
        assert name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")), name
    assert "transformer.wte.weight" in no_decay  # tied with lm_head: one parameter, not decayed
    assert "transformer.wpe.weight" in no_decay
    assert any(name.endswith("ln_1.bias") for name in no_decay)
    assert any(name.endswith("c_attn.bias") for name in no_decay)
    assert len(decay) == 2 * 4  # 4 matrices per block
    assert sum(p.numel() for p in [*decay.values(), *no_decay.values()]) == model.num_params()


def test_untied_lm_head_is_decayed_and_frozen_parameters_are_left_out():
    model = tiny_model(tie_weights=False)
    model.transformer.ln_f.weight.requires_grad_(False)
    decay, no_decay = decay_groups(model)
    assert "lm_head.weight" in decay and "transformer.wte.weight" in no_decay
    assert "transformer.ln_f.weight" not in decay | no_decay


def test_configure_optimizer_builds_adamw_with_two_groups():
    model = tiny_model()
    opt = configure_optimizer(model, lr=3e-4, weight_decay=0.05, betas=(0.9, 0.95))
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all(g["lr"] == 3e-4 and g["betas"] == (0.9, 0.95) for g in opt.param_groups)
    assert all(g["fused"] for g in opt.param_groups)  # the one-kernel update, on CPU by default
    plain = configure_optimizer(model, fused=False)
    assert not any(g["fused"] for g in plain.param_groups)


def test_lr_warms_up_linearly_then_follows_a_cosine_down_to_min_lr():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=10, lr_decay_iters=110, max_iters=200)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(4, cfg) == pytest.approx(5e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way down the cosine
    assert lr_at(110, cfg) == lr_at(150, cfg) == 1e-4
    after_warmup = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in pairwise(after_warmup))


def test_lr_decay_matches_torch_cosine_annealing():
    cfg = TrainConfig(lr=2e-3, min_lr=2e-4, warmup_iters=5, lr_decay_iters=45, max_iters=45)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40, eta_min=cfg.min_lr)
    for step in range(5, 46):
        assert lr_at(step, cfg) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()


def test_lr_decay_iters_defaults_to_max_iters():
    cfg = TrainConfig(max_iters=50, warmup_iters=0)
    assert lr_at(49, cfg) > cfg.min_lr and lr_at(50, cfg) == cfg.min_lr


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    for name, why in [("meta", "not supported"), ("cpu:1", "not available"), ("gpu", "unknown device")]:
        with pytest.raises(ValueError) as err:
            resolve_device(name)
        assert why in str(err.value) and f"'{name}'" in str(err.value)


# ---------------------------------------------------------------- evaluation


def test_evaluate_a_uniform_model_gives_ln_vocab_size():
    model = tiny_model()
    with torch.no_grad():
        model.transformer.wte.weight.zero_()  # tied: all logits are 0
    result = evaluate(model, token_data(500), batch_size=4, chars_per_token=2.0)
    assert result["loss"] == pytest.approx(math.log(VOCAB), rel=1e-6)
    assert result["perplexity"] == pytest.approx(VOCAB, rel=1e-5)
    assert result["bits_per_token"] == pytest.approx(math.log2(VOCAB), rel=1e-6)
    assert result["bits_per_char"] == pytest.approx(math.log2(VOCAB) / 2, rel=1e-6)


def test_evaluate_is_the_mean_over_every_target_whatever_the_batch_size():
    model = tiny_model().eval()
    data = token_data(403)  # 402 targets: 25 full windows of 16 and a tail of 2
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, 402, 16):
            x = data[start : min(start + 16, 402)][None]
            y = data[start + 1 : min(start + 17, 403)][None]
            logits, _ = model(x)
            total += F.cross_entropy(logits[0], y[0], reduction="sum").item()
            count += y.numel()
    assert count == 402
    for batch_size in (1, 7, 64):
        assert evaluate(model, data, batch_size)["loss"] == pytest.approx(total / count, rel=1e-5)
    assert "bits_per_char" not in evaluate(model, data, 8)


def test_evaluate_restores_training_mode():
    model = tiny_model(dropout=0.5).train()
    data = token_data(200)
    assert evaluate(model, data, 4)["loss"] == evaluate(model, data, 4)["loss"]  # no dropout
    assert model.training


def test_chars_per_token_is_measured_on_the_decoded_targets():
    tokenizer = BPETokenizer.train("abab abab abab cd cd", 260)
    ids = torch.tensor(tokenizer.encode("abab abab cd"))
    expected = len(tokenizer.decode(ids[1:].tolist())) / (len(ids) - 1)
    assert measure_chars_per_token(tokenizer, ids) == expected > 1
    char_tokens = torch.tensor(CharTokenizer.from_text("hello").encode("hello"))
    assert measure_chars_per_token(CharTokenizer.from_text("hello"), char_tokens) == 1.0
    with pytest.raises(ValueError, match="at least 2 tokens"):
        measure_chars_per_token(tokenizer, ids[:1])


def test_evaluate_measures_bits_per_char_with_a_tokenizer():
    text = "the cat sat on the mat, the cat sat on the hat. " * 8
    tokenizer = BPETokenizer.train(text, 270)
    ids = torch.tensor(tokenizer.encode(text))
    model = tiny_model(vocab_size=270)
    result = evaluate(model, ids, 4, tokenizer=tokenizer)
    ratio = measure_chars_per_token(tokenizer, ids)
    assert result["bits_per_char"] == pytest.approx(result["bits_per_token"] / ratio)


# ---------------------------------------------------------------- the loop


def test_training_lowers_the_validation_loss():
    data = token_data(6000)
    history = train(tiny_model(), data[:5000], data[5000:], quick(max_iters=80, eval_interval=40, lr=3e-3),
                    progress=False)
    assert [e["step"] for e in history.evals] == [0, 40, 80]
    assert history.evals[0]["loss"] == pytest.approx(math.log(VOCAB), abs=0.15)  # a fresh model guesses
    assert history.evals[-1]["loss"] < history.evals[0]["loss"] - 0.5


def test_callbacks_see_every_step_and_evaluation():
    data = token_data()
    steps, evals = [], []
    history = train(tiny_model(), data[:3000], data[3000:], quick(), on_step=steps.append,
                    on_eval=evals.append, chars_per_token=1.5, progress=False)
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert steps == history.steps and evals == history.evals
    assert set(steps[0]) == {"step", "loss", "lr", "grad_norm", "tokens_per_sec", "elapsed"}
    assert steps[0]["lr"] == lr_at(0, quick()) and steps[0]["tokens_per_sec"] > 0
    assert [e["step"] for e in evals] == [0, 3, 6]
    assert evals[-1]["bits_per_char"] == pytest.approx(evals[-1]["bits_per_token"] / 1.5)
    assert history.losses == [s["loss"] for s in steps]


def test_first_step_logs_the_loss_and_gradient_norm_of_its_batch():
    data = token_data()
    cfg = quick(max_iters=1, seed=5)
    history = train(tiny_model(), data, None, cfg, progress=False)
    model = tiny_model()  # the same initial weights, by hand
    x, y = get_batch(data, cfg.batch_size, 16, generator=torch.Generator().manual_seed(5))
    _, loss = model(x, y)
    loss.backward()
    norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))
    assert history.steps[0]["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert history.steps[0]["grad_norm"] == pytest.approx(norm.item(), rel=1e-5)


def test_gradient_accumulation_matches_one_big_batch():
    data = token_data()
    big = train(tiny_model(), data, None, quick(batch_size=8), progress=False)
    accumulated = train(tiny_model(), data, None, quick(batch_size=4, grad_accum_steps=2), progress=False)
    # Two micro-batches of 4 draw the same windows as one batch of 8.
    assert accumulated.losses == pytest.approx(big.losses, rel=1e-5)


def test_gradient_clipping_limits_the_update():
    data = token_data()

    def first_update(grad_clip: float) -> float:
        model = tiny_model()
        before = model.transformer.h[0].mlp.c_fc.weight.detach().clone()
        train(model, data, None, quick(max_iters=1, warmup_iters=0, grad_clip=grad_clip, weight_decay=0.0),
              progress=False)
        return (model.transformer.h[0].mlp.c_fc.weight - before).abs().max().item()

    # Adam's first step moves each weight by about lr whatever the gradient's size, unless
    # the gradient is clipped far below Adam's eps (1e-8).
    assert first_update(0.0) == pytest.approx(1e-3, rel=0.01)
    assert first_update(1e-10) < 1e-4


def test_training_is_reproducible_with_the_same_seed():
    data = token_data()
    a = train(tiny_model(dropout=0.2), data, None, quick(seed=3), progress=False).losses
    b = train(tiny_model(dropout=0.2), data, None, quick(seed=3), progress=False).losses
    c = train(tiny_model(dropout=0.2), data, None, quick(seed=4), progress=False).losses
    assert a == b and a != c


def test_bfloat16_autocast_trains():
    data = token_data()
    fp32 = train(tiny_model(), data, data[:500], quick(), progress=False)
    bf16 = train(tiny_model(), data, data[:500], quick(dtype="bfloat16"), progress=False)
    assert all(math.isfinite(v) for v in bf16.losses)
    assert bf16.losses == pytest.approx(fp32.losses, abs=0.05)
    assert bf16.evals[-1]["loss"] == pytest.approx(fp32.evals[-1]["loss"], abs=0.05)


@pytest.mark.skipif(
    not __import__("os").environ.get("MINILLM_SLOW_TESTS"),
    reason="torch.compile takes 15-45 s on a 2-core CPU; set MINILLM_SLOW_TESTS=1 to run",
)
def test_compiled_training_gives_the_same_losses():
    data = token_data()
    eager = train(tiny_model(), data, data[:500], quick(), progress=False)
    compiled = train(tiny_model(), data, data[:500], quick(compile=True), progress=False)
    assert compiled.losses == pytest.approx(eager.losses, rel=1e-4)


def test_progress_bar_shows_loss_and_tokens_per_second(capsys):
    train(tiny_model(), token_data(), None, quick(max_iters=2), progress=True)
    err = capsys.readouterr().err
    assert "loss" in err and "tok/s" in err
    train(tiny_model(), token_data(), None, quick(max_iters=2), progress=False)
    assert capsys.readouterr().err == ""


def test_out_dir_gets_a_model_a_checkpoint_and_a_json_lines_log(tmp_path):
    data = token_data()
    model = tiny_model()
    train(model, data[:3000], data[3000:], quick(out_dir=str(tmp_path)), progress=False)
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if r["event"] == "eval"] == [0, 3, 6]
    saved = load_model(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(saved.state_dict()[name], tensor), name


def test_an_exploding_learning_rate_stops_training_with_the_step(tmp_path):
    cfg = quick(max_iters=20, lr=1e6, min_lr=0.0, warmup_iters=0, grad_clip=0.0, ckpt_interval=1,
                out_dir=str(tmp_path))
    with pytest.raises(NonFiniteLossError, match="nan at step 2") as info:
        train(tiny_model(), token_data(), None, cfg, progress=False)
    assert info.value.step == 2
    # The checkpoint of step 1 survives, with finite weights.
    model = tiny_model()
    step = load_training_checkpoint(tmp_path, model, configure_optimizer(model), torch.Generator())
    assert step == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_an_infinite_weight_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    def poison(info):
        if info["step"] == 3:  # after step 3's update: step 4's loss is not finite
            with torch.no_grad():
                model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("inf")

    model = tiny_model()
    cfg = quick(max_iters=10, ckpt_interval=2, out_dir=str(tmp_path))
    with pytest.raises(NonFiniteLossError, match="step 4") as info:
        train(model, token_data(), None, cfg, on_step=poison, progress=False)
    assert info.value.step == 4
    restored = tiny_model()
    step = load_training_checkpoint(tmp_path, restored, configure_optimizer(restored), torch.Generator())
    assert step == 2
    assert all(torch.isfinite(p).all() for p in restored.parameters())
    assert [json.loads(r)["step"] for r in (tmp_path / "train_log.jsonl").read_text().splitlines()
            if json.loads(r)["event"] == "step"] == [1, 2, 3]



# ---------------------------------------------------------------- one step


def test_train_step_is_forward_backward_clip_and_update_by_hand():
    data = token_data()
    batches = [get_batch(data, 4, 16, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    model, by_hand = tiny_model(), tiny_model()
    optimizer = configure_optimizer(model, lr=1e-2)
    loss, grad_norm = train_step(model, optimizer, batches, grad_clip=0.5)

    reference = configure_optimizer(by_hand, lr=1e-2)
    losses = []
    for x, y in batches:
        _, batch_loss = by_hand(x, y)
        (batch_loss / 2).backward()
        losses.append(batch_loss.item())
    norm = torch.nn.utils.clip_grad_norm_(by_hand.parameters(), 0.5)
    reference.step()
    assert loss == pytest.approx(sum(losses) / 2) and grad_norm == pytest.approx(norm.item())
    for p, q in zip(model.parameters(), by_hand.parameters(), strict=True):
        torch.testing.assert_close(p, q)
        assert p.grad is None  # zeroed for the next step


def test_train_step_refuses_a_nan_loss_before_the_update():
    model = tiny_model()
    optimizer = configure_optimizer(model)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    before[0] = model.transformer.wte.weight.detach().clone()  # tied: the NaN is in wte too
    x, y = get_batch(token_data(), 2, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(NonFiniteLossError, match="at step 8"):
        train_step(model, optimizer, [(x, y)], step=7)
    for p, q in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, equal_nan=True)  # not updated


# ---------------------------------------------------------------- Muon and warm-up-stable-decay


def test_wsd_schedule_is_flat_then_falls_linearly_to_min_lr():
    cfg = quick(max_iters=100, warmup_iters=10, lr=1.0, min_lr=0.1, schedule="wsd",
                decay_fraction=0.2)
    lrs = [lr_at(step, cfg) for step in range(101)]
    assert lrs[:10] == [(s + 1) / 10 for s in range(10)]  # the same warm-up as cosine
    assert all(lr == 1.0 for lr in lrs[10:83])  # stable until the last 20% of 90 steps
    decay_start = 100 - 0.2 * 90
    for step in range(83, 100):  # then a straight line down to min_lr at step 100
        assert lrs[step] == pytest.approx(1.0 - 0.9 * (step - decay_start) / (100 - decay_start))
    assert lrs[100] == 0.1


@pytest.mark.parametrize("field, value, message", [
    ("optimizer", "sgd", "optimizer must be one of"), ("schedule", "linear", "schedule must be"),
    ("decay_fraction", 0.0, "decay_fraction must be in"), ("decay_fraction", 1.5, "decay_fraction"),
])
def test_bad_optimizer_and_schedule_settings_are_named(field, value, message):
    with pytest.raises(ValueError, match=f"TrainConfig.{message}"):
        quick(**{field: value})


def test_muon_takes_the_block_matrices_and_adamw_the_rest():
    model = tiny_model(tie_weights=False)
    optimizer = configure_optimizer(model, optimizer="muon", lr=2e-3, weight_decay=0.1)
    muon, adamw = optimizer.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    in_muon = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    in_adamw = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert in_muon == {n for n, p in model.named_parameters()
                       if p.dim() == 2 and n.startswith("transformer.h.")}
    assert "lm_head.weight" in in_adamw and "transformer.wte.weight" in in_adamw
    assert in_muon | in_adamw == set(names.values()) and not in_muon & in_adamw
    assert muon.param_groups[0]["adjust_lr_fn"] == "match_rms_adamw"
    assert [g["lr"] for g in optimizer.param_groups] == [2e-3] * len(optimizer.param_groups)


def test_muon_steps_like_torch_muon_and_adamw_side_by_side():
    data = token_data()
    x, y = get_batch(data, 4, 16, generator=torch.Generator().manual_seed(0))
    ours, reference = tiny_model(), tiny_model()
    train_step(ours, configure_optimizer(ours, optimizer="muon", lr=1e-2), [(x, y)], grad_clip=0)
    _, loss = reference(x, y)
    loss.backward()
    matrices = [p for n, p in reference.named_parameters()
                if p.dim() == 2 and n.startswith("transformer.h.")]
    others = [p for p in reference.parameters() if all(p is not q for q in matrices)]
    torch.optim.Muon(matrices, lr=1e-2, weight_decay=0.1, adjust_lr_fn="match_rms_adamw").step()
    embeddings = [reference.transformer.wte.weight, reference.transformer.wpe.weight]
    decayed = [p for p in others if p.dim() >= 2 and all(p is not e for e in embeddings)]
    plain = [p for p in others if all(p is not q for q in decayed)]
    torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}],
                      lr=1e-2, betas=(0.9, 0.99), fused=True).step()
    for p, q in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_a_muon_run_resumes_bit_for_bit(tmp_path):
    data = token_data()
    cfg = quick(max_iters=6, optimizer="muon", schedule="wsd", eval_interval=0)
    straight = train(tiny_model(), data, None, cfg, progress=False).losses
    train(tiny_model(), data, None, dataclasses.replace(cfg, max_iters=3, out_dir=str(tmp_path)),
          progress=False)
    resumed = train(tiny_model(seed=5), data, None, dataclasses.replace(cfg, out_dir=str(tmp_path)),
                    resume=True, progress=False).losses
    assert resumed == straight[3:]
