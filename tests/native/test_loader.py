"""Choosing between the compiled hot path and the pure-Python reference."""

from __future__ import annotations

import sys
import warnings

import pytest

from memactor import _native


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget that this process was told already, so the first-time message shows."""
    monkeypatch.setattr(_native, "_warned", False)


@pytest.mark.usefixtures("fresh_warning")
def test_a_missing_extension_is_said_once_and_pure_python_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(_native.PURE_PYTHON_VARIABLE, raising=False)
    # A None entry makes the import system raise ImportError, as for a module never built.
    monkeypatch.setitem(sys.modules, "memactor._native._ledger", None)
    with pytest.warns(RuntimeWarning, match="compiled core is not available.*pure Python"):
        assert _native.load("_ledger") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _native.load("_ledger") is None  # said once per process
    assert _native.implementation() == "python"


@pytest.mark.usefixtures("fresh_warning")
@pytest.mark.parametrize("value", ["1", "yes"])
def test_pure_python_asked_for_says_nothing(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(_native.PURE_PYTHON_VARIABLE, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(_native.load(name) is None for name in _native.MODULES)
    assert _native.implementation() == "python"


@pytest.mark.parametrize("value", ["", "0"])
def test_zero_or_empty_does_not_ask_for_pure_python(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(_native.PURE_PYTHON_VARIABLE, value)
    assert not _native.pure_python_asked()


def test_every_extension_is_built_here() -> None:
    """./scripts/test installs memactor with a C compiler present: the compiled hot path
    must be what the suite runs, unless the run asked for pure Python."""
    expected = "python" if _native.pure_python_asked() else "compiled"
    assert _native.implementation() == expected
