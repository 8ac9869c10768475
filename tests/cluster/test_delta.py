"""Updates and ledger copies: a copy fed a source's updates equals the source's ledger,
byte for byte, at every sequence number."""

from __future__ import annotations

import random

import pytest

from memactor.cluster import LedgerCopy, UpdateMaker, by_host
from memactor.cluster._delta import without_series
from memactor.cluster._merge import Part, merge, source_prefix
from memactor.codec import encode, unpack
from memactor.events import DURATION_TAG, SITE_TAG, EventKind, MemoryEvent, Site, SiteTable
from memactor.metrics import Ledger, LedgerStats, Snapshot, SourceStats, sites_of_blocks

SITES = [Site(f"/app/stage_{i}.py", 10 * i, f"stage_{i}") for i in range(1, 9)]


class FixedSites(SiteTable):
    """A site table that knows :data:`SITES` as ids 1 to 8, as a process's own would."""

    def __init__(self) -> None:
        super().__init__()
        self._sites.extend(SITES)


class Workload:
    """A seeded churning workload: pools that allocate, lend, return, resize and free,
    on two devices, with components that come and go."""

    def __init__(self, seed: int, *, sites: bool = False) -> None:
        self.random = random.Random(seed)
        self.sites = sites
        self.now = 1_000
        self.live: dict[tuple[str, str], dict[int, tuple[int, str | None]]] = {}
        self.next_block = 0

    def tags(self) -> tuple[tuple[str, str], ...]:
        """A lend's site (skewed, so that late ids come first now and then), or none."""
        if not self.sites or self.random.random() < 0.1:
            return ()
        return ((SITE_TAG, str(min(self.random.randrange(1, 9) for _ in range(2)))),)

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
                        EventKind.ALLOC,
                        component,
                        self.next_block,
                        size,
                        device,
                        owner,
                        self.now,
                        tags=self.tags(),
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
                    MemoryEvent(
                        EventKind.ACQUIRE,
                        component,
                        block,
                        size,
                        device,
                        owner,
                        self.now,
                        tags=self.tags(),
                    )
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
                        tags=self.tags(),
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


@pytest.mark.parametrize("callsites", [False, True], ids=["no sites", "callsites"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_copy_equals_the_source_byte_for_byte_after_every_update(
    seed: int, callsites: bool
) -> None:
    workload = Workload(seed, sites=callsites)
    ledger = Ledger(
        clock=lambda: workload.now,
        retire_after_ns=50_000,
        sites=FixedSites() if callsites else None,
    )
    maker, copy = UpdateMaker(), LedgerCopy()
    for step in range(60):
        ledger.apply(workload.events(workload.random.randrange(0, 200)))
        if step % 7 == 3:
            ledger.sample()  # retires idle components: accounts come and go
        snapshot = own(ledger)
        copy.apply(wire(maker.update(snapshot)))
        assert copy.snapshot().to_msgpack() == snapshot.to_msgpack(), f"step {step}"
    if callsites:
        assert snapshot.blocks.sites
        assert snapshot.site_usage
        assert copy.snapshot(blocks=False).site_usage == snapshot.site_usage


def test_each_site_crosses_the_wire_once_and_a_checkpoint_sends_them_again() -> None:
    workload = Workload(5, sites=True)
    ledger = Ledger(clock=lambda: workload.now, sites=FixedSites())
    maker, copy = UpdateMaker(), LedgerCopy()
    sent: list[list[object]] = []
    for _ in range(20):
        ledger.apply(workload.events(50))
        body = wire(maker.update(own(ledger)))
        new = body.get("sites", [])
        assert isinstance(new, list)
        sent.extend(new)
        copy.apply(body)
    assert sorted(tuple(s) for s in sent) == sorted(SITES)  # each once, all of them
    ledger.apply(workload.events(50))
    snapshot = own(ledger)
    full = wire(maker.update(snapshot, full=True))
    assert isinstance(full["sites"], list)
    again = {Site(*site) for site in full["sites"]}
    assert again == set(snapshot.blocks.sites) | {u.site for u in snapshot.site_usage}
    copy.apply(full)
    assert copy.snapshot().to_msgpack() == snapshot.to_msgpack()
    # Nothing changed: a heartbeat names no site.
    assert "sites" not in maker.update(snapshot)


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
    # Sites off: no site crosses the wire, and no site column.
    assert "sites" not in first
    assert "site" not in first["blocks_put"]
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
        workload = Workload(seed, sites=True)
        ledger = Ledger(clock=lambda: 0, sites=FixedSites())
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
            b.site,  # the site itself: the same line in two processes is one site
        )
        for p in live
        for b in p.snapshot.blocks
    ]
    assert [tuple(b) for b in merged.blocks] == expected
    assert any(b.owner is None for b in merged.blocks)
    assert any(b.site is not None for b in merged.blocks)
    assert len(merged.blocks.sites) == len(set(merged.blocks.sites))
    # The merged top sites: each site's bytes summed over the live sources.
    assert merged.totals.callsites == 1
    summed: dict[tuple[Site, str], int] = {}
    for part in live:
        for usage in part.snapshot.site_usage:
            key = (usage.site, usage.device)
            summed[key] = summed.get(key, 0) + usage.bytes_in_use
    assert {(u.site, u.device): u.bytes_in_use for u in merged.site_usage} == summed
    assert [u.bytes_in_use for u in merged.site_usage] == sorted(summed.values(), reverse=True)
    # With every source's sites in its top list, the sums are those of the blocks.
    assert merged.site_usage == sites_of_blocks(merged.blocks)
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


def test_timed_copies_cross_the_wire_and_add_up_over_sources() -> None:
    def timed(duration_ns: int) -> MemoryEvent:
        return MemoryEvent(
            EventKind.TRANSFER,
            "gpu",
            0,
            1 << 20,
            device="cpu",
            dst_device="cuda:0",
            tags={DURATION_TAG: str(duration_ns)},
        )

    parts = []
    for index, duration in enumerate([1_000, 3_000]):
        ledger = Ledger(clock=lambda: 0)
        ledger.apply([timed(duration), timed(duration)])
        maker, copy = UpdateMaker(), LedgerCopy()
        copy.apply(wire(maker.update(own(ledger))))
        assert copy.snapshot().transfer_timings == ledger.transfer_timings()
        ledger.apply([timed(duration)])
        snapshot = own(ledger)
        copy.apply(wire(maker.update(snapshot)))
        assert copy.snapshot().to_msgpack() == snapshot.to_msgpack()
        prefix = source_prefix("s", "host", index)
        totals = ledger.statistics()
        stats = SourceStats("s", "host", index, 0, prefix, "live", 1, 1, 0, 1, 0, 0, 0, 0, 0, 3)
        assert totals.events_applied == 3
        parts.append(Part(stats, copy.snapshot()))
    peaks = LedgerStats(0, 0, 0, 0, 0, 0, 0, 0, 0)
    merged = merge(parts, label="m", wall_time_ns=1, monotonic_ns=2, peaks=peaks, device_peaks={})
    (timing,) = merged.transfer_timings
    assert (timing.src, timing.dst) == ("cpu", "cuda:0")
    assert (timing.transfers, timing.bytes, timing.duration_ns) == (6, 6 << 20, 12_000)
