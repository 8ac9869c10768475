"""The compiled apply on inputs that once broke it: it never crashes, and it sums as Python does.

A Batch's records are read in place; the Python code an event calls (opening an account
or an owner) may change that very Batch, so the loop must not keep a record's address
or its borrowed objects across such a call; a finalizer the collector runs while a
table lists its items may change the table. Those cases run in a child interpreter with
the debug allocator, which fills freed memory with a pattern: a record read after it was
freed crashes the child at once instead of reading stale bytes by luck. Lifetimes are
summed in C integers on the records' fast path: a total that would outgrow them goes the
way of a tuple, which sums Python ints, so both ways give the same books.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memactor._native import pure_python_asked
from memactor.events import EventKind
from memactor.metrics import Ledger

emit: Any = pytest.importorskip("memactor._native._emit", reason="the extension is not built")

ROOT = Path(__file__).resolve().parents[2]
ALLOC, FREE = int(EventKind.ALLOC), int(EventKind.FREE)
ACQUIRE, RELEASE = int(EventKind.ACQUIRE), int(EventKind.RELEASE)

CHILD = """
import sys
from memactor._native import _emit as emit
from memactor.metrics import Ledger

mode = sys.argv[1]
ALLOC, ACQUIRE, RELEASE = {alloc}, {acquire}, {release}


class Meddling(Ledger):
    batch = None

    def meddle(self):
        if self.batch is None:
            return
        if mode == "grow":
            for i in range(2000):
                self.batch.append((ALLOC, "late", 10**6 + i, 8, "cpu", "x", 1, 0, None, (), 0))
            self.batch = None
        else:
            self.batch.clear()

    def _open_account(self, component, device):
        if mode != "lend":
            self.meddle()
        return super()._open_account(component, device)

    def _open_owner(self, owner):
        if mode == "lend":
            self.meddle()
        return super()._open_owner(owner)


ledger = Meddling()
batch = emit.Batch()
# Names made at run time, held by nothing but the Batch once the locals go.
component, device = "".join(["po", "ol"]), "".join(["cp", "u"])
if mode == "lend":
    ledger.apply(
        [
            (ALLOC, "pool", 5, 8, "cpu", "a", 1, 0, None, (), 0),
            (RELEASE, "pool", 5, 8, "cpu", "", 1, 0, None, (), 1),
        ]
    )
    batch.append((ACQUIRE, component, 5, 8, device, "".join(["ne", "w"]), 1, 0, None, (), 1))
else:
    for i in range(3):
        batch.append((ALLOC, component, i, 8, device, "owner%d" % i, 1, 0, None, (), i))
del component, device
ledger.batch = batch
applied = ledger.apply(batch)
account = ledger._accounts[("pool", "cpu")]
print(applied, sorted(account.blocks.keys()), account.in_use)
"""


@pytest.mark.skipif(
    pure_python_asked(), reason="the pure-Python apply copies a Batch into a list first"
)
@pytest.mark.parametrize(
    ("mode", "printed"),
    [
        # The first event opened the account and emptied the Batch: it alone applied.
        ("clear", "0 [0] 8"),
        # The Batch grew (its records moved) while its first event opened the account.
        ("grow", "2003 [0, 1, 2] 24"),
        # An ACQUIRE whose owner is new emptied the Batch while the owner opened.
        ("lend", "0 [5] 8"),
    ],
)
def test_a_batch_changed_while_it_is_applied_is_read_safely(mode: str, printed: str) -> None:
    assert in_child(CHILD.format(alloc=ALLOC, acquire=ACQUIRE, release=RELEASE), mode) == printed


def in_child(script: str, *args: str) -> str:
    """What *script* prints in a child interpreter with the debug allocator."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONMALLOC": "debug"}
    child = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    return child.stdout.strip()


