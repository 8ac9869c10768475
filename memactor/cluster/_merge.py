"""One snapshot of many sources: their rows under per-source names, live totals, and a row
per source. Pure and synchronous.

A live source's components, owners and blocks appear under ``"{name}@{host}:{pid}/"``
followed by their own name, so every tool that reads a snapshot (reports, diffs, checks,
the live view) works on a cluster unchanged, and rows group and filter by source and
host by that prefix. Allocation sites are kept as they are (file, line, function: no
prefix), so one line of code that runs in many processes is one site: blocks' sites are
merged into one table, and :attr:`~memactor.metrics.Snapshot.site_usage` sums each
site's bytes over the live sources' own top sites and keeps the largest. A gone source's
rows leave the snapshot and its bytes leave the totals; its
:class:`~memactor.metrics.SourceStats` row stays, saying when and how it went.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..events import Site
from ..metrics import (
    CACHED,
    TOP_SITES,
    UNKNOWN_SITE,
    ActorSample,
    ComponentStats,
    DeviceStats,
    LedgerStats,
    LiveBlocks,
    OwnerStats,
    ProcessStats,
    SiteUsage,
    Snapshot,
    SourceStats,
    TransferTiming,
)
from ..metrics._sites import top_sites


@dataclass(frozen=True, slots=True)
class Part:
    """One source's contribution to a merged snapshot."""

    stats: SourceStats
    snapshot: Snapshot
    """Its copy's snapshot (blocks only when the merged snapshot has them)."""


@dataclass(frozen=True, slots=True)
class HostStats:
    """What the live sources of one host hold on one device."""

    host: str
    device: str
    sources: int
    bytes_reserved: int
    bytes_in_use: int


def source_prefix(name: str, host: str, pid: int) -> str:
    """What a source's component and owner names start with in a merged snapshot."""
    return f"{name}@{host}:{pid}/"


def merge(
    parts: Sequence[Part],
    *,
    label: str,
    wall_time_ns: int,
    monotonic_ns: int,
    peaks: LedgerStats,
    device_peaks: dict[str, tuple[int, int]],
) -> Snapshot:
    """Merge *parts*: the live ones' rows, blocks and bytes; every part's counters and
    source row. *peaks* (its two peak fields) and *device_peaks* (device: peak reserved,
    peak in use) are the cluster's peaks as the aggregator sampled them."""
    live = [p for p in parts if p.stats.state == "live"]
    components: list[ComponentStats] = []
    owners: list[OwnerStats] = []
    actors: list[ActorSample] = []
    for part in live:
        prefix = part.stats.prefix
        components.extend(
            dataclasses.replace(c, component=prefix + c.component) for c in part.snapshot.components
        )
        owners.extend(
            OwnerStats(prefix + o.owner, o.bytes_in_use, o.peak_bytes_in_use)
            for o in part.snapshot.owners
        )
        actors.extend(dataclasses.replace(a, actor=prefix + a.actor) for a in part.snapshot.actors)
    devices: dict[str, list[int]] = {}
    process: dict[str, list[int]] = {}
    for part in live:
        for d in part.snapshot.devices:
            sums = devices.setdefault(d.device, [0, 0])
            sums[0] += d.bytes_reserved
            sums[1] += d.bytes_in_use
        for p in part.snapshot.process:
            figures = process.setdefault(p.device, [0, 0, 0, 0, 0, 0, 0, 0])
            for i, value in enumerate(
                (
                    p.process_bytes,
                    p.bytes_reserved,
                    p.unattributed_bytes,
                    p.sampled_ns,
                    p.rss_bytes,
                    p.uss_bytes,
                    p.pss_bytes,
                    p.pool_bytes,
                )
            ):
                figures[i] = max(figures[i], value) if i == 3 else figures[i] + value
    routes: dict[tuple[str, str], list[int]] = {}
    timings: dict[tuple[str, str], list[int]] = {}
    for part in parts:
        for src, dst, count, size in part.snapshot.transfers:
            route = routes.setdefault((src, dst), [0, 0])
            route[0] += count
            route[1] += size
        for t in part.snapshot.transfer_timings:
            timed = timings.setdefault((t.src, t.dst), [0, 0, 0])
            timed[0] += t.transfers
            timed[1] += t.bytes
            timed[2] += t.duration_ns
    every = [p.snapshot.totals for p in parts]
    now = [p.snapshot.totals for p in live]
    longest = max(every, key=lambda t: t.longest_stall_ns, default=None)
    totals = LedgerStats(
        bytes_reserved=sum(t.bytes_reserved for t in now),
        bytes_in_use=sum(t.bytes_in_use for t in now),
        peak_bytes_reserved=peaks.peak_bytes_reserved,
        peak_bytes_in_use=peaks.peak_bytes_in_use,
        live_blocks=sum(t.live_blocks for t in now),
        events_applied=sum(t.events_applied for t in every),
        events_dropped=sum(t.events_dropped for t in every),
        anomalies=sum(t.anomalies for t in every),
        malformed=sum(t.malformed for t in every),
        loop_stalls=sum(t.loop_stalls for t in every),
        longest_stall_ns=longest.longest_stall_ns if longest else 0,
        longest_stall_task=longest.longest_stall_task if longest else "",
        callsites=max((t.callsites for t in every), default=0),
    )
    return Snapshot(
        label=label,
        wall_time_ns=wall_time_ns,
        monotonic_ns=monotonic_ns,
        totals=totals,
        components=tuple(sorted(components, key=lambda c: (c.component, c.device))),
        owners=tuple(sorted(owners, key=lambda o: o.owner)),
        devices=tuple(
            DeviceStats(name, r, u, *device_peaks.get(name, (r, u)))
            for name, (r, u) in sorted(devices.items())
        ),
        transfers=tuple((s, d, n, b) for (s, d), (n, b) in sorted(routes.items())),
        blocks=_merge_blocks(live),
        series=(),
        process=tuple(ProcessStats(name, *figures) for name, figures in sorted(process.items())),
        sources=tuple(sorted((p.stats for p in parts), key=_source_order)),
        site_usage=merge_site_usage(p.snapshot.site_usage for p in live),
        actors=tuple(sorted(actors, key=lambda a: a.actor)),
        transfer_timings=tuple(
            TransferTiming(s, d, *figures) for (s, d), figures in sorted(timings.items())
        ),
    )


