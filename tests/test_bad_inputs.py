"""Bad inputs, as a careless user makes them (issue 15): every one ends in a one-line message
that names the bad value or file, exit code 2 on the command line, no traceback, and not
one byte of the user's files changed. Then property tests: random bytes and random JSON in
the files a run is loaded from raise only the library's own errors."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import LINES, TINY

from minillm_lib.checkpoint import load_model, load_training_checkpoint, save_model
from minillm_lib.cli import main
from minillm_lib.config import GPTConfig
from minillm_lib.files import file_lock
from minillm_lib.model import GPT
from minillm_lib.tokenizers import CharTokenizer, load_tokenizer
from minillm_lib.training import TrainConfig, configure_optimizer, evaluate, resolve_device, train

PROPERTIES = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished tiny run (char tokenizer), trained once for the module; cases copy it."""
    root = tmp_path_factory.mktemp("base")
    corpus = root / "hamlet.txt"
    corpus.write_text("\n".join(LINES * 60) + "\n", encoding="utf-8")
    assert main(["train", "--data", str(corpus), *TINY, "--max-iters", "4", "--out", str(root / "run")]) == 0
    return root


def folder_hash(folder: Path) -> str:
    """One checksum of every path, file content and folder under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes() if path.is_file() else b"<dir>")
    return digest.hexdigest()


# ---------------------------------------------------------------- ways to break a run


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def other_tokenizer(run: Path) -> None:  # 5: a tokenizer of another text, another size
    CharTokenizer.from_text("abc").save(run / "tokenizer.json")


def edited_tokenizer(run: Path) -> None:  # 5: the same size, two characters swapped
    edit_json(run / "tokenizer.json", lambda t: t["chars"].__setitem__(slice(0, 2), t["chars"][1::-1]))


def flipped_byte(run: Path) -> None:  # 8: one byte of the weights, not of the header
    data = bytearray((run / "model.safetensors").read_bytes())
    data[-7] ^= 0x40
    (run / "model.safetensors").write_bytes(bytes(data))


def nan_weight(run: Path) -> None:  # 9: saved properly (checksum and all), but NaN inside
    model = load_model(run)
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
    save_model(model, run, tokenizer=load_tokenizer(run / "tokenizer.json"))


def user_files(folder: Path, tokenizer: bool = True) -> None:  # 1, 2: a folder of the user's
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    if tokenizer:  # the issue saw a 61-character tokenizer.json replaced by an 8-character one
        (folder / "tokenizer.json").write_text('{"type": "char", "chars": ["a", "b", "c"], "unk_token": null}')


def train_state(change):
    return lambda run: edit_json(run / "train_state.json", change)


def before_checkpoint(change):  # a run stopped before its first checkpoint, run.json changed
    def setup(run: Path) -> None:
        for path in run.glob("train_state*"):
            path.unlink()
        edit_json(run / "run.json", change)
    return setup


def outside_tensors_file(run: Path) -> None:  # 11: the checkpoint points out of its folder
    name = json.loads((run / "train_state.json").read_text())["tensors_file"]
    shutil.copy(run / name, run.parent / "outside.safetensors")
    edit_json(run / "train_state.json", lambda m: m.__setitem__("tensors_file", "../outside.safetensors"))


@dataclass
class Case:
    """A bad input: ``setup(run)`` breaks the copied run, then ``args`` ({run}, {tmp} and
    {data} filled in) must fail naming everything in ``expect``."""

    name: str
    args: list[str]
    expect: list[str]
    setup: object = None


TRAIN = ["train", "--data", "{data}", *TINY]
RESUME = ["train", "--data", "{data}", "--no-progress"]  # the run's own settings
CASES = [
    # 1: export into the run itself, into another run, into a folder of the user's
    Case("export into its run", ["export", "{run}", "{run}"], ["'{run}'", "the run folder itself"]),
    Case("export into another run", ["export", "{run}", "{tmp}/copy"], ["copy'", "model files"],
         lambda run: shutil.copytree(run, run.parent / "copy")),
    Case("export into a full folder", ["export", "{run}", "{tmp}/mine"], ["mine'", "not empty"],
         lambda run: user_files(run.parent / "mine", tokenizer=False)),
    # 2: train into a folder of the user's, or with arguments that are then rejected
    Case("train into a user folder", [*TRAIN, "--out", "{tmp}/mine"], ["mine'", "no minillm run"],
         lambda run: user_files(run.parent / "mine")),
    Case("train into a user folder, bad flag", [*TRAIN, "--max-iters", "0", "--out", "{tmp}/mine"],
         ["mine'"], lambda run: user_files(run.parent / "mine")),
    Case("train with a bad flag", [*TRAIN, "--max-iters", "0", "--out", "{tmp}/new"],
         ["max_iters", "got 0"]),
    Case("train into a file", [*TRAIN, "--out", "{data}"], ["hamlet.txt'", "is a file"]),
    Case("train on a missing GPU", [*TRAIN, "--device", "cuda:99", "--out", "{tmp}/new"], ["'cuda:99'"]),
    # 4: a second train into a run in use
    Case("train into a run in use", [*RESUME, "--max-iters", "8", "--out", "{run}"], ["'{run}'", "in use"]),
    # 5: a tokenizer that is not the model's
    Case("sample, other tokenizer", ["sample", "{run}"], ["tokenizer", "vocab_size"], other_tokenizer),
    Case("eval, edited tokenizer", ["eval", "{run}", "--data", "{data}"], ["tokenizer", "fingerprint"],
         edited_tokenizer),
    Case("export, edited tokenizer", ["export", "{run}", "{tmp}/hf"], ["tokenizer", "fingerprint"],
         edited_tokenizer),
    Case("train, other tokenizer", [*RESUME, "--max-iters", "8", "--out", "{run}"], ["tokenizer.json'"],
         other_tokenizer),
    # 6: a batch size that is not positive
    Case("eval --batch-size -1", ["eval", "{run}", "--batch-size", "-1"], ["--batch-size", "-1"]),
    Case("eval --batch-size 0", ["eval", "{run}", "--batch-size", "0"], ["--batch-size", "got 0"]),
    # 7: export over a file
    Case("export over a file", ["export", "{run}", "{data}"], ["hamlet.txt'", "is a file"]),
    # 8: weights that are not the ones saved
    Case("sample, flipped byte", ["sample", "{run}"], ["model.safetensors'", "checksum"], flipped_byte),
    Case("eval, flipped byte", ["eval", "{run}", "--data", "{data}"], ["model.safetensors'", "checksum"],
         flipped_byte),
    # 9: what used to be a traceback
    Case("sample on a missing GPU", ["sample", "{run}", "--device", "cuda:99"], ["'cuda:99'"]),
    Case("eval on an unknown device", ["eval", "{run}", "--device", "tpu"], ["'tpu'"]),
    Case("sample 10**12 tokens", ["sample", "{run}", "--max-new-tokens", "1000000000000"],
         ["--max-new-tokens", "1000000000000"]),
    Case("eval an empty split", ["eval", "{run}", "--data", "{tmp}/empty.txt", "--split", "all"],
         ["empty.txt'", "0 tokens"], lambda run: (run.parent / "empty.txt").write_text("")),
    Case("eval a split too short", ["eval", "{run}", "--data", "{tmp}/short.txt"],
         ["short.txt'", "too short"], lambda run: (run.parent / "short.txt").write_text("To")),
    Case("sample NaN weights", ["sample", "{run}"], ["model.safetensors'", "NaN"], nan_weight),
    Case("eval NaN weights", ["eval", "{run}", "--data", "{data}"], ["model.safetensors'", "NaN"], nan_weight),
    Case("config.json string version", ["sample", "{run}"], ["config.json'", "minillm_format_version", "'2'"],
         lambda run: edit_json(run / "config.json", lambda m: m.__setitem__("minillm_format_version", "2"))),
    Case("config.json NaN norm_eps", ["sample", "{run}"], ["config.json'", "norm_eps", "nan"],
         lambda run: edit_json(run / "config.json", lambda m: m["config"].__setitem__("norm_eps", math.nan))),
    Case("tokenizer.json without chars", ["sample", "{run}"], ["tokenizer.json'", "'chars'"],
         lambda run: edit_json(run / "tokenizer.json", lambda t: t.pop("chars"))),
    Case("train_state.json {}", [*RESUME, "--out", "{run}"], ["train_state.json'"],
         lambda run: (run / "train_state.json").write_text("{}")),
    Case("train_state.json string step", [*RESUME, "--out", "{run}"], ["train_state.json'", "step", "'4'"],
         train_state(lambda m: m.__setitem__("step", "4"))),
    Case("train_state.json bad lr", [*RESUME, "--out", "{run}"], ["train_state.json'", "lr", "'fast'"],
         train_state(lambda m: m["train_config"].__setitem__("lr", "fast"))),
    Case("run.json bad lr", [*RESUME, "--out", "{run}"], ["run.json'", "lr", "'fast'"],
         before_checkpoint(lambda r: r["train_flags"].__setitem__("lr", "fast"))),
    Case("run.json bad model_config", [*RESUME, "--out", "{run}"], ["run.json'", "n_layer", "'x'"],
         before_checkpoint(lambda r: r["model_config"].__setitem__("n_layer", "x"))),
    Case("run.json unknown preset", [*RESUME, "--out", "{run}"], ["run.json'", "'nope'"],
         before_checkpoint(lambda r: r.__setitem__("preset", "nope"))),
    # the same for chat, export --web and the optimizer flags (merged from main)
    Case("chat, missing run", ["chat", "{tmp}/nope"], ["nope'", "does not exist"]),
    Case("chat, no tokenizer", ["chat", "{run}"], ["tokenizer.json"], lambda run: (run / "tokenizer.json").unlink()),
    Case("chat, flipped byte", ["chat", "{run}"], ["model.safetensors'", "checksum"], flipped_byte),
    Case("chat, other tokenizer", ["chat", "{run}"], ["tokenizer", "vocab_size"], other_tokenizer),
    Case("chat NaN weights", ["chat", "{run}"], ["model.safetensors'", "NaN"], nan_weight),
    Case("chat 10**12 tokens", ["chat", "{run}", "--max-new-tokens", "1000000000000"],
         ["--max-new-tokens", "1000000000000"]),
    Case("export --web over a file", ["export", "{run}", "--web", "{data}"], ["hamlet.txt'", "already exists"]),
    Case("export --web, flipped byte", ["export", "{run}", "--web", "{tmp}/page.html"],
         ["model.safetensors'", "checksum"], flipped_byte),
    Case("train --decay-fraction 0", [*TRAIN, "--decay-fraction", "0", "--out", "{tmp}/new"],
         ["decay_fraction", "got 0"]),
    Case("train --optimizer sgd", [*TRAIN, "--optimizer", "sgd", "--out", "{tmp}/new"], ["--optimizer", "'sgd'"]),
    Case("resume with another optimizer", [*RESUME, "--optimizer", "muon", "--max-iters", "8", "--out", "{run}"],
         ["--optimizer", "'adamw'", "'muon'"]),
    # 11: a checkpoint pointing elsewhere; a resume that would silently change the run
    Case("tensors_file outside the run", [*RESUME, "--max-iters", "8", "--out", "{run}"],
         ["tensors_file", "../outside"],
         outside_tensors_file),
    Case("resume with other data", ["train", "--data", "{tmp}/other.txt", "--out", "{run}"],
         ["other.txt'", "not the corpus"], lambda run: (run.parent / "other.txt").write_text(LINES[0] * 99)),
    Case("resume with another preset", ["train", "--preset", "cpu-5min", "--out", "{run}"],
         ["--preset", "'baby'", "'cpu-5min'"]),
    Case("resume with another tokenizer", ["train", "--tokenizer", "bpe", "--out", "{run}"],
         ["--tokenizer", "'char'", "'bpe'"]),
    Case("resume with another shape", ["train", "--n-layer", "2", "--out", "{run}"], ["--n-layer 2"]),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_input_is_one_line_exit_code_2_and_changes_nothing(case, base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run / "run", run)
    if case.setup is not None:
        case.setup(run)
    fill = {"run": str(run), "tmp": str(tmp_path), "data": str(base_run / "hamlet.txt")}
    before = folder_hash(tmp_path), folder_hash(base_run)
    capsys.readouterr()
    with file_lock(run / "train.lock") if "in use" in case.name else nullcontext():  # 4
        code = main([arg.format(**fill) for arg in case.args])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"minillm {case.args[0]}: error: "), err
    assert "Traceback" not in err
    for expected in case.expect:
        assert expected.format(**fill) in err, err
    assert (folder_hash(tmp_path), folder_hash(base_run)) == before  # not a byte changed


def test_argparse_mistakes_are_one_line_too(base_run, capsys):
    assert main(["eval", str(base_run / "run"), "--batch-size", "many"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--batch-size" in err and "'many'" in err


# ---------------------------------------------------------------- the library's own checks


def tiny_model(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("baby", **{**dict(vocab_size=8, block_size=8, n_layer=1, n_head=2,
                                                       n_embd=16), **overrides}))


@pytest.mark.parametrize("field", ["norm_eps", "rope_theta", "dropout"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_gpt_config_refuses_nan_and_infinity(field, value):
    with pytest.raises(ValueError, match=field):
        GPTConfig.from_preset("baby", vocab_size=8, **{field: value})


def test_library_loaders_name_the_bad_file_and_value(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run / "run", run)
    outside_tensors_file(run)
    model = load_model(run)
    with pytest.raises(ValueError, match="tensors_file.*'../outside.safetensors'"):
        load_training_checkpoint(run, model, configure_optimizer(model), torch.Generator())
    edit_json(run / "config.json", lambda m: m.__setitem__("minillm_format_version", "2"))
    with pytest.raises(ValueError, match="config.json'.*minillm_format_version.*'2'"):
        load_model(run)
    edit_json(run / "tokenizer.json", lambda t: t.pop("chars"))
    with pytest.raises(ValueError, match="tokenizer.json'.*'chars'"):
        load_tokenizer(run / "tokenizer.json")
    with pytest.raises(ValueError, match="'cuda:99' is not available"):
        resolve_device("cuda:99")


def test_evaluate_refuses_a_batch_size_below_1_and_data_without_a_target():
    model = tiny_model()
    data = torch.randint(8, (100,), generator=torch.Generator().manual_seed(0))
    for batch_size in (-1, 0):
        with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {batch_size}"):
            evaluate(model, data, batch_size)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        evaluate(model, data[:1], 4)


def test_a_loss_above_709_nats_has_an_infinite_perplexity_and_training_goes_on():
    model = tiny_model()
    with torch.no_grad():
        model.transformer.wte.weight.mul_(3000.0)  # tied: huge, confidently wrong logits
    data = torch.randint(8, (200,), generator=torch.Generator().manual_seed(0))
    result = evaluate(model, data, 4)
    assert result["loss"] > 709.8 and math.isfinite(result["loss"])  # math.exp would overflow
    assert result["perplexity"] == math.inf
    cfg = TrainConfig(batch_size=4, max_iters=1, warmup_iters=0, device="cpu")
    history = train(model, data, data, cfg, progress=False)  # evaluates at steps 0 and 1
    assert history.evals[0]["perplexity"] == math.inf


# ---------------------------------------------------------------- property tests of the loaders


def json_values():
    """Any JSON value, a few levels deep."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


