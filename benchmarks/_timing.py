"""Helpers shared by the benchmarks: alternate ours and the peer, keep the median, make a
results row, run quietly, and give each benchmark module its own command line."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def alternate(ours: Callable[[], object], peer: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of ``ours()`` and ``peer()``, called in turns.

    The machines drift between two speed levels about 1.3x apart; alternating puts both sides
    through the same drift, and the median ignores the odd stall.
    """
    ours_times, peer_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ours()
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        peer()
        peer_times.append(time.perf_counter() - start)
    return statistics.median(ours_times), statistics.median(peer_times)


def row(name: str, ours: float, peer: float, unit: str, target: float, lower_is_better: bool = True,
        **extra) -> dict:
    """One results row; ``ratio`` is ours / peer; ``met`` compares it with ``target``."""
    ratio = ours / peer
    met = ratio <= target if lower_is_better else ratio >= target
    return {"name": name, "ours": ours, "peer": peer, "unit": unit, "ratio": round(ratio, 3),
            "target": f"{'<=' if lower_is_better else '>='} {target}", "met": bool(met), **extra}


def run_quietly(benchmarks: list[Callable[[bool], dict]], quick: bool) -> list[dict]:
    """Run each ``benchmark(quick)`` seeded, without Hugging Face's log lines and warnings."""
    import warnings

    import torch
    from transformers.utils import logging as hf_logging

    torch.manual_seed(0)
    hf_logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [benchmark(quick) for benchmark in benchmarks]


def command_line(run: Callable[[bool], list[dict]], doc: str) -> None:
    """``python -m benchmarks.bench_NAME [--quick]``: run one benchmark and print its rows."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    for r in run(parser.parse_args().quick):
        print(r)
