"""Tests for minillm_lib.zoo: a tiny recipe trains once, caches, and loads back identical."""

import json
import subprocess
import sys
import threading

import pytest
import torch

from minillm_lib.config import PRESETS
from minillm_lib.data import load_corpus, train_val_split
from minillm_lib.training import evaluate
from minillm_lib.zoo import DONE_FILE, RECIPES, course_model_info, load_course_model, recipe_hash


@pytest.fixture
def tiny_recipe(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Now is the winter of our discontent\nMade glorious summer by this sun of York;\n" * 40)
    recipe = json.loads(json.dumps(RECIPES["shakespeare-char"]))  # a deep copy, as plain data
    recipe["corpus"] = str(corpus)
    recipe["model"].update(block_size=16, n_layer=1, n_head=2, n_embd=32)
    recipe["train"].update(batch_size=4, max_iters=8, warmup_iters=2, eval_batch_size=16)
    return recipe


def weights(model):
    return {name: t.clone() for name, t in model.state_dict().items()}


def test_a_recipe_trains_once_then_loads_from_the_cache(tmp_path, tiny_recipe):
    model, tokenizer = load_course_model("tiny", cache_dir=tmp_path / "cache", recipe=tiny_recipe, progress=False)
    folder = tmp_path / "cache" / f"tiny-{recipe_hash(tiny_recipe)}"
    done = json.loads((folder / DONE_FILE).read_text())
    assert done["recipe"] == tiny_recipe and done["val"]["step"] == 8
    assert not model.training
    modified = (folder / "model.safetensors").stat().st_mtime_ns

    again, tokenizer_again = load_course_model("tiny", cache_dir=tmp_path / "cache", recipe=tiny_recipe,
                                               progress=False)
    assert (folder / "model.safetensors").stat().st_mtime_ns == modified  # not trained again
    assert weights(again).keys() == weights(model).keys()
    for name, tensor in weights(model).items():
        assert torch.equal(weights(again)[name], tensor), name
    assert tokenizer_again.decode(tokenizer.encode("winter")) == "winter"
    assert tokenizer_again.vocab_size == tokenizer.vocab_size


def test_training_is_deterministic_whatever_the_callers_thread_count(tmp_path, tiny_recipe):
    # The real recipe's model shape (big enough for matmuls to be split over threads), 3 steps.
    recipe = json.loads(json.dumps(tiny_recipe))
    recipe["model"] = RECIPES["shakespeare-char"]["model"]
    recipe["train"].update(batch_size=12, max_iters=3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a, _ = load_course_model("tiny", cache_dir=tmp_path / "a", recipe=recipe, progress=False)
        torch.set_num_threads(2)
        b, _ = load_course_model("tiny", cache_dir=tmp_path / "b", recipe=recipe, progress=False)
        assert torch.get_num_threads() == 2  # restored after training
    finally:
        torch.set_num_threads(threads)
    for name, tensor in weights(a).items():
        assert torch.equal(weights(b)[name], tensor), name


def test_a_changed_recipe_gets_its_own_folder(tiny_recipe):
    changed = json.loads(json.dumps(tiny_recipe))
    changed["train"]["lr"] = 5e-4
    assert recipe_hash(changed) != recipe_hash(tiny_recipe)
    assert recipe_hash(json.loads(json.dumps(tiny_recipe))) == recipe_hash(tiny_recipe)


def test_a_second_process_waits_for_the_first_ones_training(tmp_path, tiny_recipe):
    import fcntl

    cache = tmp_path / "cache"
    cache.mkdir()
    folder_name = f"tiny-{recipe_hash(tiny_recipe)}"
    results = []
    with open(cache / f"{folder_name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as if another process were training this recipe
        waiter = threading.Thread(target=lambda: results.append(
            load_course_model("tiny", cache_dir=cache, recipe=tiny_recipe, progress=False)))
        waiter.start()
        waiter.join(timeout=2.0)
        assert waiter.is_alive() and not (cache / folder_name).exists()  # blocked on the lock
        fcntl.flock(lock, fcntl.LOCK_UN)
    waiter.join(timeout=120)
    assert results and (cache / folder_name / DONE_FILE).is_file()


def test_unknown_course_model_is_named():
    with pytest.raises(ValueError, match="unknown course model 'nope'.*shakespeare-char"):
        load_course_model("nope")


def test_info_records_the_exact_validation_loss_of_the_cached_model(tmp_path, tiny_recipe):
    cache = tmp_path / "cache"
    info = course_model_info("tiny", cache_dir=cache, recipe=tiny_recipe)  # trains first
    assert info["recipe"] == tiny_recipe and info["torch_version"] == torch.__version__
    model, tokenizer = load_course_model("tiny", cache_dir=cache, recipe=tiny_recipe, progress=False)
    ids = torch.tensor(tokenizer.encode(load_corpus(tiny_recipe["corpus"])))
    _, val_ids = train_val_split(ids)
    again = evaluate(model, val_ids, tiny_recipe["train"]["eval_batch_size"])
    assert again["loss"] == pytest.approx(info["val"]["loss"], rel=1e-6)


def test_the_cache_folder_is_a_run_folder(tmp_path, tiny_recipe):
    load_course_model("tiny", cache_dir=tmp_path / "cache", recipe=tiny_recipe, progress=False)
    folder = tmp_path / "cache" / f"tiny-{recipe_hash(tiny_recipe)}"
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["event"] == "step"] == list(range(1, 9))
    assert (folder / "train_state.json").is_file() and (folder / "tokenizer.json").is_file()
    done = subprocess.run([sys.executable, "-m", "minillm_lib", "sample", str(folder), "--prompt",
                           "Now", "--max-new-tokens", "20"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("Now") and len(done.stdout) > 20


def test_the_command_line_trains_the_course_recipe_step_for_step(tmp_path, tiny_recipe):
    """`minillm train` with the recipe's settings takes the very steps the course model took:
    with --lr-decay-iters fixing the schedule's horizon, its first steps are bit-identical."""
    load_course_model("tiny", cache_dir=tmp_path / "cache", recipe=tiny_recipe, progress=False)
    folder = tmp_path / "cache" / f"tiny-{recipe_hash(tiny_recipe)}"
    m, t = tiny_recipe["model"], tiny_recipe["train"]
    preset = next(name for name, p in PRESETS.items()
                  if {k: v for k, v in p.items() if k not in ("block_size", "n_layer", "n_head",
                                                              "n_embd")}
                  == {k: v for k, v in m.items() if k not in ("block_size", "n_layer", "n_head",
                                                              "n_embd")})
    flags = ["--block-size", m["block_size"], "--n-layer", m["n_layer"], "--n-head", m["n_head"],
             "--n-embd", m["n_embd"], "--batch-size", t["batch_size"], "--lr", t["lr"],
             "--min-lr", t["min_lr"], "--warmup-iters", t["warmup_iters"],
             "--lr-decay-iters", t["max_iters"], "--max-iters", 5]
    for name in ("optimizer", "schedule", "decay_fraction", "weight_decay", "grad_clip"):
        if name in t:
            flags += [f"--{name.replace('_', '-')}", t[name]]
    done = subprocess.run([sys.executable, "-m", "minillm_lib", "train", "--data", tiny_recipe["corpus"],
                           "--preset", preset, *map(str, flags), "--device", "cpu", "--no-progress",
                           "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    def losses(path):
        log = [json.loads(line) for line in path.read_text().splitlines()]
        return [r["loss"] for r in log if r["event"] == "step"]

    assert losses(tmp_path / "cli" / "train_log.jsonl") == losses(folder / "train_log.jsonl")[:5]
