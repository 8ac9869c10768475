"""The runnable examples under scripts/examples: each runs and prints what its scenario
must produce."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "scripts" / "examples"


def run(name: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_basic_metrics() -> None:
    lines = run("basic_metrics.py")
    # Eight 1 MiB frames, the last three kept; four were held at once at the peak.
    assert lines == [
        "in use:      3145728 bytes (3 MiB)",
        "peak in use: 4194304 bytes",
        "live blocks: 3",
        "allocations: 8",
        "frees:       5",
        "owner:       decoder holds 3145728 bytes",
        "mailbox:     8 messages handled",
    ]


def test_snapshots_and_leaks(tmp_path: Path) -> None:
    lines = run("snapshots_and_leaks.py", str(tmp_path))
    assert lines[0] == "saved warm.msgpack and end.json"
    assert (tmp_path / "warm.msgpack").exists()
    assert (tmp_path / "end.json").exists()
    assert "verdict: LEAK SUSPECTED in 1 component" in lines
    # 48 entries of 64 KiB, blocks 4, 8, ... 44 never freed: 15 live at the end, 5 after
    # the warm-up; 12 to 48 minus the evicted ones are new.
    assert lines[-2] == f"suspect: cache, +{10 * 64 * 1024} bytes in use"
    assert lines[-1] == "new blocks lent out since the warm-up: 13"


def test_buffer_pool() -> None:
    lines = run("buffer_pool.py")
    # Two workers, four rounds of 1 MiB each: two misses, then hits from the cache.
    assert lines == [
        "hits: 6, misses: 2",
        "reserved: 2097152 bytes (2 MiB)",
        "in use:   0 bytes",
        "peak in use: 2097152 bytes",
        "owner worker-a: peak 1 MiB",
        "owner worker-b: peak 1 MiB",
        "cached blocks: 2, the ledger's live blocks: 2",
    ]


def test_chunk_processor() -> None:
    lines = run("chunk_processor.py")
    assert lines[:2] == ["chunks done: 32", "bytes processed: 8388608 (8 MiB)"]
    peak = int(lines[2].removeprefix("peak working memory: ").removesuffix(" bytes"))
    ledger_peak = lines[3].removeprefix("the ledger's peak for brighten.chunks: ")
    # Threads finish in any order, so the peak varies with timing, within its bound.
    assert ledger_peak == f"{peak} bytes"
    assert 2 * 256 * 1024 <= peak <= 6 * 256 * 1024
    assert lines[4] == "in use now: 0 bytes"
    assert float(lines[5].removeprefix("reuse ratio: ")) >= 0.9


def test_gpu_memory() -> None:
    lines = run("gpu_memory.py")
    # Without a GPU here, "auto" takes the host backend and says so; the numbers hold
    # on either backend.
    device = lines[1].removeprefix("device: ")
    assert lines[0].startswith("backend: auto: ")
    assert f"memactor in use on {device}: {4 * 4 * 2**20} bytes" in lines
    assert f"to device: 4 copies, {4 * 4 * 2**20} bytes" in lines
    assert f"to host:   1 copies, {4 * 2**20} bytes" in lines
    assert lines[-1] == "after free: 0 bytes"


def test_ray_pipeline_on_two_nodes() -> None:
    pytest.importorskip("ray")
    # Ray's workers are the raylets' children: they find this checkout's memactor
    # through PYTHONPATH, as the example's own process does.
    root = str(EXAMPLES.parent.parent)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "ray_pipeline.py")],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "stages on 2 nodes",
        "frames done: 6",
        "host: 2 live sources on cpu",
        "decoder: the aggregator's copy equals its ledger: True",
        "decoder: gone (closed)",
        "transformer: the aggregator's copy equals its ledger: True",
        "transformer: gone (closed)",
        "cluster peak reserved at least each stage's own: True",
        "live bytes after both left: 0",
    ]
