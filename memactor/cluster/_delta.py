"""Source updates: what changed in one process's ledger since its last update, and the copy
of that ledger an aggregator rebuilds from them. Pure and synchronous.

A source compares the snapshot it takes now with the one it took for its last update and
sends only the difference: the component and owner rows that changed or went, the live
blocks that are new, changed (lent, returned, resized) or gone, and the small tables
(totals, devices, transfers, process) whole. A *full* update (a checkpoint) carries
everything. :class:`LedgerCopy` applies them in sequence and rebuilds a
:class:`~memactor.metrics.Snapshot` equal, byte for byte in msgpack, to the source's own
snapshot of the same sequence number with its time series left out.

Allocation sites are numbered per process (each system's
:class:`~memactor.events.SiteTable`), so updates number them afresh: a site gets the
next wire id the first time an update needs it (for a block or a row of ``site_usage``)
and its file, line and function travel once, in that update; later updates name it by
id. A full update starts the numbering over and sends every site it needs again, so a
copy that lost updates is whole after one checkpoint. An update also says, when it
changed, the order of the snapshot's table of blocks' sites, which the copy needs to
rebuild the snapshot byte for byte.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np

from ..events import Site
from ..metrics import (
    CACHED,
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
    TransferTiming,
)
from ..metrics._snapshot import build_stats, component_from_dict

Key = tuple[str, str]
"""A ``(component, device)`` pair."""
BlockValue = tuple[int, str | None, int, Site | None]
"""A live block's ``(size, owner or None while cached, allocated_ns, site or None)``."""

_COLUMNS: Final = ("account", "block", "size", "owner", "allocated_ns", "site")


def without_series(snapshot: Snapshot) -> Snapshot:
    """*snapshot* as an aggregator holds it: the time series left out."""
    return dataclasses.replace(snapshot, series=(), process_series=())


def _blocks_by_account(blocks: LiveBlocks) -> dict[Key, dict[int, BlockValue]]:
    """The live blocks per account, in the snapshot's row order."""
    found: dict[Key, dict[int, BlockValue]] = {key: {} for key in blocks.accounts}
    for row in blocks:
        found[row.component, row.device][row.block] = (
            row.size,
            row.owner,
            row.allocated_ns,
            row.site,
        )
    return found


def _block_columns(
    accounts: list[Key], rows: list[tuple[int, int, BlockValue]], sites: Mapping[Site, int]
) -> dict[str, Any]:
    """Rows ``(account index, block, value)`` as the columns of a snapshot's blocks,
    each site numbered by *sites* (:data:`UNKNOWN_SITE` for none). Without any site
    the ``site`` column is left out: with sites off, updates cost what they did."""
    owners = sorted({value[1] for _, _, value in rows if value[1] is not None})
    index = {name: i for i, name in enumerate(owners)}
    columns = {
        "account": np.array([a for a, _, _ in rows], dtype="<i4"),
        "block": np.array([b for _, b, _ in rows], dtype="<i8"),
        "size": np.array([v[0] for _, _, v in rows], dtype="<i8"),
        "owner": np.array(
            [CACHED if v[1] is None else index[v[1]] for _, _, v in rows], dtype="<i4"
        ),
        "allocated_ns": np.array([v[2] for _, _, v in rows], dtype="<i8"),
    }
    if any(v[3] is not None for _, _, v in rows):
        columns["site"] = np.array(
            [UNKNOWN_SITE if v[3] is None else sites[v[3]] for _, _, v in rows], dtype="<i4"
        )
    return {
        "accounts": [list(key) for key in accounts],
        "owners": owners,
        **{name: column.data.cast("B") for name, column in columns.items()},
    }


def _read_blocks(
    body: Mapping[str, Any], sites: tuple[Site, ...]
) -> list[tuple[Key, int, BlockValue]]:
    """The rows of an update's block columns; their sites are wire ids into *sites*."""
    blocks = LiveBlocks.from_columns(
        tuple((str(c), str(d)) for c, d in body["accounts"]),
        tuple(str(o) for o in body["owners"]),
        {name: body[name] for name in _COLUMNS if name in body},
        sites,
    )
    return [
        ((row.component, row.device), row.block, (row.size, row.owner, row.allocated_ns, row.site))
        for row in blocks
    ]


class _WireSites:
    """The source's side of the per-connection numbering of sites."""

    def __init__(self) -> None:
        self.ids: dict[Site, int] = {}

    def number(self, sites: Iterable[Site | None]) -> list[list[Any]]:
        """Give each site of *sites* not yet numbered the next id; return the new ones
        as ``[file, line, function]`` rows, in id order."""
        new: list[list[Any]] = []
        for site in sites:
            if site is not None and site not in self.ids:
                self.ids[site] = len(self.ids)
                new.append(list(site))
        return new


