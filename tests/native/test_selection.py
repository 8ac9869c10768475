"""Which apply a ledger uses: the compiled one wherever it is built, unless asked not to."""

from __future__ import annotations

import os
import subprocess
import sys

from memactor import _native
from memactor.metrics import Ledger, _ledger


def test_the_compiled_apply_is_in_use_unless_pure_python_is_asked_for() -> None:
    # The test run builds the extension (scripts/test installs memactor, which compiles
    # it), so "python" here means either MEMACTOR_PURE_PYTHON=1 or a broken build.
    if _native.pure_python_asked():
        assert Ledger.implementation == "python"
        assert _ledger._compiled is None
    else:
        assert Ledger.implementation == "compiled"
        assert _ledger._compiled is not None
        assert _ledger._compiled.__name__ == "memactor._native._ledger"


def test_pure_python_is_chosen_by_the_environment_in_a_fresh_process() -> None:
    code = "from memactor.metrics import Ledger; print(Ledger.implementation)"
    env = {**os.environ, "PYTHONPATH": os.getcwd(), _native.PURE_PYTHON_VARIABLE: "1"}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python"


def test_both_applies_take_any_iterable_and_count_what_they_took() -> None:
    from memactor.events import EventKind, MemoryEvent

    for method in ("apply", "_apply_python"):
        ledger = Ledger()
        made = (
            MemoryEvent.unchecked(EventKind.ALLOC, "pool", block, 64, "cpu", "w", block)
            for block in range(5)
        )
        assert getattr(ledger, method)(made) == 5
        assert ledger.events_applied == 5
        assert ledger.bytes_in_use == 320
