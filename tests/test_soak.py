"""scripts/soak.py, in a run of three seconds: it soaks, and says nothing was lost."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_soak_loses_no_event_and_no_descriptor() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "soak.py"), "--minutes", "0.05"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("soak: 0.05 min, ")
    assert re.fullmatch(r"events lost: 0 \(emitted ([\d,]+); applied \1 \+ dropped 0\)", lines[1])
    assert re.fullmatch(r"file descriptors: (\d+) at start, \1 at end", lines[2])
    assert lines[3].startswith("RSS: ")
