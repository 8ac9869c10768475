"""Shared test settings: hypothesis profiles that keep runs deterministic."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("MEMACTOR_HYPOTHESIS_PROFILE", "default"))

pytest_plugins = ["pytester"]
