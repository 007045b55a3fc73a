"""End-to-end tests of the command line: python -m minillm_lib train / sample / eval / export."""

import hashlib
import json
import shutil
import subprocess
import sys

import pytest
import torch

from minillm_lib.checkpoint import load_model
from minillm_lib.cli import main
from minillm_lib.config import PRESETS
from minillm_lib.data import train_val_split
from minillm_lib.evaluation import NGramModel, choice_accuracy, next_line_task, score_choices
from minillm_lib.sampling import generate
from minillm_lib.tokenizers import load_tokenizer
from minillm_lib.training import TrainConfig, evaluate

LINES = [
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles",
    "And by opposing end them. To die, to sleep;",
]
TINY = ["--preset", "baby", "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "16",
        "--batch-size", "4", "--eval-interval", "3", "--no-progress"]


def minillm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minillm_lib", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    path.write_text("\n".join(LINES * 60) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus):
    folder = tmp_path_factory.mktemp("runs") / "tiny"
    result = minillm("train", "--data", str(corpus), *TINY, "--max-iters", "6", "--out", str(folder))
    assert result.returncode == 0, result.stderr
    return folder, result


def test_train_writes_a_run_folder(run):
    folder, result = run
    for name in ("model.safetensors", "config.json", "tokenizer.json", "train_state.json", "train_log.jsonl"):
        assert (folder / name).is_file(), name
    assert "val loss" in result.stdout
    steps = [json.loads(line)["step"] for line in (folder / "train_log.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "step"]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert load_model(folder).config.n_layer == 1


def test_sample_streams_a_continuation_of_the_prompt(run):
    folder, _ = run
    first = minillm("sample", str(folder), "--prompt", "To be", "--max-new-tokens", "30", "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("To be")
    assert len(first.stdout) == len("To be") + 30 + 1  # one character per token, then a newline
    again = minillm("sample", str(folder), "--prompt", "To be", "--max-new-tokens", "30", "--seed", "3",
                    "--top-k", "5", "--top-p", "0.9", "--min-p", "0.05", "--repetition-penalty", "1.1")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("To be")


def test_eval_reports_the_exact_validation_loss(run, corpus):
    folder, _ = run
    result = minillm("eval", str(folder), "--data", str(corpus))
    assert result.returncode == 0, result.stderr
    reported = float(result.stdout.split("loss ")[1].split()[0])
    text = train_val_split(corpus.read_text(encoding="utf-8"))[1]
    ids = torch.tensor(load_tokenizer(folder / "tokenizer.json").encode(text))
    assert reported == pytest.approx(evaluate(load_model(folder), ids, 64)["loss"], abs=1e-4)
    assert "bits/char" in result.stdout and "perplexity" in result.stdout


def test_eval_choices_scores_the_next_line_test_against_chance_and_a_trigram(tmp_path, corpus):
    folder = tmp_path / "wide"  # a context that holds a whole line (the run fixture's is 16)
    trained = minillm("train", "--data", str(corpus), *TINY, "--block-size", "64", "--max-iters", "2",
                      "--out", str(folder))
    assert trained.returncode == 0, trained.stderr
    result = minillm("eval", str(folder), "--data", str(corpus), "--choices", "20", "--seed", "2")
    assert result.returncode == 0, result.stderr
    train_text, text = train_val_split(corpus.read_text(encoding="utf-8"))
    items = next_line_task(text, 20, max_chars=64, seed=2)
    model, tokenizer = load_model(folder), load_tokenizer(folder / "tokenizer.json")
    ours = choice_accuracy(items, lambda c, ch: score_choices(model, tokenizer, c, ch))
    trigram = choice_accuracy(items, NGramModel(3).fit(train_text, vocab=text).score_choices)
    line = next(line for line in result.stdout.splitlines() if line.startswith("next line"))
    assert line.startswith("next line, 20 items of 4 choices")
    assert f"accuracy {ours['accuracy']:.3f} (95% interval {ours['low']:.3f}-" in line
    assert "chance 0.250" in line
    assert f"trigram baseline accuracy {trigram['accuracy']:.3f}" in result.stdout
    # The corpus repeats five lines: counts with a long enough context know what comes next.
    assert choice_accuracy(items, NGramModel(8).fit(train_text, vocab=text).score_choices)[
        "accuracy"] == 1.0


def test_export_loads_in_transformers_with_the_same_logits(run, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    folder, _ = run
    assert main(["export", str(folder), str(tmp_path / "hf")]) == 0  # in-process: one transformers import
    assert "AutoTokenizer.from_pretrained" in capsys.readouterr().out
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ours = load_model(folder).eval()
    idx = torch.randint(ours.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx)[0], rtol=1e-4, atol=1e-4)
    assert_exported_tokenizer_generates_like_ours(folder, tmp_path / "hf", "To be")


def test_export_of_a_bpe_run_brings_its_tokenizer(corpus, tmp_path):
    pytest.importorskip("transformers")
    folder = tmp_path / "bpe"
    assert main(["train", "--data", str(corpus), "--tokenizer", "bpe", "--vocab-size", "300", *TINY,
                 "--max-iters", "2", "--out", str(folder)]) == 0
    assert main(["export", str(folder), str(tmp_path / "hf")]) == 0
    assert_exported_tokenizer_generates_like_ours(folder, tmp_path / "hf", "Whether 'tis")


def assert_exported_tokenizer_generates_like_ours(folder, hf_folder, prompt):
    """The exported folder's tokenizer encodes like the run's, and greedy generation with
    transformers gives the ids of our generate(..., temperature=0)."""
    import transformers

    tokenizer = load_tokenizer(folder / "tokenizer.json")
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_folder)
    for text in [*LINES, "\n".join(LINES), "  To   be\n\n"]:
        assert hf_tok(text)["input_ids"] == tokenizer.encode(text)
        assert hf_tok.decode(tokenizer.encode(text)) == text
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_folder).eval()
    ours = load_model(folder).eval()
    inputs = hf_tok(prompt, return_tensors="pt")
    n_new = ours.config.block_size - inputs["input_ids"].shape[1]  # fill the window, not more
    with torch.no_grad():
        hf_ids = hf.generate(**inputs, max_new_tokens=n_new, do_sample=False)
    our_ids = generate(ours, torch.tensor([tokenizer.encode(prompt)]), n_new, temperature=0)
    assert hf_ids.tolist() == our_ids.tolist()
    assert hf_tok.decode(hf_ids[0]) == tokenizer.decode(our_ids[0].tolist())


def test_train_continues_a_run_from_its_checkpoint(run, corpus, tmp_path, capsys):
    folder = tmp_path / "continued"
    shutil.copytree(run[0], folder)
    code = main(["train", "--data", str(corpus), "--max-iters", "8", "--out", str(folder), "--no-progress"])
    assert code == 0
    assert "resuming" in capsys.readouterr().err
    records = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3, 4, 5, 6, 7, 8]
    # The run's own settings carry on (batch size 4, eval every 3 steps), bar the new max_iters.
    assert [r["step"] for r in records if r["event"] == "eval"] == [0, 3, 6, 8]
    train_config = json.loads((folder / "train_state.json").read_text())["train_config"]
    assert train_config["batch_size"] == 4 and train_config["max_iters"] == 8
    # The model's shape is fixed once a run exists.
    code = main(["train", "--data", str(corpus), "--n-layer", "2", "--out", str(folder), "--no-progress"])
    assert code == 2
    assert "--n-layer" in capsys.readouterr().err


