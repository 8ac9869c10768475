"""The demo: its scenario, its verdicts and its command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from memactor import Snapshot, __version__
from memactor.cli import main
from memactor.cli._demo import simulate
from memactor.metrics import find_growth


def test_leak_is_found_by_trend_and_by_diff() -> None:
    result = simulate(30.0, seed=3)
    growing = [t.component for t in find_growth(result.end) if t.growing]
    assert growing == [result.leaky] == ["cache.leaky"]
    assert [s.component for s in result.change.suspects] == ["cache.leaky"]


def test_without_the_leak_nothing_is_suspected() -> None:
    result = simulate(30.0, seed=3, leak=False)
    assert not any(t.growing for t in find_growth(result.end))
    assert result.change.suspects == ()


def test_pipeline_drains_to_the_leak_and_the_cache() -> None:
    result = simulate(20.0, seed=5)
    end = result.end
    # Everything in use at the end is the leak; the pool only caches.
    assert end.totals.bytes_in_use == end.component("cache.leaky").bytes_in_use
    pool = end.component("pool")
    assert pool.bytes_in_use == 0
    assert pool.bytes_reserved == int(end.blocks.size[end.blocks.rows_of("pool", "cpu")].sum())
    assert end.totals.anomalies == 0
    assert end.totals.malformed == 0


def test_same_seed_same_numbers() -> None:
    first, second = simulate(10.0, seed=9), simulate(10.0, seed=9)
    assert first.end.components == second.end.components
    assert first.end.blocks == second.end.blocks


def test_demo_command_prints_both_verdicts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "end.msgpack"
    assert main(["demo", "--headless", "--seconds", "20", "--save", str(target)]) == 0
    out = capsys.readouterr().out
    assert "leak verdict: LEAK SUSPECTED in 1 of" in out
    assert "verdict: LEAK SUSPECTED in 1 component\n  cache.leaky@cpu" in out
    assert Snapshot.load(target).label == "end"


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "1e9"])
def test_demo_rejects_a_duration_out_of_range(
    seconds: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--headless", "--seconds", seconds]) == 2
    assert "--seconds must be above 0 and at most 3600" in capsys.readouterr().err


def test_console_script_version_and_help() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "memactor.cli", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"memactor {__version__}"
    usage = subprocess.run(
        [sys.executable, "-m", "memactor.cli", "--help"], capture_output=True, text=True
    )
    assert usage.returncode == 0
    assert "demo" in usage.stdout
