"""Updates and ledger copies: a copy fed a source's updates equals the source's ledger,
byte for byte, at every sequence number."""

from __future__ import annotations

import random

import pytest

from memactor.cluster import LedgerCopy, UpdateMaker, by_host
from memactor.cluster._delta import without_series
from memactor.cluster._merge import Part, merge, source_prefix
from memactor.codec import encode, unpack
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger, LedgerStats, Snapshot, SourceStats


class Workload:
    """A seeded churning workload: pools that allocate, lend, return, resize and free,
    on two devices, with components that come and go."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.now = 1_000
        self.live: dict[tuple[str, str], dict[int, tuple[int, str | None]]] = {}
        self.next_block = 0

    def events(self, count: int) -> list[MemoryEvent]:
        out = []
        r = self.random
        for _ in range(count):
            self.now += r.randrange(1, 1000)
            key = (r.choice(["pool", "chunks", "decode.cache"]), r.choice(["cpu", "cuda:0"]))
            blocks = self.live.setdefault(key, {})
            owner = r.choice(["reader", "writer", "worker-1", "worker-2"])
            component, device = key
            choice = r.random()
            if not blocks or choice < 0.35:
                self.next_block += 1
                size = r.choice([64, 4096, 1 << 20])
                blocks[self.next_block] = (size, owner)
                out.append(
                    MemoryEvent(
                        EventKind.ALLOC, component, self.next_block, size, device, owner, self.now
                    )
                )
                continue
            block = r.choice(list(blocks))
            size, holder = blocks[block]
            if choice < 0.55:
                del blocks[block]
                out.append(
                    MemoryEvent(
                        EventKind.FREE, component, block, size, device, holder or "", self.now
                    )
                )
            elif choice < 0.75 and holder is not None:
                blocks[block] = (size, None)
                out.append(
                    MemoryEvent(EventKind.RELEASE, component, block, size, device, holder, self.now)
                )
            elif choice < 0.9 and holder is None:
                blocks[block] = (size, owner)
                out.append(
                    MemoryEvent(EventKind.ACQUIRE, component, block, size, device, owner, self.now)
                )
            else:
                new = size * 2
                blocks[block] = (new, holder)
                out.append(
                    MemoryEvent(
                        EventKind.RESIZE,
                        component,
                        block,
                        new,
                        device,
                        holder or "",
                        self.now,
                        old_size=size,
                    )
                )
        return out


def wire(body: dict[str, object]) -> dict[str, object]:
    """The body as the aggregator receives it: through msgpack."""
    decoded = unpack(encode("update", body))
    assert isinstance(decoded, dict)
    return decoded


def own(ledger: Ledger) -> Snapshot:
    return without_series(ledger.snapshot(now_ns=0))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_copy_equals_the_source_byte_for_byte_after_every_update(seed: int) -> None:
    workload = Workload(seed)
    ledger = Ledger(clock=lambda: workload.now, retire_after_ns=50_000)
    maker, copy = UpdateMaker(), LedgerCopy()
    for step in range(60):
        ledger.apply(workload.events(workload.random.randrange(0, 200)))
        if step % 7 == 3:
            ledger.sample()  # retires idle components: accounts come and go
        snapshot = own(ledger)
        copy.apply(wire(maker.update(snapshot)))
        assert copy.snapshot().to_msgpack() == snapshot.to_msgpack(), f"step {step}"


def test_an_update_carries_what_changed_not_every_block() -> None:
    workload = Workload(7)
    ledger = Ledger(clock=lambda: workload.now)
    maker = UpdateMaker()
    ledger.apply(workload.events(20_000))
    first = maker.update(own(ledger))
    ledger.apply(workload.events(10))
    second = maker.update(own(ledger))
    third = maker.update(own(ledger))
    assert first["full"] is True
    assert second["full"] is False
    # Ten events touch at most ten blocks; 8 bytes per block id.
    assert len(second["blocks_put"]["block"]) + len(second["blocks_gone"]["block"]) <= 2 * 10 * 8
    assert len(encode("u", second)) < len(encode("u", first)) / 10
    # Nothing changed: the heartbeat carries no rows and no blocks.
    assert third["components"] == third["owners"] == []
    assert third["blocks_put"]["block"] == third["blocks_gone"]["block"] == b""


def test_a_checkpoint_heals_a_copy_that_missed_updates() -> None:
    workload = Workload(11)
    ledger = Ledger(clock=lambda: workload.now)
    maker, copy = UpdateMaker(), LedgerCopy()
    ledger.apply(workload.events(500))
    copy.apply(wire(maker.update(own(ledger))))
    ledger.apply(workload.events(500))
    maker.update(own(ledger))  # lost on the way
    ledger.apply(workload.events(500))
    snapshot = own(ledger)
    copy.apply(wire(maker.update(snapshot, full=True)))
    assert copy.snapshot().to_msgpack() == snapshot.to_msgpack()


def test_merge_names_rows_by_source_and_sums_live_sources_by_host() -> None:
    parts = []
    for seed, (name, host, state) in enumerate(
        [("a", "node-1", "live"), ("b", "node-2", "live"), ("c", "node-2", "gone")], start=21
    ):
        workload = Workload(seed)
        ledger = Ledger(clock=lambda: 0)
        ledger.apply(workload.events(400))
        snapshot = own(ledger)
        stats = SourceStats(
            name,
            host,
            100 + seed,
            0,
            source_prefix(name, host, 100 + seed),
            state,
            1,
            1,
            0,
            1,
            snapshot.totals.bytes_reserved,
            snapshot.totals.bytes_in_use,
            snapshot.totals.peak_bytes_reserved,
            snapshot.totals.peak_bytes_in_use,
            snapshot.totals.live_blocks,
            snapshot.totals.events_applied,
        )
        parts.append(Part(stats, snapshot))
    peaks = LedgerStats(0, 0, 7, 5, 0, 0, 0, 0, 0)
    merged = merge(parts, label="m", wall_time_ns=1, monotonic_ns=2, peaks=peaks, device_peaks={})
    live = parts[:2]
    assert merged.totals.bytes_reserved == sum(p.snapshot.totals.bytes_reserved for p in live)
    assert (merged.totals.peak_bytes_reserved, merged.totals.peak_bytes_in_use) == (7, 5)
    assert merged.totals.events_applied == sum(p.snapshot.totals.events_applied for p in parts)
    # The blocks of the live sources, in order, under their prefixed names; cached ones
    # stay cached.
    expected = [
        (
            p.stats.prefix + b.component,
            b.device,
            b.block,
            b.size,
            None if b.owner is None else p.stats.prefix + b.owner,
            b.allocated_ns,
        )
        for p in live
        for b in p.snapshot.blocks
    ]
    assert [tuple(b) for b in merged.blocks] == expected
    assert any(b.owner is None for b in merged.blocks)
    gone_prefix = parts[2].stats.prefix
    assert not [c for c in merged.components if c.component.startswith(gone_prefix)]
    hosts = {(h.host, h.device): h for h in by_host(merged)}
    for part in live:
        for device in part.snapshot.devices:
            row = hosts[part.stats.host, device.device]
            assert (row.sources, row.bytes_reserved, row.bytes_in_use) == (
                1,
                device.bytes_reserved,
                device.bytes_in_use,
            )
    assert [s.name for s in merged.sources] == ["a", "b", "c"]


def test_one_process_snapshot_is_written_as_before_without_sources() -> None:
    snapshot = Ledger().snapshot()
    assert snapshot.sources == ()
    assert "sources" not in snapshot.to_dict()
    assert Snapshot.from_msgpack(snapshot.to_msgpack()).sources == ()