def mutated(original: dict) -> st.SearchStrategy:
    """``original`` with one of its values, at any depth, replaced by random JSON (or removed)."""
    paths = []

    def walk(value, path):
        if isinstance(value, dict):
            for key, inner in value.items():
                paths.append((*path, key))
                walk(inner, (*path, key))
        elif isinstance(value, list) and value:
            paths.append((*path, 0))
            walk(value[0], (*path, 0))

    walk(original, ())

    def apply(path, new, remove):
        data = json.loads(json.dumps(original))
        target = data
        for key in path[:-1]:
            target = target[key]
        if remove and isinstance(target, dict):
            del target[path[-1]]
        else:
            target[path[-1]] = new
        return data

    return st.builds(apply, st.sampled_from(paths), json_values(), st.booleans())


def file_contents(original: dict) -> st.SearchStrategy:
    """Random bytes, random JSON, or the original JSON with one value changed."""
    return st.binary(max_size=200) | json_values().map(lambda v: json.dumps(v).encode()) \
        | mutated(original).map(lambda v: json.dumps(v).encode())


@pytest.fixture(scope="module")
def loader_run(base_run):
    return {name: json.loads((base_run / "run" / name).read_text())
            for name in ("config.json", "tokenizer.json", "train_state.json")}


def refuses_or_loads(load, path: Path) -> None:
    """``load()`` either works or raises the library's own errors, naming the file."""
    try:
        load()
    except (ValueError, FileNotFoundError) as err:
        assert path.name in str(err) or "tokenizer" in str(err) or "weights in" in str(err), err