MEDDLING_FINALIZER = """
import gc
from memactor._native._ledger import Blocks

table = Blocks()
for i in range(1000):
    table[i] = i


class Meddler:
    def __init__(self):
        self.cycle = self

    def __del__(self):
        for i in range(1000):
            del table[i]
        for i in range(5000, 5100):
            table[i] = 1


gc.collect()
gc.disable()
Meddler()
gc.set_threshold(1)
gc.enable()
try:
    table.items()
except RuntimeError as error:
    print(error, len(table))
"""


def test_a_table_changed_by_a_finalizer_while_it_lists_its_items_raises() -> None:
    # Each (id, record) pair is a tuple: making one runs the collector, whose finalizer
    # empties the table and refills it with fewer blocks.
    assert in_child(MEDDLING_FINALIZER) == "Blocks changed size during iteration 100"


def lifetimes(use_batch: bool) -> tuple[int, int, int]:
    ledger = Ledger()
    # A FREE's time is not range-checked: this one makes a lifetime of 2**127 - 1 ns.
    ledger.apply(
        [
            (ALLOC, "pool", 1, 8, "cpu", "o", 0, 0, None, (), 0),
            (FREE, "pool", 1, 8, "cpu", "", 2**127 - 1, 0, None, (), 1),
            (ALLOC, "pool", 2, 8, "cpu", "o", 0, 0, None, (), 2),
        ]
    )
    events: Any = [(FREE, "pool", 2, 8, "cpu", "", 10**9, 0, None, (), 3)]
    if use_batch:
        events = emit.Batch(events)
    ledger.apply(events)
    account = ledger._accounts[("pool", "cpu")]
    return account.lifetime_total_ns, account.lifetime_max_ns, account.lifetimes


def test_a_lifetime_total_beyond_128_bits_is_summed_whole() -> None:
    assert lifetimes(use_batch=True) == lifetimes(use_batch=False)
    assert lifetimes(use_batch=True) == (2**127 - 1 + 10**9, 2**127 - 1, 2)


COUNTERS = (
    "reserved",
    "in_use",
    "peak_reserved",
    "peak_in_use",
    "allocations",
    "frees",
    "releases",
    "lifetimes",
    "lifetime_total_ns",
    "lifetime_max_ns",
)


def ended_without_its_owner(kind: int, use_batch: bool) -> dict[str, Any]:
    ledger = Ledger()
    ledger.apply(
        [
            (ALLOC, "pool", 1, 8, "cpu", "o", 5, 0, None, (), 0),
            (ALLOC, "pool", 2, 16, "cpu", "o", 5, 0, None, (), 1),
        ]
    )
    # The owner's row is gone (never so in a ledger left alone): the FREE or RELEASE of
    # a block it holds fails where it reaches the owner (IndexError, not the event's
    # fault), and both ways keep the books as they stood at that step and raise it.
    del ledger._holders[1:]
    events: Any = [
        (kind, "pool", 1, 8, "cpu", "", 9, 0, None, (), 2),
        (kind, "pool", 2, 16, "cpu", "", 9, 0, None, (), 3),
    ]
    if use_batch:
        events = emit.Batch(events)
    with pytest.raises(IndexError):
        ledger.apply(events)
    # A snapshot names each block's owner: read the counters themselves.
    account = ledger._accounts[("pool", "cpu")]
    device = account.device_account
    return {
        "account": [getattr(account, name) for name in COUNTERS],
        "device": [device.reserved, device.in_use, device.peak_reserved, device.peak_in_use],
        "ledger": [ledger._reserved, ledger._in_use, ledger._events_applied],
        "blocks": dict(account.blocks.items()),
        "freed": set(account.freed),
    }


@pytest.mark.parametrize("kind", [FREE, RELEASE])
def test_an_end_that_fails_at_its_owner_leaves_the_books_the_reference_leaves(kind: int) -> None:
    assert ended_without_its_owner(kind, use_batch=True) == ended_without_its_owner(
        kind, use_batch=False
    )
