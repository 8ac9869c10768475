"""An install without a C compiler: it succeeds, runs in pure Python and says so once.

One purposeful subprocess test: it builds a wheel of this checkout with the compiler
replaced by ``false`` (as on a machine without one), installs it into a folder, and
imports the hot path from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_USE = """
import trio
from memactor.metrics import Ledger
from memactor.runtime import MemoryHub
from memactor import _native

ledger = Ledger()
ledger.apply([(0, "pool", 1, 100, "cpu", "w", 5, 0, None, (), 1)])
print("in use", ledger.bytes_in_use, _native.implementation())
"""


def test_an_install_without_a_compiler_runs_in_pure_python_and_says_so_once(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT / "memactor", source / "memactor", ignore=_built)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env = {**os.environ, "CC": "false"}
    env.pop("MEMACTOR_PURE_PYTHON", None)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(source),
            "-w",
            str(wheels),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("memactor-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert not [name for name in archive.namelist() if name.endswith((".so", ".pyd"))]
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        check=True,
        capture_output=True,
    )
    run = subprocess.run(
        [sys.executable, "-c", _USE],
        env={**env, "PYTHONPATH": str(site)},
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.stdout.splitlines() == ["in use 100 python"]
    said = [line for line in run.stderr.splitlines() if "compiled core is not available" in line]
    assert len(said) == 1, run.stderr


def _built(folder: str, names: list[str]) -> list[str]:
    """Leave out what a build here made: the test must build from sources alone."""
    return [n for n in names if n.endswith((".so", ".pyd")) or n == "__pycache__"]
