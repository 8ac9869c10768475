"""Instruction counts under callgrind, for the benchmarks: wall clock on a shared machine
is noisy, instruction counts are not.

:func:`instructions_per_call` runs a command under ``valgrind --tool=callgrind`` twice,
with *count* and three times *count* calls of what it measures; the difference leaves out
the start-up. One hash seed, and numpy's BLAS without worker threads: their spinning is
counted too, and differs from run to run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence

CHILD_ENV = {
    **os.environ,
    "PYTHONHASHSEED": "0",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


def available() -> bool:
    """Whether valgrind is on the PATH."""
    return shutil.which("valgrind") is not None


def instructions(command: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Instructions *command* executes under callgrind, start-up included."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
            check=True, capture_output=True, env={**CHILD_ENV, **(env or {})},
        )  # fmt: skip
        with open(out) as file:
            summary = re.search(r"^summary: (\d+)", file.read(), re.MULTILINE)
    assert summary is not None
    return int(summary.group(1))


def instructions_per_call(
    command: Callable[[int], Sequence[str]], count: int, env: dict[str, str] | None = None
) -> float:
    """Instructions per call of what ``command(n)`` runs *n* times: the difference of a
    run of ``3 * count`` and one of ``count``, over ``2 * count``."""
    return (instructions(command(3 * count), env) - instructions(command(count), env)) / (2 * count)