def run_with(data, name: str, base_run: Path, loader_run: dict, tmp_path: Path) -> Path:
    """A copy of the base run (made once per test) whose file ``name`` holds drawn contents."""
    run = tmp_path / "run"
    if not run.exists():
        shutil.copytree(base_run / "run", run)
    (run / name).write_bytes(data.draw(file_contents(loader_run[name])))
    return run


@PROPERTIES
@given(data=st.data())
def test_random_config_json_never_crashes_load_model(data, base_run, loader_run, tmp_path):
    run = run_with(data, "config.json", base_run, loader_run, tmp_path)
    refuses_or_loads(lambda: load_model(run), run / "config.json")


@PROPERTIES
@given(data=st.data())
def test_random_tokenizer_json_never_crashes_load_tokenizer(data, loader_run, tmp_path):
    path = tmp_path / "tokenizer.json"
    original = data.draw(st.sampled_from([loader_run["tokenizer.json"],
                                          {"type": "bpe", "pattern": "gpt2", "special_tokens": {"<|e|>": 258},
                                           "merges": [[104, 105], [256, 33]]}]))
    path.write_bytes(data.draw(file_contents(original)))
    refuses_or_loads(lambda: load_tokenizer(path).encode("hi"), path)


@PROPERTIES
@given(data=st.data())
def test_random_train_state_json_never_crashes_the_resume(data, base_run, loader_run, tmp_path):
    run = run_with(data, "train_state.json", base_run, loader_run, tmp_path)
    model = GPT(GPTConfig.from_dict(loader_run["train_state.json"]["model_config"]))
    optimizer = configure_optimizer(model)

    def resume_one_step():
        load_training_checkpoint(run, model, optimizer, torch.Generator())
        _, loss = model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))
        loss.backward()
        optimizer.step()  # the restored hyperparameters are usable
        optimizer.zero_grad()

    refuses_or_loads(resume_one_step, run / "train_state.json")
