"""End-to-end tests of the command line: python -m minillm_lib train / sample / eval / export."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from minillm_lib.cli import main
from minillm_lib.data import train_val_split
from minillm_lib.model import GPT
from minillm_lib.tokenizers import load_tokenizer
from minillm_lib.train import evaluate

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
                          timeout=180)


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
    assert GPT.load(folder).config.n_layer == 1


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
    assert reported == pytest.approx(evaluate(GPT.load(folder), ids, 64)["loss"], abs=1e-4)
    assert "bits/char" in result.stdout and "perplexity" in result.stdout


def test_export_loads_in_transformers_with_the_same_logits(run, tmp_path):
    transformers = pytest.importorskip("transformers")
    folder, _ = run
    assert main(["export", str(folder), str(tmp_path / "hf")]) == 0  # in-process: one transformers import
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ours = GPT.load(folder).eval()
    idx = torch.randint(ours.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx)[0], rtol=1e-4, atol=1e-4)


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