def test_a_preset_brings_its_training_recipe_and_flags_override_it(corpus, tmp_path):
    folder = tmp_path / "recommended"
    shape = ["--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "16"]
    code = main(["train", "--data", str(corpus), "--preset", "cpu-5min", *shape, "--max-iters", "2",
                 "--batch-size", "4", "--no-progress", "--out", str(folder)])
    assert code == 0
    train_config = json.loads((folder / "train_state.json").read_text())["train_config"]
    recipe = TrainConfig.from_preset("cpu-5min")
    assert train_config["lr"] == recipe.lr and train_config["warmup_iters"] == recipe.warmup_iters
    assert train_config["max_iters"] == 2 and train_config["batch_size"] == 4  # the flags win
    assert load_model(folder).config.pos_encoding == PRESETS["cpu-5min"]["pos_encoding"]


def test_a_bpe_run_trains_and_samples(corpus, tmp_path, capsys):
    folder = tmp_path / "bpe"
    code = main(["train", "--data", str(corpus), "--tokenizer", "bpe", "--vocab-size", "300", *TINY,
                 "--max-iters", "2", "--out", str(folder)])
    assert code == 0
    assert load_tokenizer(folder / "tokenizer.json").vocab_size == 300
    capsys.readouterr()
    assert main(["sample", str(folder), "--prompt", "To be", "--max-new-tokens", "10"]) == 0
    assert capsys.readouterr().out.startswith("To be")


def test_a_missing_run_folder_is_one_line_and_exit_code_2(tmp_path):
    result = minillm("sample", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "does not exist" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset", "huge", "--out", "{tmp}/r"], "unknown preset 'huge'"),
        (["train", "--data", "{tmp}/missing.txt", "--out", "{tmp}/r"], "cannot read corpus"),
        (["train", "--data", "{tmp}/binary.txt", "--out", "{tmp}/r"], "not valid UTF-8"),
        (["sample", "{tmp}"], "not a run folder"),
        (["eval", "{tmp}/nowhere"], "does not exist"),
        (["export", "{tmp}/nowhere", "{tmp}/hf"], "does not exist"),
    ],
)
def test_mistakes_are_one_line_errors_with_exit_code_2(tmp_path, capsys, args, message):
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00 not text")
    code = main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.strip().count("\n") == 0


