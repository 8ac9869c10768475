"""Fixtures of the stream tests: short socket directories, a private runtime directory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory: a Unix socket path may not exceed 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ma-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runtime(socket_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$XDG_RUNTIME_DIR`` pointed at a fresh directory; returns its memactor directory."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(socket_dir))
    return socket_dir / "memactor"
