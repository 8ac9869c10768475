"""The Prometheus collector and its HTTP endpoint: names, types, values, the owner cap."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Sequence

import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import memactor
from memactor.events import EventKind, MemoryEvent
from memactor.exporters import (
    FAMILIES,
    MAX_OWNERS_CAP,
    OTHER_OWNERS,
    LatestView,
    MemactorCollector,
    SourceView,
    cap_owners,
    parse_listen_address,
    serve_prometheus,
)
from memactor.metrics import Ledger, OwnerStats, Snapshot

from .helpers import seeded_ledger, view_of


def exposition(collector: MemactorCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def samples_of(text: str) -> dict[str, list[Sample]]:
    by_family: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        by_family.setdefault(family.name, []).extend(family.samples)
    return by_family


def value(samples: Sequence[Sample], **labels: str) -> float:
    (found,) = [s.value for s in samples if s.labels == labels]
    return found


def collector_of(
    ledger: Ledger | Snapshot, *, owner_labels: bool = False, max_owners: int = 100
) -> MemactorCollector:
    latest = LatestView(limits={"c1": "4 MiB"})
    latest.set(view_of(ledger) if isinstance(ledger, Ledger) else ledger)
    return MemactorCollector(latest, owner_labels=owner_labels, max_owners=max_owners)


def test_names_and_types_follow_prometheus_practice() -> None:
    text = exposition(collector_of(seeded_ledger(), owner_labels=True))
    families = list(text_string_to_metric_families(text))
    assert {f.name for f in families} >= {f.name for f in FAMILIES}
    for family in families:
        assert family.name.startswith("memactor_"), family.name
        assert family.type in ("gauge", "counter"), family.name
        assert family.documentation, family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name == family.name + "_total", sample.name
            else:
                assert not sample.name.endswith("_total"), sample.name
            assert "state" not in sample.labels or sample.labels["state"] in ("in_use", "reserved")
        # Sizes are in bytes and say so; nothing is in another unit.
        if "memory" in family.name or family.name.endswith("_bytes"):
            assert family.name.endswith("_bytes"), family.name
        assert not any(unit in family.name for unit in ("_kb", "_mb", "_ms", "_kib"))


def test_the_numbers_are_the_ledgers() -> None:
    view = view_of(seeded_ledger())
    samples = samples_of(exposition(collector_of(view)))
    for stats in view.components:
        where = {"component": stats.component, "device": stats.device}
        memory = samples["memactor_memory_bytes"]
        assert value(memory, **where, state="reserved") == stats.bytes_reserved
        assert value(memory, **where, state="in_use") == stats.bytes_in_use
        peak = samples["memactor_memory_peak_bytes"]
        assert value(peak, **where, state="reserved") == stats.peak_bytes_reserved
        assert value(peak, **where, state="in_use") == stats.peak_bytes_in_use
        assert value(samples["memactor_live_blocks"], **where) == stats.live_blocks
        assert value(samples["memactor_allocations"], **where) == stats.allocations
        assert value(samples["memactor_frees"], **where) == stats.frees
        assert value(samples["memactor_pool_hits"], **where) == stats.acquires
        assert value(samples["memactor_allocated_bytes"], **where) == stats.bytes_allocated
    c0 = view.component("c0")
    assert c0.bytes_in_use < c0.bytes_reserved  # a cached block: the states differ
    assert (
        value(samples["memactor_anomalies"], component="c0", device="cpu", kind="unknown_block")
        == 1
    )
    assert value(samples["memactor_memory_limit_bytes"], component="c1", device="cpu") == 4 * 2**20
    assert len(samples["memactor_memory_limit_bytes"]) == 1
    (cpu,) = view.process
    assert value(samples["memactor_process_memory_bytes"], device="cpu") == cpu.process_bytes
    assert value(samples["memactor_unattributed_bytes"], device="cpu") == cpu.unattributed_bytes
    assert cpu.unattributed_bytes == cpu.process_bytes - view.totals.bytes_reserved + 8 * 2**20
    transfers = samples["memactor_transfer_bytes"]
    assert value(transfers, src="cpu", dst="cuda:0") == 8 * 2**20
    assert value(samples["memactor_transfers"], src="cpu", dst="cuda:0") == 1
    assert value(samples["memactor_transfer_seconds"], src="cpu", dst="cuda:0") == 0.004
    assert value(samples["memactor_transfer_timed_bytes"], src="cpu", dst="cuda:0") == 8 * 2**20
    assert value(samples["memactor_events"]) == view.totals.events_applied
    assert value(samples["memactor_events_dropped"]) == 3
    for device in view.devices:
        peaks = samples["memactor_device_memory_peak_bytes"]
        assert value(peaks, device=device.device, state="reserved") == device.peak_bytes_reserved
    assert value(samples["memactor_view_timestamp_seconds"]) == view.wall_time_ns / 1e9


def test_owner_labels_are_off_by_default() -> None:
    text = exposition(collector_of(seeded_ledger()))
    assert "owner" not in text


def test_ten_thousand_owners_stay_under_the_cap() -> None:
    ledger = Ledger()
    ledger.apply(
        MemoryEvent(EventKind.ALLOC, f"c{i % 7}", i, 1000 + i, owner=f"request-{i}")
        for i in range(10_000)
    )
    collector = collector_of(ledger, owner_labels=True, max_owners=50)
    samples = samples_of(exposition(collector))
    owners = samples["memactor_owner_memory_bytes"]
    assert len(owners) == 51
    assert len(samples["memactor_owner_memory_peak_bytes"]) == 51
    # The biggest owners by name, the rest summed exactly.
    assert value(owners, owner="request-9999") == 10_999
    assert sum(s.value for s in owners) == ledger.bytes_in_use
    assert value(owners, owner=OTHER_OWNERS) == sum(1000 + i for i in range(9950))
    every_series = sum(len(s) for s in samples.values())
    assert every_series < 200  # 7 components, 51 owners: no series per request


def test_cap_owners_ranks_by_bytes_then_peak_and_folds_the_ledgers_own_rest() -> None:
    owners = [
        OwnerStats("a", 5, 5),
        OwnerStats("b", 9, 9),
        OwnerStats("c", 5, 7),
        OwnerStats(OTHER_OWNERS, 100, 300),
    ]
    assert cap_owners(owners, 2) == [
        OwnerStats("b", 9, 9),
        OwnerStats("c", 5, 7),
        OwnerStats(OTHER_OWNERS, 105, 300),
    ]
    assert cap_owners(owners[:2], 2) == [OwnerStats("a", 5, 5), OwnerStats("b", 9, 9)]


@pytest.mark.parametrize("max_owners", [0, MAX_OWNERS_CAP + 1])
def test_a_cap_out_of_range_is_refused(max_owners: int) -> None:
    with pytest.raises(ValueError, match=r"^max_owners must be from 1 to 1000, got "):
        MemactorCollector(LatestView(), owner_labels=True, max_owners=max_owners)


def test_sources_carry_their_labels_first() -> None:
    """The seam for cluster mode: one view per source, labelled host and process."""

    class TwoHosts:
        def views(self) -> list[SourceView]:
            return [
                SourceView((("host", "a"), ("process", "1")), view_of(seeded_ledger(seed=1))),
                SourceView((("host", "b"), ("process", "2")), view_of(seeded_ledger(seed=2))),
            ]

    samples = samples_of(exposition(MemactorCollector(TwoHosts())))
    events = samples["memactor_events"]
    assert {(s.labels["host"], s.labels["process"]) for s in events} == {("a", "1"), ("b", "2")}
    memory = samples["memactor_memory_bytes"]
    assert value(memory, host="b", process="2", component="c1", device="cpu", state="in_use") == (
        view_of(seeded_ledger(seed=2)).component("c1").bytes_in_use
    )


def test_sources_with_different_labels_are_refused() -> None:
    class Mixed:
        def views(self) -> list[SourceView]:
            view = view_of(seeded_ledger())
            return [SourceView((("host", "a"),), view), SourceView((), view)]

    with pytest.raises(ValueError, match=r"^every source must carry the labels \['host'\]"):
        list(MemactorCollector(Mixed()).collect())


def test_before_any_view_the_families_are_empty() -> None:
    families = list(text_string_to_metric_families(exposition(MemactorCollector(LatestView()))))
    assert families
    assert all(not f.samples for f in families)


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("9464", ("127.0.0.1", 9464)),
        (":0", ("127.0.0.1", 0)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9464", ("::1", 9464)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_listen_addresses(address: str, parsed: tuple[str, int]) -> None:
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize("address", ["", "host:", "h:70000", "h:port", "::1:80"])
def test_bad_listen_addresses_are_named(address: str) -> None:
    with pytest.raises(ValueError, match=rf"^bad address {address!r}: "):
        parse_listen_address(address)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


async def test_serve_prometheus_answers_scrapes_and_frees_its_port() -> None:
    async with memactor.open_system() as system:
        reporter = system.reporter("pool", owner="decode")
        reporter.alloc(1, 4096)
        async with serve_prometheus(
            system, "127.0.0.1:0", rate_hz=50, owner_labels=True
        ) as exporter:
            assert exporter.url == f"http://{exporter.address}/metrics"
            while exporter.latest.view is None or exporter.latest.view.totals.live_blocks < 1:
                await trio.sleep(0.01)
            text = await trio.to_thread.run_sync(fetch, exporter.url)
            samples = samples_of(text)
            memory = samples["memactor_memory_bytes"]
            assert value(memory, component="pool", device="cpu", state="in_use") == 4096
            assert value(samples["memactor_owner_memory_bytes"], owner="decode") == 4096
            port = parse_listen_address(exporter.address)[1]
        with socket.socket() as probe:
            # Free again once the block is left (a closed scrape's TIME_WAIT aside, which
            # SO_REUSEADDR allows for; a listening socket it does not).
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))


async def test_open_system_serves_prometheus_while_it_runs() -> None:
    async with memactor.open_system(prometheus="127.0.0.1:0") as system:
        assert system.prometheus_address is not None
        system.reporter("pool").alloc(1, 512)
        await system.metrics.flush()
        text = await trio.to_thread.run_sync(fetch, f"http://{system.prometheus_address}/")
        assert "memactor_events_total" in text
    async with memactor.open_system() as plain:
        assert plain.prometheus_address is None


async def test_bad_options_fail_before_anything_starts() -> None:
    with pytest.raises(ValueError, match=r"^bad address 'nowhere:x': "):
        memactor.open_system(prometheus="nowhere:x")
    async with memactor.open_system() as system:
        with pytest.raises(ValueError, match=r"^limit of component 'pool': "):
            async with serve_prometheus(system, ":0", limits={"pool": "lots"}):
                pass
        with pytest.raises(ValueError, match=r"^rate_hz must be a positive number, got 0"):
            async with serve_prometheus(system, ":0", rate_hz=0):
                pass