class UpdateMaker:
    """The source's side: turns successive snapshots (with blocks) into updates.

    :meth:`update` returns the body of the next update against the snapshot of the last
    one; ``full=True`` (a checkpoint, or the first update) returns everything.
    """

    def __init__(self) -> None:
        self._components: dict[Key, ComponentStats] = {}
        self._owners: dict[str, OwnerStats] = {}
        self._blocks: dict[Key, dict[int, BlockValue]] = {}
        self._accounts: tuple[Key, ...] = ()
        self._block_sites: tuple[Site, ...] = ()
        self._site_usage: tuple[SiteUsage, ...] = ()
        self._sites = _WireSites()
        self._started = False

    def update(self, snapshot: Snapshot, *, full: bool = False) -> dict[str, Any]:
        """The body of an update that brings a copy from the last snapshot to *snapshot*."""
        full = full or not self._started
        self._started = True
        components = {(c.component, c.device): c for c in snapshot.components}
        owners = {o.owner: o for o in snapshot.owners}
        blocks = _blocks_by_account(snapshot.blocks)
        old_components = {} if full else self._components
        old_owners = {} if full else self._owners
        old_blocks: dict[Key, dict[int, BlockValue]] = {} if full else self._blocks
        accounts = list(snapshot.blocks.accounts)
        put: list[tuple[int, int, BlockValue]] = []
        gone: list[tuple[int, int, BlockValue]] = []
        for index, key in enumerate(accounts):
            before = old_blocks.get(key, {})
            now = blocks[key]
            for block, value in now.items():
                was = before.get(block)
                if was == value:
                    continue
                if was is not None and was[2] != value[2]:
                    # Freed and allocated again under the same id: it moved to the end.
                    gone.append((index, block, was))
                put.append((index, block, value))
            gone.extend((index, block, was) for block, was in before.items() if block not in now)
        # Accounts that are gone take their blocks with them (they had none: a component
        # retires only once it holds no block).
        if full:
            self._sites = _WireSites()
        wire = self._sites
        new_sites = wire.number(snapshot.blocks.sites)
        new_sites += wire.number(u.site for u in snapshot.site_usage)
        body: dict[str, Any] = {
            "full": full,
            "label": snapshot.label,
            "wall_time_ns": snapshot.wall_time_ns,
            "monotonic_ns": snapshot.monotonic_ns,
            "totals": dataclasses.asdict(snapshot.totals),
            "devices": [dataclasses.astuple(d) for d in snapshot.devices],
            "transfers": [list(route) for route in snapshot.transfers],
            "process": [dataclasses.asdict(p) for p in snapshot.process],
            "components": [
                c.to_dict() for k, c in components.items() if old_components.get(k) != c
            ],
            "components_gone": [list(k) for k in old_components if k not in components],
            "owners": [dataclasses.astuple(o) for n, o in owners.items() if old_owners.get(n) != o],
            "owners_gone": [n for n in old_owners if n not in owners],
            "blocks_gone": _block_columns(accounts, gone, wire.ids),
            "blocks_put": _block_columns(accounts, put, wire.ids),
        }
        if new_sites:
            body["sites"] = new_sites
        if snapshot.actors:  # a small table, whole; absent where no actor was sampled
            body["actors"] = [dataclasses.asdict(a) for a in snapshot.actors]
        if snapshot.transfer_timings:  # whole, like transfers; absent where none was timed
            body["transfer_timings"] = [dataclasses.astuple(t) for t in snapshot.transfer_timings]
        if full or tuple(accounts) != self._accounts:
            body["accounts"] = [list(key) for key in accounts]
        if full or snapshot.blocks.sites != self._block_sites:
            body["block_sites"] = [wire.ids[site] for site in snapshot.blocks.sites]
        if full or snapshot.site_usage != self._site_usage:
            body["site_usage"] = [
                [wire.ids[u.site], u.device, u.bytes_in_use, u.blocks] for u in snapshot.site_usage
            ]
        self._components, self._owners, self._blocks = components, owners, blocks
        self._accounts = tuple(accounts)
        self._block_sites, self._site_usage = snapshot.blocks.sites, snapshot.site_usage
        return body


