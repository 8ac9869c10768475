"""Shared by the callgrind scripts: run a script under ``valgrind --tool=callgrind`` and
read the instructions it executed.

Wall clock on a shared machine is noisy; instruction counts are not. The environment of
each run is fixed: one hash seed, and numpy's BLAS without worker threads (their
spinning is counted too, and differs from run to run).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

CHILD_ENV = {
    **os.environ,
    "PYTHONHASHSEED": "0",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


def instructions(script: str, *args: str) -> int:
    """The instructions ``python script *args`` executes under callgrind."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, script, *args],
            check=True, capture_output=True, env=CHILD_ENV,
        )  # fmt: skip
        with open(out) as file:
            summary = re.search(r"^summary: (\d+)", file.read(), re.MULTILINE)
    assert summary is not None
    return int(summary.group(1))
