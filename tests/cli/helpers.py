"""Run the command line as a user would: a subprocess with stdout a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def memactor(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m memactor ARGS`` (with *env* added to the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "memactor", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
