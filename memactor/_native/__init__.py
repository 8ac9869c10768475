"""The compiled hot path, and the choice between it and the pure-Python reference.

memactor's hot path (reporters' emits, the ledger's apply) has two implementations with
one meaning: the pure-Python one in :mod:`memactor.runtime` and :mod:`memactor.metrics`,
which is the reference, and C extensions in this package, built when memactor is
installed from source on a machine with a C compiler (and shipped in wheels). The
differential tests in ``tests/native`` hold them to the same results.

:func:`load` gives an extension module, or ``None`` where the pure-Python code must run:
when ``MEMACTOR_PURE_PYTHON=1`` is set (asked for: nothing is said), or when the extension
is absent (its build failed or was skipped: memactor says so once per process, with a
:class:`RuntimeWarning`, and runs in pure Python).
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import Final

PURE_PYTHON_VARIABLE: Final = "MEMACTOR_PURE_PYTHON"
"""The environment variable that selects the pure-Python implementation when set to 1."""

_warned = False


def pure_python_asked() -> bool:
    """Whether the environment asks for the pure-Python implementation."""
    return os.environ.get(PURE_PYTHON_VARIABLE, "").strip() not in ("", "0")


def load(name: str) -> ModuleType | None:
    """The extension module ``memactor._native.<name>``, or ``None``: pure Python was
    asked for, or the extension is missing (said once per process, as a warning)."""
    global _warned
    if pure_python_asked():
        return None
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError as error:
        if not _warned:
            _warned = True
            warnings.warn(
                f"memactor's compiled core is not available ({error}); running in pure "
                f"Python, which is exact but slower. Reinstall with a C compiler present "
                f"to build it, or set {PURE_PYTHON_VARIABLE}=1 to say this is intended.",
                RuntimeWarning,
                stacklevel=2,
            )
        return None


MODULES: Final = ("_ledger", "_emit")
"""The extension modules of the compiled hot path (``memactor/_native/NAME.c``)."""


def implementation() -> str:
    """``"compiled"`` when every extension module of the hot path loads and pure Python
    was not asked for, ``"python"`` otherwise. Says nothing, whichever it is."""
    if pure_python_asked():
        return "python"
    try:
        for name in MODULES:
            importlib.import_module(f"{__name__}.{name}")
    except ImportError:
        return "python"
    return "compiled"
