"""Atomic writes: all or nothing, whatever happens halfway."""

import json

import pytest

from minillm_lib.files import (
    FileLockedError,
    atomic_folder,
    atomic_write,
    atomic_write_bytes,
    atomic_write_files,
    atomic_write_json,
    file_lock,
    read_json,
    remove_temp_files,
)


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


def test_atomic_write_files_renames_only_once_every_file_is_whole(tmp_path):
    atomic_write_files({tmp_path / "a.bin": b"old a", tmp_path / "b.json": b"old b"})
    with pytest.raises(TypeError):  # the second file cannot be written: neither is replaced
        atomic_write_files({tmp_path / "a.bin": b"new a", tmp_path / "b.json": "not bytes"})
    assert (tmp_path / "a.bin").read_bytes() == b"old a" and (tmp_path / "b.json").read_bytes() == b"old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.json"]


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    with pytest.raises(RuntimeError, match="halfway"):
        with atomic_folder(tmp_path / "out") as folder:
            (folder / "one.txt").write_text("1")
            raise RuntimeError("halfway")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary one
    with atomic_folder(tmp_path / "out") as folder:
        (folder / "one.txt").write_text("1")
        assert not (tmp_path / "out").exists()  # not visible until it is complete
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (tmp_path / "out" / "one.txt").read_text() == "1"
    with pytest.raises(OSError):  # never over a folder that holds something
        with atomic_folder(tmp_path / "out") as folder:
            (folder / "two.txt").write_text("2")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["one.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_remove_temp_files_clears_what_a_killed_write_left(tmp_path):
    (tmp_path / "state.json").write_text("{}")
    (tmp_path / ".state.json.abc123.tmp").write_text("{half")
    (tmp_path / ".hidden").write_text("the user's")
    assert remove_temp_files(tmp_path) == [".state.json.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "state.json"]


def test_a_held_lock_refuses_a_second_holder_until_it_is_released(tmp_path):
    lock = tmp_path / "train.lock"
    with file_lock(lock, wait=False):
        with pytest.raises(FileLockedError, match="train.lock' is locked by another process"):
            with file_lock(lock, wait=False):
                pass
    with file_lock(lock, wait=False):  # free again
        pass


def test_read_json_names_the_file_for_any_garbage(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000)  # deeper than the parser's recursion limit
    with pytest.raises(ValueError, match="deep.json' is not valid JSON"):
        read_json(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="deep.json' is not valid JSON"):
        read_json(path)
