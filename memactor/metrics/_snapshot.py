"""Snapshots: an immutable, self-describing picture of the ledger at one moment.

A snapshot holds the totals, every component's, owner's and device's statistics, every
live block (who holds it, on which device, since when), the time series so far and the
event counters. It saves to msgpack (``.msgpack``, the default) or JSON (``.json``) and
loads back equal; a damaged, truncated or foreign file raises :class:`CodecError` naming
the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, TypeVar

import numpy as np

from ..codec import DEFAULT_LIMITS as DEFAULT_LIMITS
from ..codec import (
    CodecError,
    DecodeLimits,
    decode,
    decode_buffer,
    decode_json,
    encode,
    frame,
    is_partial,
    read_file,
    save_atomically,
    write,
)
from ..events import Site
from ._actors import ActorSample
from ._blocks import LiveBlock, LiveBlocks, read_column
from ._series import SeriesView
from ._sites import SiteUsage, sampled_note
from ._sources import SourceStats
from ._stats import (
    ComponentStats,
    DeviceStats,
    LedgerStats,
    OwnerStats,
    ProcessStats,
    TransferTiming,
)

SNAPSHOT_TYPE: Final = "snapshot"

TOTAL: Final = "*"
"""The component name of the series that sums every component."""

PROCESS: Final = "(process)"
"""The component name of a device's process series: ``bytes_reserved`` holds what the
process held on the device (:attr:`ProcessStats.process_bytes`), ``bytes_in_use`` the
unattributed remainder (:attr:`ProcessStats.unattributed_bytes`)."""

Format = Literal["msgpack", "json"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, eq=False)
class ComponentSeries:
    """The time series of one component on one device (component ``"*"``: the total)."""

    component: str
    device: str
    series: SeriesView

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ComponentSeries):
            return NotImplemented
        return (self.component, self.device, self.series) == (
            other.component,
            other.device,
            other.series,
        )

    __hash__ = None  # type: ignore[assignment]  # its series hold arrays: not hashable


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The ledger at one moment. Take one with :meth:`Ledger.snapshot`."""

    label: str
    wall_time_ns: int
    """:func:`time.time_ns` when the snapshot was taken."""
    monotonic_ns: int
    """The ledger's clock when the snapshot was taken; block ages count from here."""
    totals: LedgerStats
    components: Sequence[ComponentStats]
    """Sorted by component then device: a tuple, or (from the ledger) an immutable
    sequence that behaves as and compares equal to one (see ``Ledger.components``)."""
    owners: tuple[OwnerStats, ...]
    devices: tuple[DeviceStats, ...]
    transfers: tuple[tuple[str, str, int, int], ...]
    """``(from_device, to_device, transfers, bytes)`` per route."""
    blocks: LiveBlocks
    series: tuple[ComponentSeries, ...]
    process: tuple[ProcessStats, ...] = ()
    """What the process held per device at its last sample, beside what its components
    reserved; empty when the process was never sampled (a bare ledger, an older file)."""
    process_series: tuple[ComponentSeries, ...] = ()
    """Each sampled device's :data:`PROCESS` series (process bytes as reserved, the
    unattributed remainder as in use); empty without series or samples."""
    sources: tuple[SourceStats, ...] = ()
    """The processes a merged snapshot (an aggregator's, see :mod:`memactor.cluster`)
    was made from, live and gone; empty for one process's snapshot (and older files)."""
    site_usage: tuple[SiteUsage, ...] = ()
    """The sites whose lends hold the most in-use bytes now, largest first (at most
    ``TOP_SITES``; views without blocks have them too); empty with sites off. Where
    ``totals.callsites`` is above 1 they count sampled lends only, unscaled."""
    actors: tuple[ActorSample, ...] = ()
    """What the metrics actor's ticks saw of each actor (mailbox fullness, a chunk
    processor's lookahead), sorted by name; empty for a bare ledger, and in files written
    before actors were sampled."""
    transfer_timings: tuple[TransferTiming, ...] = ()
    """How long the timed copies of each route took (see ``Ledger.transfer_timings``),
    sorted by route; empty where no copy carried a duration, and in files written before
    copies were timed."""

    def timing_of(self, src: str, dst: str) -> TransferTiming | None:
        """The timed copies from *src* to *dst*, or ``None`` when none was timed."""
        for timing in self.transfer_timings:
            if (timing.src, timing.dst) == (src, dst):
                return timing
        return None

    @property
    def sites_note(self) -> str:
        """``""``, or what to say beside sites when they were sampled (see ``callsites``)."""
        return sampled_note(self.totals.callsites)

    def process_on(self, device: str = "cpu") -> ProcessStats | None:
        """The process figures of *device*, or ``None`` when it was not sampled."""
        for stats in self.process:
            if stats.device == device:
                return stats
        return None

    def component(self, component: str, device: str = "cpu") -> ComponentStats:
        """One component's statistics; :class:`KeyError` naming it if absent."""
        for stats in self.components:
            if stats.component == component and stats.device == device:
                return stats
        raise KeyError(f"snapshot {self.label!r} has no component {component!r} on {device!r}")

    def age_ns(self, block: LiveBlock) -> int:
        """How long *block* had been alive when the snapshot was taken."""
        return self.monotonic_ns - block.allocated_ns

    # -- files ----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, format: Format | None = None) -> Path:
        """Write the snapshot to *path* and return it as a :class:`Path`.

        The format comes from *format*, else the suffix (``.json`` is JSON, anything else
        msgpack). The file is written to a new temporary file beside *path*
        (``.NAME.XXXXXXXX.partial``, created exclusively, never through a symlink),
        synced, renamed over *path* and the directory synced, so a crash never leaves a
        half-written snapshot under the real name and two savers never collide; a save
        killed midway can leave its ``.partial`` file, which :meth:`load` refuses.
        Raises :class:`OSError` as writing raises it; *path* is then as it was.
        """
        target = Path(path)
        chosen = format or ("json" if target.suffix.lower() == ".json" else "msgpack")

        def write_to(file: BinaryIO) -> None:
            if chosen == "json":
                file.write(self.to_json().encode())
            else:
                write(file, SNAPSHOT_TYPE, self._body(binary=True))

        return save_atomically(target, write_to)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, limits: DecodeLimits = DEFAULT_LIMITS
    ) -> Snapshot:
        """Read a snapshot written by :meth:`save`, in either format.

        At most ``limits.max_bytes`` are read, whatever the file's size says, and only
        from a regular file; JSON is held to the same *limits* as msgpack. Raises
        :class:`CodecError` naming the file when it is damaged, truncated, not a memactor
        snapshot, from another schema version, over a limit, not a regular file (a FIFO,
        a device) or a save's unfinished ``.NAME.*.partial`` file; :class:`OSError` as
        usual when it cannot be read at all (:class:`IsADirectoryError` for a directory).
        """
        source = Path(path)
        try:
            if is_partial(source):
                raise CodecError("an unfinished save's temporary file, not a snapshot")
            data = read_file(source, limits=limits)
            # msgpack maps start with a byte in 0x80-0x8f or 0xde-0xdf; JSON with text.
            if bytes(data[:64]).lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
                return cls.from_dict(decode_json(data.tobytes(), SNAPSHOT_TYPE, limits=limits))
            # The block columns stay views of *data*: the file's bytes are held once.
            return cls.from_dict(decode_buffer(data, SNAPSHOT_TYPE, limits=limits))
        except CodecError as exc:
            raise CodecError(f"{source}: {exc}") from None

    def to_msgpack(self) -> bytes:
        return encode(SNAPSHOT_TYPE, self._body(binary=True))

    @classmethod
    def from_msgpack(cls, data: bytes, *, limits: DecodeLimits = DEFAULT_LIMITS) -> Snapshot:
        return cls.from_dict(decode(data, SNAPSHOT_TYPE, limits=limits))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as plain JSON-ready data, marker and schema version included."""
        return frame(SNAPSHOT_TYPE, self._body(binary=False))

    def _body(self, *, binary: bool) -> dict[str, Any]:
        def column(array: np.ndarray[Any, Any]) -> Any:
            if binary:
                # A view, not a copy, on little-endian hosts; msgpack packs it as bin.
                little = array.astype(array.dtype.newbyteorder("<"), copy=False)
                return np.ascontiguousarray(little).data.cast("B")
            return array.tolist()

        def series_body(s: ComponentSeries) -> dict[str, Any]:
            return {
                "component": s.component,
                "device": s.device,
                "stride": s.series.stride,
                "times_ns": column(s.series.times_ns),
                "bytes_reserved": column(s.series.bytes_reserved),
                "bytes_in_use": column(s.series.bytes_in_use),
            }

        blocks = self.blocks
        return {
            "label": self.label,
            "wall_time_ns": self.wall_time_ns,
            "monotonic_ns": self.monotonic_ns,
            "totals": dataclasses.asdict(self.totals),
            "components": [c.to_dict() for c in self.components],
            "owners": [dataclasses.astuple(o) for o in self.owners],
            "devices": [dataclasses.astuple(d) for d in self.devices],
            "transfers": [list(route) for route in self.transfers],
            "blocks": {
                "accounts": [list(pair) for pair in blocks.accounts],
                "owners": list(blocks.owners),
                **{
                    name: column(getattr(blocks, name))
                    for name in ("account", "block", "size", "owner", "allocated_ns")
                },
                # Written only where a block has a site: files without stay as they were.
                **(
                    {"sites": [list(site) for site in blocks.sites], "site": column(blocks.site)}
                    if blocks.sites
                    else {}
                ),
            },
            "series": [series_body(s) for s in self.series],
            "process": [dataclasses.asdict(p) for p in self.process],
            "process_series": [series_body(s) for s in self.process_series],
            **({"sources": [dataclasses.asdict(s) for s in self.sources]} if self.sources else {}),
            "site_usage": [[*u.site, u.device, u.bytes_in_use, u.blocks] for u in self.site_usage],
            # Written only where actors were sampled: files without stay as they were.
            **({"actors": [dataclasses.asdict(a) for a in self.actors]} if self.actors else {}),
            # Written only where copies were timed: files without stay as they were.
            **(
                {"transfer_timings": [dataclasses.astuple(t) for t in self.transfer_timings]}
                if self.transfer_timings
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Snapshot:
        """Rebuild a snapshot from :meth:`to_dict` output (or its msgpack form).

        Raises :class:`CodecError` naming the first field that is missing or wrong.
        """
        try:
            return cls._from_body(body)
        except CodecError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            # OverflowError: a number too large for its int64 column.
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise CodecError(f"damaged snapshot: {detail}") from None

    @classmethod
    def _from_body(cls, body: Mapping[str, Any]) -> Snapshot:
        blocks_body = body["blocks"]
        blocks = LiveBlocks.from_columns(
            tuple((_str(c), _str(d)) for c, d in blocks_body["accounts"]),
            tuple(_str(o) for o in blocks_body["owners"]),
            {
                **{
                    name: blocks_body[name]
                    for name in ("account", "block", "size", "owner", "allocated_ns")
                },
                **({"site": blocks_body["site"]} if "site" in blocks_body else {}),
            },
            # Written since sites were recorded; earlier files of schema 1 lack them.
            tuple(_site(*site) for site in blocks_body.get("sites", ())),
        )
        components = tuple(component_from_dict(c) for c in body["components"])
        series = tuple(
            ComponentSeries(_str(s["component"]), _str(s["device"]), _series_view(s))
            for s in body["series"]
        )
        process_series = tuple(
            ComponentSeries(_str(s["component"]), _str(s["device"]), _series_view(s))
            for s in body.get("process_series", ())
        )
        return cls(
            label=_str(body["label"]),
            wall_time_ns=_int(body["wall_time_ns"]),
            monotonic_ns=_int(body["monotonic_ns"]),
            totals=_build(LedgerStats, body["totals"]),
            components=components,
            owners=tuple(OwnerStats(_str(o), _int(u), _int(p)) for o, u, p in body["owners"]),
            devices=tuple(
                DeviceStats(_str(d), _int(r), _int(u), _int(pr), _int(pu))
                for d, r, u, pr, pu in body["devices"]
            ),
            transfers=tuple(
                (_str(s), _str(d), _int(n), _int(b)) for s, d, n, b in body["transfers"]
            ),
            blocks=blocks,
            series=series,
            # Written since the process was sampled; earlier files of schema 1 lack it.
            process=tuple(_build(ProcessStats, p) for p in body.get("process", ())),
            process_series=process_series,
            # Written by an aggregator since sources were added; absent otherwise.
            sources=tuple(_build(SourceStats, s) for s in body.get("sources", ())),
            site_usage=tuple(
                SiteUsage(_site(file, line, function), _str(device), _int(held), _int(count))
                for file, line, function, device, held, count in body.get("site_usage", ())
            ),
            # Written since actors were sampled, and only where there were any.
            actors=tuple(_build(ActorSample, a) for a in body.get("actors", ())),
            # Written since copies were timed, and only where one was.
            transfer_timings=tuple(
                TransferTiming(_str(s), _str(d), _int(n), _int(b), _int(t))
                for s, d, n, b, t in body.get("transfer_timings", ())
            ),
        )


def component_from_dict(body: Mapping[str, Any]) -> ComponentStats:
    """A component's statistics from :meth:`ComponentStats.to_dict` output (or its
    msgpack form); ``ValueError`` or ``KeyError`` naming what is wrong."""
    return _build(
        ComponentStats,
        {
            **body,
            "size_histogram": tuple(_int(n) for n in body["size_histogram"]),
            "anomalies": tuple(sorted((_str(k), _int(v)) for k, v in body["anomalies"].items())),
        },
    )


def build_stats(cls: Callable[..., _T], fields: Mapping[str, Any]) -> _T:
    """A frozen statistics value of *cls* from its fields by name, each checked (a
    string or an integer as declared); ``ValueError`` naming what is wrong. Fields
    added to schema 1 later may be missing."""
    return _build(cls, fields)


def _site(file: object, line: object, function: object) -> Site:
    return Site(_str(file), _int(line), _str(function))


def _series_view(body: Mapping[str, Any]) -> SeriesView:
    columns = [
        read_column(body[name], name, np.int64, what="series column")
        for name in ("times_ns", "bytes_reserved", "bytes_in_use")
    ]
    if len({len(c) for c in columns}) != 1:
        raise ValueError("series columns differ in length")
    return SeriesView(columns[0], columns[1], columns[2], _int(body["stride"]))


_ADDED_LATER = frozenset(
    {
        "loop_stalls",
        "longest_stall_ns",
        "longest_stall_task",
        "requested_bytes_in_use",
        "peak_requested_bytes_in_use",
        "requested_lends",
        "bytes_lent",
        "requested_bytes_lent",
        "callsites",
    }
)
"""Fields added to schema 1 after files were written without them: they take their
defaults when missing."""


def _build(cls: Callable[..., _T], fields: Mapping[str, Any]) -> _T:
    # Annotations are strings here (``from __future__ import annotations``).
    declared = {f.name: f.type for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass
    unknown = set(fields) - set(declared)
    if unknown:
        raise ValueError(f"unexpected fields {sorted(unknown)}")
    missing = set(declared) - set(fields) - _ADDED_LATER
    if missing:
        raise ValueError(f"missing fields {sorted(missing)}")
    checked = {
        k: v if isinstance(v, tuple) else _scalar(k, v, declared[k]) for k, v in fields.items()
    }
    return cls(**checked)


def _scalar(name: str, value: object, declared: object) -> object:
    if declared == "str":
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} has a {type(value).__name__}, expected a string")
    elif isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {name!r} has a {type(value).__name__}, expected an integer")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, found {value!r}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, found {value!r}")
    return value
