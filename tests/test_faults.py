"""Fault injection (issue 15): a training run is killed with SIGKILL at random (seeded)
moments, including in the middle of its saves, and resumed each time; it must end with
exactly the files, bits and log of a run that was never interrupted. Ctrl-C (SIGINT) saves
a checkpoint and resumes the same way, and a second `train` into a run in use is refused.

Each run is a real ``python -m minillm_lib train`` process: a tiny model (4k parameters,
dropout on, so the random states matter too), 40 steps, a checkpoint after every step.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli import LINES

STEPS = 30
ARGS = ["--preset", "baby", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
        "--dropout", "0.1", "--batch-size", "4", "--max-iters", str(STEPS), "--eval-interval", "10",
        "--ckpt-interval", "1", "--device", "cpu", "--no-progress"]
# One thread: the same sums in the same order in every process, so runs agree bit for bit.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TIMING = ("tokens_per_sec", "elapsed")  # the only fields of the log that may differ


def start(corpus: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "minillm_lib", "train", "--data", str(corpus), *ARGS,
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=600)
    return process.returncode, err


def logged_steps(out: Path) -> list[int]:
    """The steps recorded in the run's log so far (a line being written is skipped)."""
    try:
        lines = (out / "train_log.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    steps = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record["event"] == "step":
            steps.append(record["step"])
    return steps


def wait_until(condition: Callable[[], bool], process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 600
    while not condition():
        assert process.poll() is None, f"the run ended early: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.002)


def snapshot(out: Path) -> dict[str, object]:
    """Everything in a run folder, less what may differ between two equal runs: timings,
    and the folder's own path."""
    files: dict[str, object] = {}
    for path in sorted(out.iterdir()):
        if path.name == "train_log.jsonl":
            records = [json.loads(line) for line in path.read_text().splitlines()]
            files[path.name] = [{k: v for k, v in r.items() if k not in TIMING} for r in records]
        elif path.name == "train_state.json":
            meta = json.loads(path.read_text())
            del meta["train_config"]["out_dir"]
            files[path.name] = meta
        else:
            files[path.name] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    path.write_text("\n".join(LINES * 60) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("reference") / "run"
    code, err = finish(start(corpus, out))
    assert code == 0, err
    files = snapshot(out)
    assert [r["step"] for r in files["train_log.jsonl"] if r["event"] == "step"] == list(range(1, STEPS + 1))
    return files


def test_a_run_killed_five_times_ends_bit_identical_to_an_uninterrupted_one(corpus, uninterrupted, tmp_path):
    rng = random.Random(15)
    out = tmp_path / "run"
    # First kill: at a random moment after the folder appears (writing run.json, the
    # tokenizer, the first evaluation or the first checkpoints), then four during training,
    # each a random few milliseconds after a random step, so some land inside a save.
    moments = [(0, rng.uniform(0.0, 0.5))]
    moments += [(step, rng.uniform(0.0, 0.03)) for step in sorted(rng.sample(range(3, STEPS - 5), 4))]
    for step, delay in moments:
        process = start(corpus, out)
        wait_until(lambda step=step: out.exists() and max(logged_steps(out), default=0) >= step, process)
        time.sleep(delay)
        process.kill()
        code, err = finish(process)
        assert code == -signal.SIGKILL, err  # killed, not finished before the kill
    code, err = finish(start(corpus, out))
    assert code == 0, err
    assert "resuming" in err
    assert snapshot(out) == uninterrupted  # same files (none stray), same bytes, same log


def test_ctrl_c_saves_a_checkpoint_and_a_second_train_is_refused_meanwhile(corpus, uninterrupted, tmp_path):
    out = tmp_path / "run"
    first = start(corpus, out)
    wait_until(lambda: max(logged_steps(out), default=0) >= 12, first)
    first.send_signal(signal.SIGSTOP)  # paused mid-run, holding its lock, while a second one starts
    second = subprocess.run([sys.executable, "-m", "minillm_lib", "train", "--data", str(corpus), *ARGS,
                             "--out", str(out)], capture_output=True, text=True, env=ENV, timeout=600)
    first.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and "is in use" in second.stderr, second.stderr
    first.send_signal(signal.SIGINT)
    code, err = finish(first)
    assert code == 130, err
    step = json.loads((out / "train_state.json").read_text())["step"]
    assert logged_steps(out) == list(range(1, step + 1))  # every step logged once, none lost
    assert f"stopped after step {step} of {STEPS}" in err.splitlines()[-1]
    assert err.splitlines()[-1].startswith("minillm train: interrupted")
    code, err = finish(start(corpus, out))
    assert code == 0, err
    assert snapshot(out) == uninterrupted