@dataclasses.dataclass(slots=True)
class LedgerCopy:
    """The aggregator's copy of one source's ledger, brought up to date by updates."""

    label: str = ""
    wall_time_ns: int = 0
    monotonic_ns: int = 0
    totals: LedgerStats = dataclasses.field(
        default_factory=lambda: LedgerStats(0, 0, 0, 0, 0, 0, 0, 0, 0)
    )
    devices: tuple[DeviceStats, ...] = ()
    transfers: tuple[tuple[str, str, int, int], ...] = ()
    transfer_timings: tuple[TransferTiming, ...] = ()
    process: tuple[ProcessStats, ...] = ()
    actors: tuple[ActorSample, ...] = ()
    components: dict[Key, ComponentStats] = dataclasses.field(default_factory=dict)
    owners: dict[str, OwnerStats] = dataclasses.field(default_factory=dict)
    accounts: tuple[Key, ...] = ()
    blocks: dict[Key, dict[int, BlockValue]] = dataclasses.field(default_factory=dict)
    sites: list[Site] = dataclasses.field(default_factory=list)
    """The sites the source sent since its last full update, by wire id."""
    block_sites: tuple[Site, ...] = ()
    """The source snapshot's table of blocks' sites, in its order."""
    site_usage: tuple[SiteUsage, ...] = ()

    def apply(self, body: Mapping[str, Any]) -> None:
        """Apply one update's body (a full one replaces everything).

        Raises ``ValueError``, ``KeyError`` or ``TypeError`` for a damaged body; the
        copy may then be half updated, and only a full update makes it whole again.
        """
        if body["full"]:
            self.components.clear()
            self.owners.clear()
            self.blocks.clear()
            self.sites.clear()
        for file, line, function in body.get("sites", ()):
            self.sites.append(Site(str(file), int(line), str(function)))
        sites = tuple(self.sites)
        if "block_sites" in body:
            self.block_sites = tuple(sites[int(i)] for i in body["block_sites"])
        if "site_usage" in body:
            self.site_usage = tuple(
                SiteUsage(sites[int(i)], str(device), int(held), int(count))
                for i, device, held, count in body["site_usage"]
            )
        self.label = str(body["label"])
        self.wall_time_ns = int(body["wall_time_ns"])
        self.monotonic_ns = int(body["monotonic_ns"])
        self.totals = build_stats(LedgerStats, body["totals"])
        self.devices = tuple(DeviceStats(*row) for row in body["devices"])
        self.transfers = tuple((str(s), str(d), int(n), int(b)) for s, d, n, b in body["transfers"])
        self.process = tuple(build_stats(ProcessStats, p) for p in body["process"])
        self.actors = tuple(build_stats(ActorSample, a) for a in body.get("actors", ()))
        self.transfer_timings = tuple(
            TransferTiming(str(s), str(d), int(n), int(b), int(t))
            for s, d, n, b, t in body.get("transfer_timings", ())
        )
        for c, d in body["components_gone"]:
            del self.components[c, d]
        for row in body["components"]:
            stats = component_from_dict(row)
            self.components[stats.component, stats.device] = stats
        for name in body["owners_gone"]:
            del self.owners[name]
        for owner, in_use, peak in body["owners"]:
            self.owners[owner] = OwnerStats(owner, in_use, peak)
        if "accounts" in body:
            self.accounts = tuple((str(c), str(d)) for c, d in body["accounts"])
            self.blocks = {key: self.blocks.get(key, {}) for key in self.accounts}
        for key, block, _ in _read_blocks(body["blocks_gone"], sites):
            del self.blocks[key][block]
        for key, block, value in _read_blocks(body["blocks_put"], sites):
            self.blocks[key][block] = value

    def snapshot(self, *, blocks: bool = True) -> Snapshot:
        """The copy as a snapshot of the source (no time series)."""
        live = LiveBlocks.empty()
        if blocks:
            rows = [
                (index, block, value)
                for index, key in enumerate(self.accounts)
                for block, value in self.blocks[key].items()
            ]
            order = {site: i for i, site in enumerate(self.block_sites)}
            body = _block_columns(list(self.accounts), rows, order)
            columns: dict[str, Any] = {name: body[name] for name in _COLUMNS if name in body}
            live = LiveBlocks.from_columns(
                self.accounts, tuple(body["owners"]), columns, self.block_sites
            )
        return Snapshot(
            label=self.label,
            wall_time_ns=self.wall_time_ns,
            monotonic_ns=self.monotonic_ns,
            totals=self.totals,
            components=tuple(self.components[key] for key in sorted(self.components)),
            owners=tuple(self.owners[name] for name in sorted(self.owners)),
            devices=self.devices,
            transfers=self.transfers,
            blocks=live,
            series=(),
            process=self.process,
            site_usage=self.site_usage,
            actors=self.actors,
            transfer_timings=self.transfer_timings,
        )