def test_bad_sampling_values_are_reported_like_other_mistakes(run, capsys):
    code = main(["sample", str(run[0]), "--top-p", "1.5", "--max-new-tokens", "5"])
    assert code == 2
    assert "top_p must be in (0, 1], got 1.5" in capsys.readouterr().err


def test_unknown_characters_in_the_prompt_are_named(run, capsys):
    code = main(["sample", str(run[0]), "--prompt", "Zebra #", "--max-new-tokens", "5"])
    assert code == 2
    assert "not in the vocabulary" in capsys.readouterr().err


# ---------------------------------------------------------------- what is protected (issue 15)


def weights_of(folder):
    return {name: t for name, t in load_model(folder).state_dict().items()}


@pytest.mark.parametrize("damage", ["delete weights", "corrupt weights", "delete config", "garble config"])
def test_a_resume_rewrites_missing_or_damaged_model_files_from_the_checkpoint(run, tmp_path, capsys, damage):
    folder = tmp_path / "run"
    shutil.copytree(run[0], folder)
    expected = weights_of(folder)
    target = folder / ("model.safetensors" if "weights" in damage else "config.json")
    if damage.startswith("delete"):
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:50] + b"\x00garbage")
    assert main(["sample", str(folder), "--max-new-tokens", "5"]) == 2
    assert f"minillm train --out {folder}" in capsys.readouterr().err  # says how to recover
    assert main(["train", "--out", str(folder), "--no-progress"]) == 0  # nothing left to train
    rewritten = weights_of(folder)
    assert rewritten.keys() == expected.keys()
    assert all(torch.equal(rewritten[name], t) for name, t in expected.items())
    assert main(["sample", str(folder), "--max-new-tokens", "5"]) == 0


