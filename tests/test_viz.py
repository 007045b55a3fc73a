"""Tests for minillm_lib.viz: the data each explorer embeds, checked against the library, and
the HTML around it (deterministic, safe, small). The JavaScript is tested in a real browser
in tests/test_site_explorers.py."""

import json
import os
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser

import pytest
import torch

from minillm_lib import viz
from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT
from minillm_lib.positions import sinusoidal_positions
from minillm_lib.sampling import generate
from minillm_lib.tokenizers import CharTokenizer
from minillm_lib.training import TrainConfig

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer"
SMALL_GRID = dict(temperatures=(0.0, 0.7, 1.0), top_ks=(2, None), top_ps=(0.5, 1.0), n_new=6)


def tiny_model(vocab_size: int, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32)
    return GPT(GPTConfig.from_preset("baby", **{**cfg, **overrides})).eval()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer.from_text(TEXT)


@pytest.fixture(scope="module")
def model(tok) -> GPT:
    return tiny_model(tok.vocab_size)


def script_data(explorer: viz.Explorer) -> dict:
    """The JSON an explorer embeds, parsed back from its HTML."""
    found = re.search(r'<script type="application/json" class="mlv-data">(.*?)</script>', explorer.html, re.S)
    return json.loads(found.group(1))


# ---------------------------------------------------------------- sampling


def test_sampling_logits_are_the_models_sorted_and_shifted(model, tok):
    data = viz.sampling_data(model, tok, ["To be", "the"], **SMALL_GRID)
    assert data["vocab_size"] == tok.vocab_size and len(data["prompts"]) == 2
    for prompt, item in zip(["To be", "the"], data["prompts"], strict=True):
        with torch.no_grad():
            true = model(torch.tensor([tok.encode(prompt)]))[0][0, -1].double()  # (V,)
        assert sorted(item["ids"]) == list(range(tok.vocab_size))  # every token, once
        assert item["logits"] == sorted(item["logits"], reverse=True)  # most likely first
        assert item["logits"][0] == 0.0
        shifted = true - true.max()
        embedded = torch.tensor(item["logits"], dtype=torch.float64)
        torch.testing.assert_close(embedded, shifted[item["ids"]], rtol=5e-4, atol=1e-6)
        assert item["labels"] == [tok.decode([i]) for i in item["ids"][:20]]
        assert "lse" not in item  # the whole vocabulary is there


def test_sampling_ties_are_ordered_by_token_id(tok):
    model = tiny_model(tok.vocab_size)
    with torch.no_grad():
        model.lm_head.weight.zero_()  # every logit 0: one big tie
    item = viz.sampling_data(model, tok, ["To"], temperatures=(0.0,), top_ks=(None,), top_ps=(1.0,),
                             n_new=1)["prompts"][0]
    assert item["ids"] == list(range(tok.vocab_size)) and set(item["logits"]) == {0.0}


def test_sampling_continuations_are_what_generate_samples(model, tok):
    data = viz.sampling_data(model, tok, ["To be"], seed=3, **SMALL_GRID)
    item = data["prompts"][0]
    temps, ks, ps = data["temperatures"], data["top_ks"], data["top_ps"]
    assert (temps, ks, ps) == ([0.0, 0.7, 1.0], [2, None], [0.5, 1.0])
    assert len(item["grid"]) == len(temps) * len(ks) * len(ps)
    assert len(set(item["samples"])) == len(item["samples"])  # stored once each
    idx = torch.tensor([tok.encode("To be")])
    for ti, ki, pi in [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0), (2, 1, 1)]:
        out = generate(model, idx, 6, temperature=temps[ti], top_k=ks[ki], top_p=ps[pi],
                       generator=torch.Generator().manual_seed(3))
        expected = tok.decode(out[0, idx.size(1):].tolist())
        assert item["samples"][item["grid"][(ti * len(ks) + ki) * len(ps) + pi]] == expected
    greedy = {item["grid"][j] for j in range(len(ks) * len(ps))}
    assert len(greedy) == 1  # temperature 0 ignores top_k and top_p


