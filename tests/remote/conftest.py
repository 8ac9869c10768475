"""Fixtures of the stream tests: a private runtime directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def runtime(socket_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$XDG_RUNTIME_DIR`` pointed at a fresh directory; returns its memactor directory."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(socket_dir))
    return socket_dir / "memactor"