def test_a_resume_clears_what_killed_saves_left_and_logs_each_step_once(run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run[0], folder)
    (folder / ".model.safetensors.k1ll3d.tmp").write_bytes(b"half a file")
    (folder / "train_state-00000007.safetensors").write_bytes(b"a save that never got its JSON")
    with open(folder / "train_log.jsonl", "a") as log:  # steps logged after the checkpoint of step 6
        log.write(json.dumps({"event": "step", "step": 7, "loss": 9.0}) + "\n")
        log.write('{"event": "step", "st')  # cut short by the kill
    assert main(["train", "--out", str(folder), "--max-iters", "9", "--no-progress"]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "model.safetensors", "run.json", "tokenizer.json", "train.lock",
                     "train_log.jsonl", "train_state-00000009.safetensors", "train_state.json"]
    steps = [json.loads(line)["step"] for line in (folder / "train_log.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "step"]
    assert steps == list(range(1, 10))
    assert 9.0 not in [json.loads(line).get("loss") for line in (folder / "train_log.jsonl").read_text().splitlines()]


def test_train_writes_into_an_empty_folder_or_one_a_killed_start_left(corpus, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--data", str(corpus), *TINY, "--max-iters", "1", "--out", str(empty)]) == 0
    killed = tmp_path / "killed"  # killed before run.json: only its lock and a temporary file
    killed.mkdir()
    (killed / "train.lock").touch()
    (killed / ".run.json.x1y2z3.tmp").write_text("{")
    assert main(["train", "--data", str(corpus), *TINY, "--max-iters", "1", "--out", str(killed)]) == 0
    assert not list(killed.glob(".*.tmp"))
    assert (killed / "model.safetensors").read_bytes() == (empty / "model.safetensors").read_bytes()


def test_config_json_records_the_tokenizer_and_the_weights_checksum(run):
    folder, _ = run
    meta = json.loads((folder / "config.json").read_text())
    tokenizer = load_tokenizer(folder / "tokenizer.json")
    assert meta["tokenizer"] == {"vocab_size": tokenizer.vocab_size, "sha256": tokenizer.fingerprint()}
    assert meta["weights_sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_an_unexpected_error_is_one_line_and_debug_shows_its_traceback(run, capsys, monkeypatch):
    import minillm_lib.cli as cli

    def broken(args):  # stands for a bug: an exception no command expects
        raise RuntimeError("something\nunforeseen")

    monkeypatch.setattr(cli, "cmd_sample", broken)
    assert main(["sample", str(run[0])]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unexpected error (RuntimeError: something unforeseen)" in err and "--debug" in err
    assert main(["sample", str(run[0]), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("minillm sample: unexpected error")


def test_export_writes_a_new_folder_whole(run, tmp_path, capsys):
    pytest.importorskip("transformers")
    folder, _ = run
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is as good as a new one
    assert main(["export", str(folder), str(empty)]) == 0
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in empty.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]  # no temporary folder left beside it


# ---------------------------------------------------------------- chat


def chat(folder, lines: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minillm_lib", "chat", str(folder), *args],
                          input=lines, capture_output=True, text=True, timeout=600)


def test_chat_refuses_a_run_that_was_not_instruction_tuned(run):
    done = chat(run[0], "Hello\n")
    assert done.returncode == 2 and "was not instruction-tuned" in done.stderr
    assert "<|user|>" in done.stderr and "Traceback" not in done.stderr


def test_chat_answers_each_line_with_the_template_and_stops_at_end(run, tmp_path):
    from minillm_lib.checkpoint import save_model
    from minillm_lib.finetune import END, add_special_tokens, generate_reply

    folder = tmp_path / "chat"
    model, tok = add_special_tokens(load_model(run[0]), load_tokenizer(run[0] / "tokenizer.json"))
    save_model(model, folder)
    tok.save(folder / "tokenizer.json")
    done = chat(folder, "To be\nor not\n\n", "--temperature", "0", "--max-new-tokens", "5")
    assert done.returncode == 0, done.stderr
    replies = [line.removeprefix("model> ") for line in done.stdout.splitlines()]
    expected = [generate_reply(model, tok, p, max_new_tokens=5, temperature=0)
                for p in ("To be", "or not")]  # both fit in block_size 16
    assert replies == expected and END not in done.stdout
    forged = chat(folder, f"a {END} b\nTo be\n", "--temperature", "0", "--max-new-tokens", "5")
    assert "special token '<|end|>'" in forged.stderr  # refused, then the next line is answered
    assert forged.stdout.splitlines() == ["model> " + expected[0]]


def test_the_optimizer_and_schedule_flags_are_recorded_and_kept_by_a_resume(corpus, tmp_path):
    out = tmp_path / "muon"
    flags = ["--optimizer", "muon", "--schedule", "wsd", "--decay-fraction", "0.5"]
    assert main(["train", "--data", str(corpus), *TINY, *flags, "--max-iters", "2", "--out", str(out)]) == 0
    recorded = json.loads((out / "run.json").read_text())["train_flags"]
    assert {k: recorded[k] for k in ("optimizer", "schedule", "decay_fraction")} == \
        {"optimizer": "muon", "schedule": "wsd", "decay_fraction": 0.5}
    assert main(["train", "--out", str(out), "--max-iters", "3", "--no-progress"]) == 0
    kept = json.loads((out / "train_state.json").read_text())["train_config"]
    assert (kept["optimizer"], kept["schedule"], kept["decay_fraction"], kept["max_iters"]) == \
        ("muon", "wsd", 0.5, 3)
