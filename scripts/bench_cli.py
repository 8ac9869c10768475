#!/usr/bin/env python3
"""Benchmark how fast the command line answers: ``memactor --help`` and
``memactor report --help`` against a bare interpreter (``python -c pass``).

Each command runs as a fresh process, in turns, so that a busy machine slows every one
alike; the median of the runs of each is printed with its ratio to ``python -c pass``.
The goal is at most 3x: help must not import trio, NumPy, Textual or rich. With
``--import-all`` it also times ``python -c "import memactor.actors, memactor.tui"``, what
``--help`` cost when the command line imported everything.

Run: ``.venv/bin/python scripts/bench_cli.py [--runs N] [--import-all]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 3.0
"""The most a help may cost, in bare interpreter starts."""


def commands(import_all: bool) -> dict[str, list[str]]:
    """What to time, by the name printed."""
    python = sys.executable
    timed = {
        "python -c pass": [python, "-c", "pass"],
        "memactor --help": [python, "-m", "memactor", "--help"],
        "memactor report --help": [python, "-m", "memactor", "report", "--help"],
    }
    if import_all:
        timed["import memactor.actors, .tui"] = [
            python,
            "-c",
            "import memactor.actors, memactor.tui",
        ]
    return timed


def time_once(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of one run of *argv*; it must succeed."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each (default: 21)")
    parser.add_argument("--import-all", action="store_true", help="also time importing every layer")
    options = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    timed = commands(options.import_all)
    for argv in timed.values():  # warm the file cache and the bytecode
        time_once(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(options.runs):
        for name, argv in timed.items():
            samples[name].append(time_once(argv, env))
    medians = {name: statistics.median(runs) for name, runs in samples.items()}
    bare = medians["python -c pass"]
    print(f"{options.runs} runs each, in turns; median wall time, and its ratio to python -c pass")
    worst = 0.0
    for name, median in medians.items():
        ratio = median / bare
        if name.startswith("memactor"):
            worst = max(worst, ratio)
        print(f"  {name:<30} {median * 1e3:7.1f} ms  {ratio:5.2f}x")
    verdict = "within" if worst <= GOAL else "OVER"
    print(f"slowest help: {worst:.2f}x a bare interpreter ({verdict} the {GOAL:g}x goal)")


if __name__ == "__main__":
    main()
