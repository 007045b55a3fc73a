"""Atomic writes: all or nothing, whatever happens halfway."""

import json

import pytest

from minillm_lib.files import atomic_write, atomic_write_bytes, atomic_write_json


def test_atomic_write_keeps_old_file_when_serialisation_fails_midway(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json(target, {"step": 1})
    # json.dump streams: "step" is written to the temp file before object() fails to serialise.
    with pytest.raises(TypeError, match="not JSON serializable"):
        atomic_write_json(target, {"step": 2, "broken": object()})
    assert json.loads(target.read_text()) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / "blob.bin"
    atomic_write_bytes(target, b"old")
    with atomic_write(target) as f:
        f.write(b"new ")
        f.write(b"content")
    assert target.read_bytes() == b"new content"
    with pytest.raises(RuntimeError, match="crash while writing"):
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_write(target, "a"):
            pass
