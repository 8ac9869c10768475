"""Shared test settings: deterministic hypothesis profiles, and short socket directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("MEMACTOR_HYPOTHESIS_PROFILE", "default"))

pytest_plugins = ["pytester"]


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short temporary directory: a Unix socket path may not exceed 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ma-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
