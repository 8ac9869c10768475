"""scripts/bench_leaks.py's scenarios, a few of them, through the bench's own code: the
labelled set cannot rot, and the verdict keeps finding what the trend fit misses."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_leaks.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_leaks", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_leaks"] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["bench_leaks"]
    return module


CHOSEN = (
    "sawtooth-leak-64k",
    "sawtooth-twin",
    "dead-held-30",
    "dead-twin-setup",
    "buffers-twin-churn",
    "pool-twin",
)


def test_the_set_is_labelled_with_leaks_and_twins(bench: ModuleType) -> None:
    every = bench.scenarios()
    assert len(every) >= 30
    assert len({s.name for s in every}) == len(every)
    kinds = {s.kind for s in every}
    assert len(kinds) == 10
    for kind in kinds:
        labels = {s.leaking is None for s in every if s.kind == kind}
        assert labels == {True, False}, kind


def test_a_few_scenarios_get_the_verdicts_the_bench_prints(bench: ModuleType) -> None:
    chosen = [s for s in bench.scenarios() if s.name in CHOSEN]
    outcomes = {o.scenario.name: o for o in bench.run_all(chosen, seconds=60.0, checkpoint_s=10.0)}
    # A slow leak under a large sawtooth: the fit's R² is poor, the floor rises anyway.
    under_sawtooth = outcomes["sawtooth-leak-64k"]
    assert under_sawtooth.old_flagged == set()
    assert under_sawtooth.new_flagged == {"frames"}
    assert under_sawtooth.new_detected_s is not None
    # Held but dead without growth: stale, so suspect, with the owner named.
    dead = outcomes["dead-held-30"]
    assert dead.new_flagged == {"parse"}
    assert any("30 blocks" in reason for reason in dead.reasons)
    for twin in ("sawtooth-twin", "dead-twin-setup", "buffers-twin-churn", "pool-twin"):
        assert outcomes[twin].new_flagged == set(), twin
        assert outcomes[twin].old_flagged == set(), twin
    scored = bench.score(list(outcomes.values()), "new")
    assert (scored.precision, scored.recall, scored.false_positive_rate) == (1.0, 1.0, 0.0)
