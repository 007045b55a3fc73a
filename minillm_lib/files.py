"""Files that survive a crash: atomic writes, JSON reads that name the file, checksums and
locks (chapter 8).

Every file the library saves goes through ``atomic_write``: the data is written to a
temporary file next to the target, flushed to disk, then renamed over the target in one
step (``os.replace``). A crash or an exception halfway leaves the old file intact, and a
reader never sees half a file. A process killed while it writes leaves only its temporary
file (``.<name>.<random>.tmp``), which ``remove_temp_files`` clears on the next start.

A folder is written the same way (``atomic_folder``): into a temporary folder beside it,
renamed into place when it is complete.

This module needs no torch, so the tokenizers and the data loaders can use it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no advisory file locks, so no protection against a second writer
    fcntl = None

TEMP_SUFFIX = ".tmp"


def _temp_name(path: Path) -> tuple[str, str]:
    """mkstemp's (prefix, suffix) for a temporary file or folder that will become ``path``."""
    return f".{path.name}.", TEMP_SUFFIX


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` only if the block succeeds.

        with atomic_write("notes.txt", "w") as f:
            f.write("all or nothing")

    mode: "wb" (bytes) or "w" (UTF-8 text). The parent directory must exist.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    # Same directory as the target, so the final rename never crosses file systems.
    prefix, suffix = _temp_name(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the usual permissions of a saved file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def json_text(obj: Any) -> str:
    """``obj`` as the indented JSON text the library saves."""
    return json.dumps(obj, indent=2) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json_text(obj))


def atomic_write_files(contents: dict[Path, bytes]) -> None:
    """Write several files that belong together (weights and the JSON that describes them).

    Every file is first written whole to its temporary file and flushed; only then are they
    renamed into place, one after the other. So each file is always whole, and the moment
    in which some are new and others old lasts a few renames, not a few disk writes.
    """
    temps: dict[Path, str] = {}
    try:
        for path, data in contents.items():
            prefix, suffix = _temp_name(path)
            fd, temps[path] = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(temps[path], 0o644)
        while temps:
            path, tmp = next(iter(temps.items()))
            os.replace(tmp, path)
            del temps[path]
    finally:
        for tmp in temps.values():  # left only if something failed
            Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Build a new folder in a temporary folder beside ``path``; rename it to ``path`` when
    the block succeeds, delete it when the block fails.

    ``path`` must not exist or be an empty folder (then it is replaced). The parent is
    created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temp_name(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=suffix))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp creates 0700
        os.rename(tmp, path)  # refuses (OSError) if path meanwhile holds something
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_temp_files(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files that writes killed halfway left in ``folder``
    (``.<name>.<random>.tmp``); return their names. Call it only while no other process
    writes into ``folder`` (hold its lock)."""
    removed = []
    for path in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return sorted(removed)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; FileNotFoundError / ValueError name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {str(path)!r}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON (corrupted?): {err}") from err


def sha256_hex(data: bytes) -> str:
    """The SHA-256 checksum of ``data`` as 64 hex digits: any changed byte changes it."""
    return hashlib.sha256(data).hexdigest()


class FileLockedError(OSError):
    """Another process holds the lock (``file_lock(..., wait=False)``)."""


@contextmanager
def file_lock(path: str | os.PathLike, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (an empty file, created if needed).

    wait: True waits while another process holds it; False raises FileLockedError at once.
    The operating system releases the lock if the process dies, so a crash or a
    ``kill -9`` leaves no stale lock behind (the empty file stays; it is harmless).
    """
    with open(path, "a") as f:
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise FileLockedError(f"{os.fspath(path)!r} is locked by another process") from None
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)
