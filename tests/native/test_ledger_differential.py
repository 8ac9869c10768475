"""The compiled ledger against the pure-Python reference: the same events give the same books.

Two ledgers take the same random batches, one through ``Ledger.apply`` (the compiled loop
when the extension is built) and one through ``Ledger._apply_python`` (the reference).
The streams mix sane pool traffic with every anomaly the ledger counts and every kind of
malformed field, with retirement, owner folding and the "(other owners)" row in between,
and an owner whose opening raises ``MemoryError`` (an error that is not the event's
fault). After every batch both ledgers must say the same thing, down to each live block's
packed record.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from memactor.events import MAX_SIZE, EventKind, MemoryEvent, SiteTable
from memactor.metrics import Ledger
from memactor.metrics._accounts import OwnerAccount

NOW = 10**12
BOOM = "boom"


class FailingLedger(Ledger):
    """A ledger whose owner table cannot grow for the owner ``"boom"``."""

    def _open_owner(self, owner: object) -> OwnerAccount:
        if owner == BOOM:
            raise MemoryError("the owner table could not grow")
        return super()._open_owner(owner)


class Clock:
    def __init__(self) -> None:
        self.now_ns = 1_000

    def __call__(self) -> int:
        return self.now_ns


class Row:
    """An event that is neither a tuple nor a list: the ledger unpacks it by iterating."""

    def __init__(self, fields: tuple[Any, ...]) -> None:
        self.fields = fields

    def __iter__(self) -> Any:
        return iter(self.fields)


def fresh_copy(name: str) -> str:
    """An equal string that is another object (the ledger switches books by identity)."""
    return "".join(list(name))


COMPONENTS = ["pool", "decode", "gpu.manager"]
DEVICES = ["cpu", "cpu", "cuda:0", "cuda:1"]
KINDS = [*EventKind, *(int(kind) for kind in EventKind), *[EventKind.ALLOC] * 3, EventKind.RELEASE]
SIZES = [0, 7, 4096, 4096, 65_536, 2**20 + 3]
OWNERS = [f"owner-{i}" for i in range(12)] + [""]
TAGS = [(), (), (), (), (("site", "3"),), (("site", "4"),), (("requested", "100"),)]
ODD_SIZES = [MAX_SIZE, MAX_SIZE + 1, -1, 2**70, np.int64(4096), np.uint32(7), 4096.0, 1.5]
# For each field, values that are out of range, of the wrong type, or both.
ODD: list[list[Any]] = [
    [7, -1, 2**70, "x", None, 4.0, True, np.int64(3)],
    ["", None, 3, "(retired)", ["unhashable"]],
    [-1, 2**63, 2**63 - 1, 1.0, "1", None, np.int64(2), True, [1]],
    [*ODD_SIZES, "4096", None, True],
    ["gpu", None, "cuda:01", 0],
    [None, 5, "(other owners)", BOOM],
    [-(2**63), 2**63 - 1, 2**63, -(2**63) - 1, 2**80, 1.5, np.int64(7), "1", None],
    [*ODD_SIZES, None],
    [None, "bad", 3],
    [
        (("requested", "zz"),),
        (("requested", "99999999"),),
        (("site", "x"),),
        (("site", "0"),),
        (("site", "\u0661"),),
        (("a", "b"), ("requested", "5")),
        (("requested", "5"), ("site", "3")),
        None,
        ("not pairs",),
    ],
]
SHAPES = ["list", "row", "short", "long", "none", "int"]


@st.composite
def batches(draw: st.DrawFn) -> list[Any]:
    """A batch as a reporter sends it: mostly one component's events on one device, each
    with now and then one odd field, or an odd shape."""
    home = (draw(st.sampled_from(COMPONENTS)), draw(st.sampled_from(DEVICES)))
    batch: list[Any] = []
    for _ in range(draw(st.integers(0, 40))):
        component, device = home
        if draw(st.integers(0, 5)) == 0:
            component, device = draw(st.sampled_from(COMPONENTS)), draw(st.sampled_from(DEVICES))
        if draw(st.booleans()):
            component = fresh_copy(component)
        fields: list[Any] = [
            draw(st.sampled_from(KINDS)),
            component,
            draw(st.integers(0, 5)),
            draw(st.sampled_from(SIZES)),
            device,
            draw(st.sampled_from(OWNERS)),
            draw(st.integers(0, 10**6)),
            draw(st.sampled_from(SIZES)),
            draw(st.sampled_from(DEVICES)),
            draw(st.sampled_from(TAGS)),
            0,
        ]
        odd = draw(st.integers(0, 4 * len(ODD)))
        if odd < len(ODD):
            fields[odd] = draw(st.sampled_from(ODD[odd]))
        shape = draw(st.integers(0, 50))
        if shape < len(SHAPES):
            batch.append(reshaped(tuple(fields), SHAPES[shape]))
        elif shape % 2:
            batch.append(tuple.__new__(MemoryEvent, fields))
        else:
            batch.append(tuple(fields))
    return batch


def reshaped(fields: tuple[Any, ...], shape: str) -> Any:
    if shape == "list":
        return list(fields)
    if shape == "row":
        return Row(fields)
    if shape == "short":
        return fields[:10]
    if shape == "long":
        return (*fields, 0)
    return None if shape == "none" else 42


# A batch, then how far the clock moves before a sample (None: no sample).
steps = st.lists(
    st.tuples(batches(), st.sampled_from([None, None, 10, 600, 5_000])), min_size=1, max_size=8
)


def make_ledger() -> tuple[FailingLedger, Clock]:
    clock = Clock()
    ledger = FailingLedger(clock=clock, retire_after_ns=1_000, owner_limit=3, sites=SiteTable())
    return ledger, clock


def books(ledger: Ledger) -> dict[str, Any]:
    """Everything the ledger says, and the raw books behind it."""
    snapshot = ledger.snapshot("books", now_ns=NOW)
    owner_table = ledger._owner_table
    return {
        "statistics": ledger.statistics(),
        "components": tuple(ledger.components()),
        "owners": ledger.owners(),
        "devices": ledger.devices(),
        "transfers": ledger.transfers(),
        "blocks": list(snapshot.blocks),
        "site_usage": snapshot.site_usage,
        "series": snapshot.series,
        "events_applied": ledger.events_applied,
        "records": {
            key: (
                dict(account.blocks),
                account.freed,
                account.freed_before,
                account.requests,
                account.sites,
                account.free_limit,
            )
            for key, account in ledger._accounts.items()
        },
        "holders": [(h.owner, h.tag, h.in_use, h.peak_in_use) for h in owner_table.by_index],
        "site_books": ledger._site_books,
        "totals": (ledger._reserved, ledger._in_use, ledger._peak_reserved, ledger._peak_in_use),
    }


def apply_both(
    compiled: Ledger, reference: Ledger, batch: list[Any]
) -> tuple[str | None, str | None]:
    """Apply *batch* to both; what each raised (its type's name), if anything."""
    outcomes: list[str | None] = []
    for apply in (compiled.apply, reference._apply_python):
        try:
            assert apply(batch) == len(batch)
        except MemoryError:
            outcomes.append("MemoryError")
        else:
            outcomes.append(None)
    return outcomes[0], outcomes[1]


@settings(max_examples=300)
@given(steps)
def test_random_streams_give_the_same_books(steps: list[tuple[list[Any], int | None]]) -> None:
    compiled, compiled_clock = make_ledger()
    reference, reference_clock = make_ledger()
    for batch, advance in steps:
        raised = apply_both(compiled, reference, batch)
        assert raised[0] == raised[1]
        if advance is not None:
            for ledger, clock in ((compiled, compiled_clock), (reference, reference_clock)):
                clock.now_ns += advance
                ledger.sample()
        assert books(compiled) == books(reference)


def test_an_error_that_is_not_the_events_fault_leaves_the_same_books() -> None:
    make = MemoryEvent.unchecked
    batch = [
        make(EventKind.ALLOC, "pool", 1, 4096, "cpu", "decode", 10),
        make(EventKind.ALLOC, "pool", 2, 512, "cpu", "decode", 20),
        make(EventKind.FREE, "pool", 1, 4096, "cpu", "", 30),
        make(EventKind.ALLOC, "pool", 3, 64, "cpu", BOOM, 40),
        make(EventKind.ALLOC, "pool", 4, 64, "cpu", "decode", 50),
    ]
    compiled, _ = make_ledger()
    reference, _ = make_ledger()
    assert apply_both(compiled, reference, batch) == ("MemoryError", "MemoryError")
    assert compiled.events_applied == reference.events_applied == 3
    assert compiled.bytes_reserved == 512
    assert books(compiled) == books(reference)


def churn(count: int, seed: int) -> list[list[tuple[Any, ...]]]:
    """A long pool-like stream in batches of 256: lends, returns, re-lends, frees, resizes,
    with now and then a double free of a block freed long ago."""
    rng = np.random.default_rng(seed)
    live: dict[str, list[int]] = {"pool": [], "decode": []}
    cached: dict[str, list[int]] = {"pool": [], "decode": []}
    freed: list[int] = []
    next_block = 0
    batches: list[list[tuple[Any, ...]]] = []
    for start in range(0, count, 256):
        component = str(rng.choice(["pool", "decode"]))
        batch: list[tuple[Any, ...]] = []
        for step in range(256):
            ts = start + step
            roll = rng.random()
            owner = f"owner-{rng.integers(20)}"
            if roll < 0.3 or not live[component]:
                if cached[component] and roll < 0.2:
                    block = cached[component].pop()
                    batch.append((3, component, block, 4096, "cpu", owner, ts, 0, None, (), 0))
                else:
                    next_block += 1
                    block = next_block
                    batch.append((0, component, block, 4096, "cpu", owner, ts, 0, None, (), 0))
                live[component].append(block)
            elif roll < 0.6:
                block = live[component].pop(int(rng.integers(len(live[component]))))
                cached[component].append(block)
                batch.append((4, component, block, 4096, "cpu", "", ts, 0, None, (), 0))
            elif roll < 0.95:
                block = live[component].pop(int(rng.integers(len(live[component]))))
                freed.append(block)
                batch.append((1, component, block, 4096, "cpu", "", ts, 0, None, (), 0))
            elif freed:
                block = freed[int(rng.integers(len(freed)))]
                batch.append((1, component, block, 4096, "cpu", "", ts, 0, None, (), 0))
        batches.append(batch)
    return batches


def test_a_long_stream_gives_the_same_books() -> None:
    """Thousands of frees (so the remembered frees roll over), many owners, peaks."""
    compiled, _ = make_ledger()
    reference, _ = make_ledger()
    for batch in churn(60_000, seed=3):
        assert apply_both(compiled, reference, batch) == (None, None)
    assert compiled.statistics().anomalies > 0
    assert books(compiled) == books(reference)


def test_a_batch_with_more_owners_than_the_compiled_loop_keeps_at_once() -> None:
    """Hundreds of owners in one batch, each back more than once: the compiled loop
    writes owners' books back when it has too many in hand, and at the end."""
    batch: list[tuple[Any, ...]] = []
    for round_ in range(3):
        for owner in range(300):
            block = round_ * 1000 + owner
            ts = len(batch)
            batch.append(
                (0, "pool", block, 64 + owner, "cpu", f"owner-{owner}", ts, 0, None, (), 0)
            )
            if owner % 3:
                batch.append((4, "pool", block, 64 + owner, "cpu", "", ts, 0, None, (), 0))
    compiled, _ = make_ledger()
    reference, _ = make_ledger()
    assert apply_both(compiled, reference, batch) == (None, None)
    assert len(compiled.owners()) == 4  # three by name, and "(other owners)"
    assert books(compiled) == books(reference)