def merge_site_usage(
    usages: Iterable[Sequence[SiteUsage]], limit: int = TOP_SITES
) -> tuple[SiteUsage, ...]:
    """The *limit* largest sites over *usages* (each source's own top sites), the bytes
    and blocks of one site and device summed over the sources that list it."""
    sites: dict[Site, int] = {}
    books: dict[tuple[int, str], list[int]] = {}
    for usage in usages:
        for row in usage:
            site_id = sites.setdefault(row.site, len(sites))
            entry = books.setdefault((site_id, row.device), [0, 0])
            entry[0] += row.bytes_in_use
            entry[1] += row.blocks
    table = list(sites)
    return top_sites(books, table.__getitem__, limit)


def _source_order(stats: SourceStats) -> tuple[str, str, int, int]:
    return (stats.host, stats.name, stats.pid, stats.started_wall_ns)


def _merge_blocks(parts: Iterable[Part]) -> LiveBlocks:
    accounts: list[tuple[str, str]] = []
    owner_names: set[str] = set()
    site_index: dict[Site, int] = {}
    pieces = []
    for part in parts:
        blocks, prefix = part.snapshot.blocks, part.stats.prefix
        first = len(accounts)
        accounts.extend((prefix + c, d) for c, d in blocks.accounts)
        owner_names.update(prefix + o for o in blocks.owners)
        for site in blocks.sites:
            site_index.setdefault(site, len(site_index))
        pieces.append((blocks, prefix, first))
    owners = tuple(sorted(owner_names))
    index = {name: i for i, name in enumerate(owners)}
    columns: dict[str, list[np.ndarray]] = {
        n: [] for n in ("account", "block", "size", "owner", "allocated_ns", "site")
    }
    for blocks, prefix, first in pieces:
        renumber = np.array([index[prefix + o] for o in blocks.owners] + [CACHED], dtype=np.int32)
        columns["account"].append(blocks.account + np.int32(first))
        columns["block"].append(blocks.block)
        columns["size"].append(blocks.size)
        # CACHED (-1) indexes the last entry, which stays CACHED.
        columns["owner"].append(renumber[blocks.owner])
        columns["allocated_ns"].append(blocks.allocated_ns)
        # UNKNOWN_SITE (-1) indexes the last entry, which stays UNKNOWN_SITE.
        resite = np.array([*(site_index[s] for s in blocks.sites), UNKNOWN_SITE], dtype=np.int32)
        columns["site"].append(resite[blocks.site])
    return LiveBlocks.from_columns(
        tuple(accounts),
        owners,
        {
            name: np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
            for name, arrays in columns.items()
        },
        tuple(site_index),
    )


def by_host(snapshot: Snapshot) -> tuple[HostStats, ...]:
    """Per host and device, what the live sources of a merged snapshot hold (from its
    component rows, by each source's prefix); empty for one process's snapshot."""
    sums: dict[tuple[str, str], list[int]] = {}
    hosts = {s.prefix: s.host for s in snapshot.sources if s.state == "live"}
    counted: dict[tuple[str, str], set[str]] = {}
    for row in snapshot.components:
        found = [p for p in hosts if row.component.startswith(p)]
        if not found:
            continue
        prefix = max(found, key=len)
        host = hosts[prefix]
        figures = sums.setdefault((host, row.device), [0, 0])
        figures[0] += row.bytes_reserved
        figures[1] += row.bytes_in_use
        counted.setdefault((host, row.device), set()).add(prefix)
    return tuple(
        HostStats(host, device, len(counted[host, device]), r, u)
        for (host, device), (r, u) in sorted(sums.items())
    )
