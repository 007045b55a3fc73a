"""DistributedDataParallel on the CPU: two processes (gloo) take the same steps as one.

The test runs this file under ``python -m torch.distributed.run --nproc_per_node=2``; the
``__main__`` block at the bottom is what each of the two processes executes.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from minillm_lib.checkpoint import load_model
from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT
from minillm_lib.training import TrainConfig, train

VOCAB = 20
DATA = torch.randint(VOCAB, (3000,), generator=torch.Generator().manual_seed(0))
TRAIN, VAL = DATA[:2500], DATA[2500:]


def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("baby", vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32))


def config(out_dir: str | None = None, **overrides) -> TrainConfig:
    # A global batch of 8 sequences per micro-batch: 4 per process, 2 micro-batches per step.
    settings = dict(batch_size=8, grad_accum_steps=2, max_iters=5, warmup_iters=2, eval_interval=5,
                    device="cpu", out_dir=out_dir)
    return TrainConfig(**{**settings, **overrides})


def run_two_processes(out_dir, *args: str) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               __file__, str(out_dir), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A session of its own, so a hang can be ended with the workers the launcher started.
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, start_new_session=True)
    try:
        _, stderr = launcher.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        _, stderr = launcher.communicate()
        pytest.fail(f"two-process training did not finish in 180 s: {stderr[-3000:]}")
    assert launcher.returncode == 0, stderr[-3000:]


def test_two_processes_take_the_same_steps_as_one(tmp_path):
    run_two_processes(tmp_path)
    distributed = json.loads((tmp_path / "history.json").read_text())

    model = tiny_model()
    single = train(model, TRAIN, VAL, config(), progress=False)
    assert distributed["losses"] == pytest.approx(single.losses, rel=1e-5)
    assert distributed["val_loss"] == pytest.approx(single.evals[-1]["loss"], rel=1e-5)
    # Rank 0 saved the model; its weights are the single process's, up to rounding.
    saved = load_model(tmp_path)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(saved.state_dict()[name], tensor, rtol=1e-4, atol=1e-6)
    # Only rank 0 wrote the log: one line per step, not two.
    lines = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["event"] == "step"] == [1, 2, 3, 4, 5]
    # Both processes got the same global loss (all-reduced) and a batch-size error.
    assert distributed["rank1_losses"] == distributed["losses"]
    assert "divisible by the number of processes (2)" in distributed["batch_error"]


if __name__ == "__main__":  # one of the processes started by torch.distributed.run
    import torch.distributed as dist

    out_dir = sys.argv[1]
    history = train(tiny_model(), TRAIN, VAL, config(out_dir), progress=False)
    try:
        train(tiny_model(), TRAIN, None, config(batch_size=7), progress=False)
        batch_error = ""
    except ValueError as err:
        batch_error = str(err)
    # Gather rank 1's losses to rank 0 to check every process saw the same numbers.
    losses = torch.tensor(history.losses, dtype=torch.float64)
    gathered = [torch.zeros_like(losses) for _ in range(2)]
    dist.all_gather(gathered, losses)  # train() started the process group and keeps it
    if int(os.environ["RANK"]) == 0:
        with open(os.path.join(out_dir, "history.json"), "w") as f:
            json.dump({"losses": history.losses, "val_loss": history.evals[-1]["loss"],
                       "rank1_losses": gathered[1].tolist(), "batch_error": batch_error}, f)
