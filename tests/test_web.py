"""Tests for minillm_lib.viz.web and viz.live on the Python side: the weight script holds
exactly the model's float16 / int8 values (decoded here independently of the code that wrote
them), shared weight files, the Python twin of the page's sampler, the explorers' HTML and
arguments, and ``minillm export --web``. The JavaScript runs in tests/test_web_browser.py."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch

from minillm_lib.checkpoint import save_model
from minillm_lib.cli import main as cli_main
from minillm_lib.config import GPTConfig
from minillm_lib.lora import apply_lora
from minillm_lib.model import GPT
from minillm_lib.quantize import quantize_int8
from minillm_lib.sampling import generate
from minillm_lib.tokenizers import BPETokenizer, CharTokenizer
from minillm_lib.viz import live, web

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer.from_text(TEXT)


def tiny(vocab_size: int, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16)
    model = GPT(GPTConfig.from_preset("baby", **{**cfg, **overrides})).eval()
    with torch.no_grad():  # weights well away from the init's 0.02, so rounding shows
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def parse(script: web.WeightScript) -> dict:
    """The object a weight script registers, read back as JSON."""
    match = re.fullmatch(r'//[^\n]*\n\(window\.minillmModels = window\.minillmModels \|\| \{\}\)\[(".*?")\] = (\{.*\});\n',
                         script.text, re.S)
    assert match, script.text[:300]
    assert json.loads(match.group(1)) == script.key
    return json.loads(match.group(2))


def decoded(spec: dict) -> dict[str, np.ndarray]:
    data = base64.b64decode(spec["data"])
    assert len(data) == spec["nbytes"]
    out = {}
    for name, t in spec["tensors"].items():
        n = int(np.prod(t["shape"]))
        kind = {"float16": "<f2", "float32": "<f4", "int8": "i1"}[t["dtype"]]
        values = np.frombuffer(data, kind, n, t["offset"]).reshape(t["shape"]).astype(np.float32)
        if "scale" in t:
            values = values * np.frombuffer(data, "<f4", t["shape"][0], t["scale"])[:, None]
        out[name] = values
    return out


# ---------------------------------------------------------------- the weight script


@pytest.mark.parametrize("tie", [True, False])
def test_float16_script_holds_every_tensor_once_as_half_floats(tok, tie):
    model = tiny(tok.vocab_size, tie_weights=tie, bias=True)
    spec = parse(web.weight_script(model, tok, name="t"))
    assert spec["format"] == 1 and spec["dtype"] == "float16" and spec["config"] == model.config.to_dict()
    state = model.state_dict()
    expected = set(state) - ({"lm_head.weight"} if tie else set())  # a tied matrix is stored once
    assert set(spec["tensors"]) == expected
    values = decoded(spec)
    for name in expected:
        assert spec["tensors"][name]["dtype"] == "float16"
        np.testing.assert_array_equal(values[name], state[name].half().float().numpy(), err_msg=name)
    # the data is 2 bytes a number, base64 is 4/3 of that
    n_numbers = sum(state[n].numel() for n in expected)
    assert spec["nbytes"] == 2 * n_numbers


def test_int8_script_quantizes_every_matrix_per_row(tok):
    model = tiny(tok.vocab_size, bias=True)
    spec = parse(web.weight_script(model, tok, name="t", dtype="int8"))
    values = decoded(spec)
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            assert name not in values  # tied
            continue
        entry = spec["tensors"][name]
        if t.ndim == 2:
            q, scale = quantize_int8(t.float())
            assert entry["dtype"] == "int8"
            np.testing.assert_array_equal(values[name], (q.float() * scale[:, None]).numpy(), err_msg=name)
        else:
            assert entry["dtype"] == "float32"
            np.testing.assert_array_equal(values[name], t.numpy(), err_msg=name)


def test_shipped_model_computes_with_the_scripts_values(tok):
    model = tiny(tok.vocab_size, tie_weights=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for dtype in web.DTYPES:
        shipped = web.shipped_model(model, dtype)
        values = decoded(parse(web.weight_script(model, tok, dtype=dtype)))
        for name, t in shipped.state_dict().items():
            np.testing.assert_array_equal(t.numpy(), values[name], err_msg=name)
        assert not shipped.training and shipped is not model
    for k, v in model.state_dict().items():  # the model itself is untouched
        assert torch.equal(v, before[k]), k
    tied = web.shipped_model(tiny(tok.vocab_size))
    assert tied.lm_head.weight is tied.transformer.wte.weight


def test_the_key_names_the_content(tok):
    model = tiny(tok.vocab_size)
    a, b = web.weight_script(model, tok, name="m"), web.weight_script(model, tok, name="m")
    assert a.key == b.key and a.text == b.text and a.key.startswith("m-float16-")
    with torch.no_grad():
        model.transformer.h[1].mlp.c_fc.weight[3, 4] += 0.5
    assert web.weight_script(model, tok, name="m").key != a.key
    assert web.weight_script(model, tok, name="m", dtype="int8").key.startswith("m-int8-")
    assert a.file_name == a.key + ".js" and a.nbytes == len(a.text.encode())


def test_tokenizer_specs(tok):
    assert web.tokenizer_spec(tok) == {"type": "char", "chars": tok.chars, "special_tokens": {}, "unk_token": None}
    bpe = BPETokenizer.train(TEXT * 2, 270, pattern="gpt2", special_tokens=["<|end|>"])
    spec = web.tokenizer_spec(bpe)
    assert spec["merges"] == bpe.merges and spec["special_tokens"] == {"<|end|>": 269}
    assert spec["pattern"] == web.JS_SPLIT_PATTERNS["gpt2"]


@pytest.mark.parametrize("make, message", [
    (lambda tok: web.weight_script(tiny(tok.vocab_size), tok, dtype="bfloat16"), "dtype must be one of"),
    (lambda tok: web.weight_script(tiny(tok.vocab_size + 1), tok), "do not belong together"),
    (lambda tok: web.weight_script(tiny(tok.vocab_size), tok, name="a/b"), "name must be"),
    (lambda tok: web.tokenizer_spec(BPETokenizer.train(TEXT, 260, pattern=r"\w+|\s")), "custom one"),
    (lambda tok: web.weight_script(torch.nn.Linear(2, 2), tok), "model must be a minillm_lib GPT"),
])
def test_bad_input_is_one_clear_error(tok, make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make(tok)


def test_a_model_with_lora_layers_is_refused(tok):
    model = tiny(tok.vocab_size)
    apply_lora(model, rank=2)
    with pytest.raises(ValueError, match="merge LoRA"):
        web.weight_script(model, tok)


# ---------------------------------------------------------------- shared weight files


def test_shared_weights_write_each_file_once(tok, tmp_path):
    script = web.weight_script(tiny(tok.vocab_size), tok, name="m")
    shared = web.SharedWeights(tmp_path / "models", "../_static/models/")
    url = shared.place(script)
    path = tmp_path / "models" / script.file_name
    assert url == "../_static/models/" + script.file_name and path.read_text() == script.text
    path.write_text("kept")  # a file with this name is this content already: never rewritten
    assert shared.place(script) == url and path.read_text() == "kept"
    with pytest.raises(ValueError, match="ending in '/'"):
        web.SharedWeights(tmp_path, "models")


def test_shared_weights_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(web.WEB_DIR_ENV, raising=False)
    monkeypatch.delenv(web.WEB_URL_ENV, raising=False)
    assert web.SharedWeights.from_env() is None
    monkeypatch.setenv(web.WEB_DIR_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="set both"):
        web.SharedWeights.from_env()
    monkeypatch.setenv(web.WEB_URL_ENV, "../_static/models/")
    assert web.SharedWeights.from_env() == web.SharedWeights(tmp_path, "../_static/models/")


def test_explorers_inline_or_share_their_weights(tok, tmp_path, monkeypatch):
    model = tiny(tok.vocab_size)
    script = web.weight_script(model, tok, name="m")
    monkeypatch.delenv(web.WEB_DIR_ENV, raising=False)
    monkeypatch.delenv(web.WEB_URL_ENV, raising=False)
    inline = live.sampling_explorer(model, tok, "To be", name="m")
    assert script.text in inline.html and inline.shared_bytes == 0
    monkeypatch.setenv(web.WEB_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(web.WEB_URL_ENV, "models/")
    shared = live.sampling_explorer(model, tok, "To be", name="m")
    assert script.text not in shared.html and '"data":"' not in shared.html
    assert f'"url":"models/{script.file_name}"' in shared.html
    assert shared.shared_bytes == (tmp_path / script.file_name).stat().st_size == script.nbytes
    assert inline.nbytes - shared.nbytes > script.nbytes - 100  # the weights are the difference
    assert "kB of shared weights" in repr(shared)
    both = live.int8_explorer(model, tok, "To be", name="m", weights=web.SharedWeights(tmp_path, "w/"))
    assert len(list(tmp_path.glob("m-int8-*.js"))) == 1 and both.shared_bytes > script.nbytes


# ---------------------------------------------------------------- the page's sampler in Python


def test_page_random_is_uniform_and_seeded():
    a = [web.PageRandom(7).random() for _ in range(3)]
    assert a == [web.PageRandom(7).random()] * 3  # a fresh generator starts over
    r = web.PageRandom(7)
    values = [r.random() for _ in range(20_000)]
    assert values[0] == a[0] and len(set(values)) == len(values)
    assert all(0 <= v < 1 for v in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.01  # mean of 20k uniforms: sd 0.002
    assert abs(sum(v < 0.1 for v in values) / len(values) - 0.1) < 0.01
    for bad in (-1, 2**32, 1.5, True):
        with pytest.raises(ValueError, match="seed must be"):
            web.PageRandom(bad)


def test_draw_is_an_inverse_cdf():
    probs = [0.2, 0.0, 0.3, 0.5]
    assert [web.draw(probs, u) for u in (0.0, 0.1999, 0.2, 0.4999, 0.5, 0.9999)] == [0, 0, 2, 2, 3, 3]
    assert web.draw([0.5, 0.25, 0.25, 0.0], 0.99999999999999999) == 2  # u beyond the rounded total
    assert web.page_softmax([0.0, float("-inf"), 0.0]) == [0.5, 0.0, 0.5]


def test_page_generate_greedy_is_generate(tok):
    model = tiny(tok.vocab_size)
    ids = tok.encode("To be")
    expected = generate(model, torch.tensor([ids]), 40, temperature=0)[0, len(ids):].tolist()  # past block_size
    assert web.page_generate(model, ids, 40, temperature=0) == expected
    eos = expected[5]
    assert web.page_generate(model, ids, 40, temperature=0, eos_id=eos) == expected[: expected.index(eos) + 1]


def test_page_generate_samples_from_the_filtered_distribution(tok):
    model = tiny(tok.vocab_size)
    ids = tok.encode("To be")
    a = web.page_generate(model, ids, 30, seed=1, temperature=1.0, top_k=3)
    assert a == web.page_generate(model, ids, 30, seed=1, temperature=1.0, top_k=3)
    assert a != web.page_generate(model, ids, 30, seed=2, temperature=1.0, top_k=3)
    # every token is one of the 3 most likely at its step
    tokens = list(ids)
    for next_id in a:
        logits = model(torch.tensor([tokens[-16:]]))[0][0, -1]
        assert next_id in logits.topk(3).indices.tolist()
        tokens.append(next_id)
    with pytest.raises(ValueError, match="pass seed="):
        web.page_generate(model, ids, 3, generator=torch.Generator())
    with pytest.raises(ValueError, match="unknown sampling option"):
        web.page_generate(model, ids, 3, temprature=1.0)


# ---------------------------------------------------------------- the explorers' arguments


@pytest.mark.parametrize("build, message", [
    (lambda m, t: live.sampling_explorer(m, t, "To be", temperature=3), "at most 2"),
    (lambda m, t: live.sampling_explorer(m, t, "To be", repetition_penalty=0.5), r"in \[1, 2\]"),
    (lambda m, t: live.sampling_explorer(m, t, "To be", top_k=0), "top_k must be"),
    (lambda m, t: live.sampling_explorer(m, t, "To be!"), "'!' at position 5"),
    (lambda m, t: live.sampling_explorer(m, t, ""), "non-empty"),
    (lambda m, t: live.sampling_explorer(m, t, "To", n_new=600), r"n_new must be an integer in \[1, 500\]"),
    (lambda m, t: live.attention_explorer(m, t, "To be", head=2), "head must be"),
    (lambda m, t: live.chat_explorer(m, t), "no special token '<|user|>'"),
    (lambda m, t: live.kv_cache_explorer(m, t, "To", n_new=0), "n_new must be"),
    (lambda m, t: live.sampling_explorer(m, t, "To", weights="url"), "weights must be"),
])
def test_explorer_arguments_are_checked(tok, build, message):
    with pytest.raises(ValueError, match=message):
        build(tiny(tok.vocab_size), tok)


def test_web_page_is_one_offline_document(tok):
    model = tiny(tok.vocab_size)
    page = live.web_page(model, tok, title="My <model>")
    assert page.startswith("<!doctype html>") and "<title>My &lt;model&gt;</title>" in page
    assert page.count("// minillm weights ") == 1  # the weights once, for both explorers
    assert 'data-explorer="live-sampling"' in page and 'data-explorer="live-attention"' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from anywhere


# ---------------------------------------------------------------- minillm export --web


@pytest.fixture
def run_folder(tok, tmp_path):
    folder = tmp_path / "run"
    save_model(tiny(tok.vocab_size), folder)
    tok.save(folder / "tokenizer.json")
    return folder


def test_export_web_writes_one_page(run_folder, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert cli_main(["export", str(run_folder), "--web", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.count("// minillm weights ") == 1
    assert str(out) in capsys.readouterr().out
    # an existing file is never overwritten
    out.write_text("mine")
    assert cli_main(["export", str(run_folder), "--web", str(out)]) == 2
    assert out.read_text() == "mine" and "already exists" in capsys.readouterr().err


def test_export_needs_exactly_one_destination(run_folder, tmp_path, capsys):
    assert cli_main(["export", str(run_folder)]) == 2
    assert "give an output folder (transformers) or --web" in capsys.readouterr().err
    assert cli_main(["export", str(run_folder), str(tmp_path / "hf"), "--web", str(tmp_path / "p.html")]) == 2
    assert "not both" in capsys.readouterr().err