def test_sampling_grids_are_sorted_with_off_last(model, tok):
    data = viz.sampling_data(model, tok, ["To"], temperatures=(1.0, 0.0, 0.5, 1.0),
                             top_ks=(None, 5, 1), top_ps=(1.0, 0.2), n_new=1)
    assert data["temperatures"] == [0.0, 0.5, 1.0]
    assert data["top_ks"] == [1, 5, None]
    assert data["top_ps"] == [0.2, 1.0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompts=[]), "prompts"),
    (dict(prompts="To be"), "prompts"),
    (dict(prompts=[""]), "prompt"),
    (dict(prompts=["To"], top_ps=(0.0,)), "top_p"),
    (dict(prompts=["To"], temperatures=(-1.0,)), "temperature"),
    (dict(prompts=["To"], top_ks=()), "top_ks"),
    (dict(prompts=["To"], n_show=0), "n_show"),
])
def test_sampling_rejects_bad_input(model, tok, kwargs, match):
    kwargs = {"n_new": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        viz.sampling_data(model, tok, **kwargs)


def test_sampling_explorer_embeds_its_data_and_restores_training_mode(tok):
    model = tiny_model(tok.vocab_size).train()
    ex = viz.sampling_explorer(model, tok, ["To be"], element_id="s1", **SMALL_GRID)
    assert model.training
    assert script_data(ex) == json.loads(json.dumps(viz.sampling_data(model.eval(), tok, ["To be"], **SMALL_GRID)))
    for testid in ("prompt", "temperature", "top-k", "top-p", "bars", "continuation", "caption"):
        assert f'data-testid="{testid}"' in ex.html


# ---------------------------------------------------------------- attention


def test_attention_data_is_the_models_maps(model, tok):
    text = "To be, or not"
    data = viz.attention_data(model, tok, text)
    maps = model.attention_maps(torch.tensor([tok.encode(text)]))[:, 0]  # (L, H, T, T)
    T = len(text)
    assert data["tokens"] == list(text) and data["ids"] == tok.encode(text)
    assert (data["n_layer"], data["n_head"]) == (2, 2) and data["scale"] == viz.SCALE
    for layer in range(2):
        for head in range(2):
            flat = data["weights"][layer][head]
            assert len(flat) == T * (T + 1) // 2
            for q in range(T):
                row = torch.tensor(flat[q * (q + 1) // 2: (q + 1) * (q + 2) // 2]) / viz.SCALE
                torch.testing.assert_close(row, maps[layer, head, q, : q + 1], rtol=0, atol=0.5 / viz.SCALE)
                assert abs(row.sum().item() - 1) < T / viz.SCALE  # each row is a distribution


def test_attention_explorer_checks_its_input(model, tok):
    with pytest.raises(ValueError, match="block_size=32"):
        viz.attention_data(model, tok, TEXT)  # longer than the block
    with pytest.raises(ValueError, match="text"):
        viz.attention_data(model, tok, "")
    with pytest.raises(ValueError, match="head"):
        viz.attention_explorer(model, tok, "To be", head=2)
    with pytest.raises(ValueError, match="query"):
        viz.attention_explorer(model, tok, "To be", query=5)
    ex = viz.attention_explorer(model, tok, "To be", layer=1, head=1, query=2, element_id="a1")
    assert script_data(ex)["start"] == {"layer": 1, "head": 1, "query": 2}


def test_attention_payload_of_a_course_sized_model_is_small():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("baby", vocab_size=65)).eval()  # 4 layers x 4 heads, block 64
    tok = CharTokenizer([chr(32 + i) for i in range(65)])
    text = "".join(chr(32 + (7 * i) % 65) for i in range(64))
    assert viz.attention_explorer(model, tok, text).nbytes < 200_000


# ---------------------------------------------------------------- positions and schedule


def test_position_data_is_the_sinusoidal_table():
    data = viz.position_data(16, 10, base=100.0)
    table = torch.tensor(data["table"]).view(16, 10) / data["scale"]
    torch.testing.assert_close(table, sinusoidal_positions(16, 10, 100.0), rtol=0, atol=0.5 / viz.SCALE)
    with pytest.raises(ValueError, match="too heavy"):
        viz.position_data(1024, 768)
    with pytest.raises(ValueError, match="n_embd"):
        viz.position_data(8, 0)
    with pytest.raises(ValueError, match="position"):
        viz.position_explorer(8, 4, position=8)


def test_lr_schedule_data_holds_what_lr_at_reads():
    cfg = TrainConfig(lr=3e-4, min_lr=3e-5, warmup_iters=7, max_iters=90, lr_decay_iters=80)
    assert viz.lr_schedule_data(cfg) == {"lr": 3e-4, "min_lr": 3e-5, "warmup_iters": 7,
                                         "max_iters": 90, "lr_decay_iters": 80,
                                         "schedule": "cosine", "decay_fraction": 0.2}
    assert script_data(viz.lr_schedule_explorer(cfg))["lr_decay_iters"] == 80
    assert script_data(viz.lr_schedule_explorer())["max_iters"] == TrainConfig().max_iters
    with pytest.raises(TypeError, match="TrainConfig"):
        viz.lr_schedule_data({"lr": 1e-3})


# ---------------------------------------------------------------- the HTML


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.ids, self.data = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag in ("script", "link", "img", "iframe") and (attrs.get("src") or attrs.get("href")):
            self.data.append(attrs)  # anything loaded from elsewhere


def test_html_is_self_contained_and_ids_are_unique(model, tok):
    explorers = [viz.position_explorer(8, 6), viz.position_explorer(8, 6), viz.lr_schedule_explorer(),
                 viz.attention_explorer(model, tok, "To be")]
    ids = [ex.element_id for ex in explorers]
    assert len(set(ids)) == 4 and all(re.fullmatch(r"minillm-[a-z-]+-\d+", i) for i in ids)
    for ex in explorers:
        parser = _Tags()
        parser.feed(ex.html)
        assert parser.ids == [ex.element_id]  # the root; nothing inside needs an id
        assert parser.data == []  # no src/href: no external script, style sheet or image
        assert "http://" not in ex.html.replace("http://www.w3.org/2000/svg", "") and "https://" not in ex.html
        assert ex._repr_html_() == ex.html and ex.element_id in repr(ex)
    with pytest.raises(ValueError, match="element_id"):
        viz.position_explorer(8, 6, element_id="1 bad")


def test_embedded_text_cannot_end_the_script(model, tok):
    evil = "</script><script>alert(1)</script><!--"
    tok2 = CharTokenizer.from_text(TEXT + evil)
    ex = viz.sampling_explorer(tiny_model(tok2.vocab_size), tok2, [evil], element_id="s2", **SMALL_GRID)
    assert ex.html.count("</script>") == 2  # the data's and the code's, nothing from the prompt
    assert "<!--" not in ex.html.split('class="mlv-data">')[1]
    assert script_data(ex)["prompts"][0]["text"] == evil  # intact after the round trip


def test_same_inputs_give_byte_identical_html(model, tok):
    def build():
        return [viz.sampling_explorer(model, tok, ["To be"], element_id="s", **SMALL_GRID).html,
                viz.attention_explorer(model, tok, "To be, or", element_id="a").html,
                viz.position_explorer(12, 8, element_id="p").html,
                viz.lr_schedule_explorer(element_id="l").html]
    assert build() == build()


BUILD_SCRIPT = textwrap.dedent("""
    import hashlib, torch
    from minillm_lib import viz
    from minillm_lib.config import GPTConfig
    from minillm_lib.model import GPT
    from minillm_lib.tokenizers import CharTokenizer
    tok = CharTokenizer.from_text("abcdefgh ")
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("baby", vocab_size=9, block_size=16, n_layer=1, n_head=2, n_embd=16))
    page = "".join(e.html for e in [
        viz.sampling_explorer(model, tok, ["abc"], temperatures=(0, 1), top_ks=(2, None), top_ps=(1.0,), n_new=4),
        viz.attention_explorer(model, tok, "bad cafe"), viz.position_explorer(8, 8), viz.lr_schedule_explorer()])
    print(hashlib.sha256(page.encode()).hexdigest())
""")


def test_a_fresh_process_builds_the_same_page():
    """What a book build does: run the notebook in a new kernel, ids from the counter included."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.run([sys.executable, "-c", BUILD_SCRIPT], capture_output=True, text=True, check=True,
                           env=env).stdout for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 64
