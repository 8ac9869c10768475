"""The ledger against a small reference model, over random event sequences with anomalies.

The model keeps only the live blocks (size, owner, allocation time) and plain counters,
and recomputes every sum from scratch after every event; peaks are the maximum of those
sums seen after any event. If the ledger's fast incremental books ever disagree with it,
one of them is wrong, and the model is short enough to check by eye.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from memactor.events import MAX_SIZE, EventKind
from memactor.metrics import (
    ComponentStats,
    DeviceStats,
    Ledger,
    LedgerStats,
    LiveBlock,
    OwnerStats,
)

COMPONENTS = ("pool", "decode.chunks")
DEVICES = ("cpu", "cuda:0")
VALID_DEVICES = frozenset({"cpu", "cuda:0", "cuda:1"})
OWNERS = ("", "decode", "encode", "upload")
INT64 = 2**63

ALLOC, FREE, RESIZE, ACQUIRE, RELEASE, TRANSFER = (int(kind) for kind in EventKind)


def fresh_copy(name: str) -> str:
    """An equal string that is a different object (the ledger caches by identity)."""
    return "".join(list(name))


components = st.builds(
    lambda name, copy: fresh_copy(name) if copy else name,
    st.sampled_from(COMPONENTS),
    st.booleans(),
)
devices = st.sampled_from(DEVICES)
blocks = st.integers(0, 3)
# Mostly sizes an allocator would report, some out of range, and (for the kinds that do
# arithmetic with the size) some of the wrong type.
SIZES = [0, 1, 7, 4096, 4096, 65_536, 2**20 + 3, MAX_SIZE, -1, MAX_SIZE + 1]
sizes = st.sampled_from(SIZES)
odd_sizes = st.sampled_from([*SIZES, "4096", 1.5])
times = st.integers(0, 10_000)
owners = st.sampled_from(OWNERS)
# The tags of a lend: mostly none, some requested sizes (a few bigger than the block, or
# not a size at all, which count as ``bad_requested``), and a tag the ledger ignores.
lend_tags = st.sampled_from(
    [
        (),
        (),
        (("requested", "4000"),),
        (("requested", "0"),),
        (("requested", "60000"),),
        (("requested", "-1"),),
        (("requested", 4000),),
        (("note", "x"), ("requested", "1")),
        (("note", "x"),),
    ]
)


def requested_in(tags: tuple[tuple[str, Any], ...]) -> Any:
    """The requested value *tags* carry (``None`` for none), as given."""
    return next((value for key, value in tags if key == "requested"), None)


def bucket_of(size: int) -> int:
    """Histogram bucket, by its definition: 0 for 0, else the i with 2**(i-1) <= size < 2**i."""
    if size == 0:
        return 0
    return next(i for i in range(1, 64) if size < 2**i)


@dataclass
class Block:
    size: int
    owner: str | None  # None while cached in its pool
    allocated_ns: int
    requested: int | None = None  # what its current lend asked for, if it said


@dataclass
class Books:
    """One (component, device): live blocks plus counters; sums are computed on demand."""

    blocks: dict[int, Block] = field(default_factory=dict)
    ever_freed: set[int] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    histogram: list[int] = field(default_factory=lambda: [0] * 49)
    lifetime_max_ns: int = 0
    peak_reserved: int = 0
    peak_in_use: int = 0
    peak_requested: int = 0

    def requested_in_use(self) -> int:
        return sum(b.requested or 0 for b in self.blocks.values() if b.owner is not None)

    def lend(self, block: Block, tags: Any) -> None:
        """Note what a lend of *block* asked for, where its tags say."""
        value = requested_in(tags) if tags else None
        if value is None:
            return
        if not (isinstance(value, str) and value.isdigit() and int(value) <= block.size):
            self.anomalies["bad_requested"] += 1
            return
        block.requested = int(value)
        self.counts["requested_lends"] += 1
        self.counts["bytes_lent"] += block.size
        self.counts["requested_bytes_lent"] += int(value)

    def reserved(self) -> int:
        return sum(b.size for b in self.blocks.values())

    def in_use(self) -> int:
        return sum(b.size for b in self.blocks.values() if b.owner is not None)

    def stray(self, block: int, action: str) -> str:
        if block in self.blocks:
            return f"double_{action}"
        return "use_after_free" if block in self.ever_freed else "unknown_block"


class Model:
    """What the ledger should say, computed the slow and obvious way."""

    def __init__(self) -> None:
        self.books: dict[tuple[str, str], Books] = {}
        self.owner_peaks: dict[str, int] = {}
        self.device_peaks: dict[str, tuple[int, int]] = {}
        self.peak_reserved = 0
        self.peak_in_use = 0
        self.routes: dict[tuple[str, str], tuple[int, int]] = {}
        self.applied = 0
        self.malformed = 0
        self.dropped = 0

    # -- sums, from scratch ----------------------------------------------------------

    def owner_in_use(self, owner: str) -> int:
        return sum(
            b.size
            for books in self.books.values()
            for b in books.blocks.values()
            if b.owner == owner
        )

    def device_sums(self, device: str) -> tuple[int, int]:
        on_device = [books for (_, d), books in self.books.items() if d == device]
        return sum(b.reserved() for b in on_device), sum(b.in_use() for b in on_device)

    def total_reserved(self) -> int:
        return sum(books.reserved() for books in self.books.values())

    def total_in_use(self) -> int:
        return sum(books.in_use() for books in self.books.values())

    def update_peaks(self) -> None:
        for books in self.books.values():
            books.peak_reserved = max(books.peak_reserved, books.reserved())
            books.peak_in_use = max(books.peak_in_use, books.in_use())
            books.peak_requested = max(books.peak_requested, books.requested_in_use())
        for owner, peak in self.owner_peaks.items():
            self.owner_peaks[owner] = max(peak, self.owner_in_use(owner))
        for device in {d for _, d in self.books}:
            reserved, in_use = self.device_sums(device)
            old_reserved, old_in_use = self.device_peaks.get(device, (0, 0))
            self.device_peaks[device] = (max(old_reserved, reserved), max(old_in_use, in_use))
        self.peak_reserved = max(self.peak_reserved, self.total_reserved())
        self.peak_in_use = max(self.peak_in_use, self.total_in_use())

    # -- one event -------------------------------------------------------------------

    def step(self, event: Any) -> None:
        self.applied += 1
        if self.classify_and_apply(event) == "malformed":
            self.malformed += 1
        self.update_peaks()

    def classify_and_apply(self, event: Any) -> str:
        if not isinstance(event, tuple) or len(event) != 11:
            return "malformed"
        kind, component, block, size, device, owner, ts, old_size, dst, tags, _seq = event
        if not isinstance(component, str) or not component or device not in DEVICES:
            return "malformed"
        books = self.books.setdefault((component, device), Books())
        live = books.blocks.get(block) if isinstance(block, int) else None

        def anomaly(name: str) -> str:
            books.anomalies[name] += 1
            return name

        if kind == ALLOC:
            if isinstance(size, str):
                return "malformed"
            if not 0 <= size <= MAX_SIZE:
                return anomaly("bad_size")
            if type(block) is not int or not 0 <= block < INT64:
                return anomaly("bad_block")
            if live is not None:
                return anomaly("duplicate_alloc")
            if type(ts) is not int or not isinstance(owner, str):
                return "malformed"
            if not -INT64 <= ts < INT64:
                return anomaly("bad_timestamp")
            books.blocks[block] = Block(size, owner, ts)
            books.lend(books.blocks[block], tags)
            self.owner_peaks.setdefault(owner, 0)
            books.counts["allocations"] += 1
            books.counts["bytes_allocated"] += size
            books.histogram[bucket_of(size)] += 1
        elif kind == FREE:
            if live is None:
                return anomaly("double_free" if block in books.ever_freed else "unknown_block")
            if type(ts) is not int:
                return "malformed"
            if size != live.size:
                anomaly("size_mismatch")
            del books.blocks[block]
            books.ever_freed.add(block)
            books.counts["frees"] += 1
            books.counts["lifetimes"] += 1
            lifetime = ts - live.allocated_ns
            if lifetime > 0:
                books.counts["lifetime_total_ns"] += lifetime
                books.lifetime_max_ns = max(books.lifetime_max_ns, lifetime)
        elif kind == RELEASE:
            if live is None or live.owner is None:
                return anomaly(books.stray(block, "release"))
            if size != live.size:
                anomaly("size_mismatch")
            live.owner = None
            live.requested = None
            books.counts["releases"] += 1
        elif kind == ACQUIRE:
            if live is None or live.owner is not None:
                return anomaly(books.stray(block, "acquire"))
            if not isinstance(owner, str):
                return "malformed"
            if size != live.size:
                anomaly("size_mismatch")
            live.owner = owner
            books.lend(live, tags)
            self.owner_peaks.setdefault(owner, 0)
            books.counts["acquires"] += 1
        elif kind == RESIZE:
            if live is None:
                return anomaly(books.stray(block, "resize"))
            if type(size) is not int:
                return "malformed"
            if not 0 <= size <= MAX_SIZE:
                return anomaly("bad_size")
            if old_size != live.size:
                anomaly("size_mismatch")
            books.counts["bytes_allocated"] += max(0, size - live.size)
            live.size = size
            books.counts["resizes"] += 1
        elif kind == TRANSFER:
            if type(size) is not int:
                return "malformed"
            if not 0 <= size <= MAX_SIZE:
                return anomaly("bad_size")
            if dst not in VALID_DEVICES:
                return anomaly("bad_device")
            books.counts["transfers"] += 1
            books.counts["bytes_transferred"] += size
            count, total = self.routes.get((device, dst), (0, 0))
            self.routes[device, dst] = (count + 1, total + size)
        else:
            return anomaly("unknown_kind")
        return "applied"

    # -- what the ledger should report -----------------------------------------------

    def component_stats(self, component: str, device: str) -> ComponentStats:
        books = self.books[component, device]
        counts = books.counts
        return ComponentStats(
            component=component,
            device=device,
            bytes_reserved=books.reserved(),
            bytes_in_use=books.in_use(),
            peak_bytes_reserved=books.peak_reserved,
            peak_bytes_in_use=books.peak_in_use,
            live_blocks=len(books.blocks),
            allocations=counts["allocations"],
            frees=counts["frees"],
            acquires=counts["acquires"],
            releases=counts["releases"],
            resizes=counts["resizes"],
            transfers=counts["transfers"],
            bytes_allocated=counts["bytes_allocated"],
            bytes_transferred=counts["bytes_transferred"],
            size_histogram=tuple(books.histogram),
            lifetimes=counts["lifetimes"],
            lifetime_total_ns=counts["lifetime_total_ns"],
            lifetime_max_ns=books.lifetime_max_ns,
            anomalies=tuple(sorted(books.anomalies.items())),
            requested_bytes_in_use=books.requested_in_use(),
            peak_requested_bytes_in_use=books.peak_requested,
            requested_lends=counts["requested_lends"],
            bytes_lent=counts["bytes_lent"],
            requested_bytes_lent=counts["requested_bytes_lent"],
        )

    def check(self, ledger: Ledger) -> None:
        assert ledger.components() == tuple(
            self.component_stats(c, d) for c, d in sorted(self.books)
        )
        assert ledger.owners() == tuple(
            OwnerStats(owner, self.owner_in_use(owner), peak)
            for owner, peak in sorted(self.owner_peaks.items())
        )
        assert ledger.devices() == tuple(
            DeviceStats(device, *self.device_sums(device), *self.device_peaks[device])
            for device in sorted(self.device_peaks)
        )
        assert ledger.transfers() == tuple(
            (src, dst, count, total) for (src, dst), (count, total) in sorted(self.routes.items())
        )
        assert ledger.statistics() == LedgerStats(
            bytes_reserved=self.total_reserved(),
            bytes_in_use=self.total_in_use(),
            peak_bytes_reserved=self.peak_reserved,
            peak_bytes_in_use=self.peak_in_use,
            live_blocks=sum(len(books.blocks) for books in self.books.values()),
            events_applied=self.applied,
            events_dropped=self.dropped,
            anomalies=sum(sum(books.anomalies.values()) for books in self.books.values()),
            malformed=self.malformed,
        )
        assert (ledger.bytes_reserved, ledger.bytes_in_use) == (
            self.total_reserved(),
            self.total_in_use(),
        )
        assert (ledger.peak_bytes_reserved, ledger.peak_bytes_in_use) == (
            self.peak_reserved,
            self.peak_in_use,
        )
        assert ledger.events_applied == self.applied
        assert sorted(ledger.snapshot().blocks) == sorted(
            LiveBlock(c, d, number, b.size, b.owner, b.allocated_ns)
            for (c, d), books in self.books.items()
            for number, b in books.blocks.items()
        )


# Events the machine sends that no checked producer would: each must be counted, never
# crash the ledger, and never change anyone's books.
MALFORMED: list[Any] = [
    None,
    42,
    (ALLOC, "pool", 1, 10, "cpu", "o", 0, 0, None),  # nine fields
    (ALLOC, "pool", 1, 10, "cpu", "o", 0, 0, None, (), "extra"),
    (ALLOC, "", 1, 10, "cpu", "o", 0, 0, None, (), 0),
    (ALLOC, None, 1, 10, "cpu", "o", 0, 0, None, (), 0),
    (ALLOC, 5, 1, 10, "cpu", "o", 0, 0, None, (), 0),
    (ALLOC, "pool", 1, 10, "gpu", "o", 0, 0, None, (), 0),
    (ALLOC, "pool", 1, 10, None, "o", 0, 0, None, (), 0),
    (ALLOC, "pool", 1, 10, "cpu\n", "o", 0, 0, None, (), 0),
    (ALLOC, None, 1, 10, None, "o", 0, 0, None, (), 0),  # once crashed the identity cache
    (FREE, ["pool"], 1, 10, "cpu", "o", 0, 0, None, (), 0),  # unhashable component
]

# One odd field of an otherwise good ALLOC: a wrong type is malformed, a value out of
# the range a snapshot can store is an anomaly.
ODD_ALLOC_FIELDS: list[tuple[str, Any]] = [
    ("size", "4096"),
    ("block", -1),
    ("block", INT64),
    ("block", "7"),
    ("block", 1.0),
    ("block", True),
    ("ts", None),
    ("ts", INT64),
    ("ts", -INT64 - 1),
    ("owner", None),
    ("owner", 3),
]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(clock=lambda: 1_000_000)
        self.model = Model()
        self.pending: list[Any] = []

    def send(self, event: Any, flush: bool) -> None:
        self.pending.append(event)
        if flush:
            self.apply_pending()

    def target(self, data: st.DataObject, lent: bool | None = None) -> tuple[str, str, int]:
        """A block to act on: mostly a live one, sometimes a freed one or any id at all.

        With *lent*, live blocks that are (or, with False, are not) lent come first.
        """
        books = self.model.books
        live = sorted(
            (c, d, number)
            for (c, d), one in books.items()
            for number, block in one.blocks.items()
            if lent is None or (block.owner is not None) == lent
        ) or sorted((c, d, b) for (c, d), one in books.items() for b in one.blocks)
        freed = sorted((c, d, b) for (c, d), one in books.items() for b in one.ever_freed)
        choice = data.draw(st.integers(0, 5))
        if choice < 4 and live:
            component, device, block = data.draw(st.sampled_from(live))
        elif choice == 4 and freed:
            component, device, block = data.draw(st.sampled_from(freed))
        else:
            component, device, block = data.draw(st.tuples(components, devices, blocks))
        if data.draw(st.booleans()):
            component = fresh_copy(component)
        return component, device, block

    def size_for(self, data: st.DataObject, component: str, device: str, block: int) -> Any:
        """Mostly the recorded size (as a careful producer sends), sometimes another."""
        books = self.model.books.get((component, device))
        live = books.blocks.get(block) if books else None
        if live is not None and data.draw(st.integers(0, 3)) < 3:
            return live.size
        return data.draw(sizes)

    # -- rules: one per kind of event, each applied now or held for a batch -----------

    @rule(
        c=components,
        d=devices,
        b=blocks,
        o=owners,
        t=times,
        size=sizes,
        tags=lend_tags,
        flush=st.booleans(),
    )
    def alloc(
        self, c: str, d: str, b: int, o: str, t: int, size: int, tags: Any, flush: bool
    ) -> None:
        self.send((ALLOC, c, b, size, d, o, t, 0, None, tags, 0), flush)

    @rule(
        c=components,
        d=devices,
        o=owners,
        t=times,
        run=st.lists(st.tuples(blocks, sizes), min_size=1, max_size=4),
        flush=st.booleans(),
    )
    def alloc_run(
        self, c: str, d: str, o: str, t: int, run: list[tuple[int, int]], flush: bool
    ) -> None:
        for b, size in run:
            self.send((ALLOC, c, b, size, d, o, t, 0, None, (), 0), False)
        if flush:
            self.apply_pending()

    @rule(
        c=components,
        d=devices,
        t=times,
        odd=st.sampled_from(ODD_ALLOC_FIELDS),
        flush=st.booleans(),
    )
    def odd_alloc(self, c: str, d: str, t: int, odd: tuple[str, Any], flush: bool) -> None:
        f: dict[str, Any] = {"block": 2, "size": 64, "ts": t, "owner": "decode"}
        f[odd[0]] = odd[1]
        self.send((ALLOC, c, f["block"], f["size"], d, f["owner"], f["ts"], 0, None, (), 0), flush)

    @rule(data=st.data(), t=st.one_of(times, st.none()), flush=st.booleans())
    def free(self, data: st.DataObject, t: int | None, flush: bool) -> None:
        c, d, b = self.target(data)
        self.send((FREE, c, b, self.size_for(data, c, d, b), d, "", t, 0, None, (), 0), flush)

    @rule(data=st.data(), t=times, flush=st.booleans())
    def release(self, data: st.DataObject, t: int, flush: bool) -> None:
        c, d, b = self.target(data, lent=True)
        self.send((RELEASE, c, b, self.size_for(data, c, d, b), d, "", t, 0, None, (), 0), flush)

    @rule(
        data=st.data(),
        t=times,
        o=st.sampled_from([*OWNERS, None, 3]),
        tags=lend_tags,
        flush=st.booleans(),
    )
    def acquire(self, data: st.DataObject, t: int, o: Any, tags: Any, flush: bool) -> None:
        c, d, b = self.target(data, lent=False)
        size = self.size_for(data, c, d, b)
        self.send((ACQUIRE, c, b, size, d, o, t, 0, None, tags, 0), flush)

    @rule(data=st.data(), t=times, size=odd_sizes, flush=st.booleans())
    def resize(self, data: st.DataObject, t: int, size: Any, flush: bool) -> None:
        c, d, b = self.target(data)
        old_size = self.size_for(data, c, d, b)
        self.send((RESIZE, c, b, size, d, "", t, old_size, None, (), 0), flush)

    @rule(
        c=components,
        d=devices,
        b=blocks,
        t=times,
        size=odd_sizes,
        dst=st.sampled_from(["cpu", "cuda:0", "cuda:1", "cuda:1", None, "gpu", "cuda:01", 5]),
        flush=st.booleans(),
    )
    def transfer(self, c: str, d: str, b: int, t: int, size: Any, dst: Any, flush: bool) -> None:
        self.send((TRANSFER, c, b, size, d, "", t, 0, dst, (), 0), flush)

    @rule(
        c=components,
        d=devices,
        kind=st.sampled_from([6, 99, -1, "ALLOC", None]),
        broken=st.sampled_from([None, *MALFORMED]),
        flush=st.booleans(),
    )
    def junk(self, c: str, d: str, kind: Any, broken: Any, flush: bool) -> None:
        """An event of an unknown kind, or one too broken to attribute."""
        event = broken if broken is not None else (kind, c, 1, 64, d, "decode", 0, 0, None, (), 0)
        self.send(event, flush)

    @rule(count=st.integers(0, 3))
    def note_dropped(self, count: int) -> None:
        self.ledger.note_dropped(count)
        self.model.dropped += count

    @rule(as_generator=st.booleans())
    def apply_pending(self, as_generator: bool = False) -> None:
        batch, self.pending = self.pending, []
        taken = self.ledger.apply(iter(batch) if as_generator else batch)
        assert taken == len(batch)
        for event in batch:
            self.model.step(event)

    @invariant()
    def books_agree(self) -> None:
        self.model.check(self.ledger)


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
TestLedgerAgainstModel = LedgerMachine.TestCase
