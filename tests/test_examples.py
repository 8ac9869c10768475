"""The runnable examples under scripts/examples: each runs and prints what its scenario
must produce."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
