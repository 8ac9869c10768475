"""Reports of a snapshot or a diff: readable text tables and JSON with every number.

Both are pure functions of their inputs, with a deterministic order, so a report can be
compared in a test or a CI log. Text shows sizes for people (``format_size``); JSON keeps
exact byte counts under stable keys.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ..events import format_size
from ._diff import Change, SnapshotDiff
from ._leaks import leak_report, render_leak_report
from ._projection import Limit
from ._sites import SITES_SHOWN, render_sites, site_json, site_lines, usage_of
from ._snapshot import Snapshot
from ._sources import render_sources
from ._stats import ComponentStats, ProcessStats
from ._trend import Trend, TrendConfig, find_growth, find_unattributed_growth

OWNERS_SHOWN = 10


_UNLIMITED = 1 << 16
"""The width tables get outside :func:`table_width`: as wide as their cells, never wrapped."""

_table_width: ContextVar[int] = ContextVar("memactor_table_width", default=_UNLIMITED)


@contextmanager
def table_width(width: int | None) -> Iterator[None]:
    """Lay out every table rendered in this block (by :func:`render_table`, so in every
    report) to fit *width* columns: cells wrap at spaces, then within words, so that
    nothing is cut. ``None``: as wide as the cells (the default, for files and logs).
    The previous width is restored on leaving the block, also on an exception."""
    if width is not None and width < 1:
        raise ValueError(f"a table width must be at least 1 column, got {width}")
    token = _table_width.set(_UNLIMITED if width is None else width)
    try:
        yield
    finally:
        _table_width.reset(token)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: str = "") -> str:
    """Lay *rows* out under *headers* in columns, as plain text (rich's table layout);
    columns whose index is in *right* are right-aligned (``right="234"``).

    A rule of dashes under the headers marks each column. Tables are as wide as their
    cells unless :func:`table_width` says otherwise: then a table that does not fit
    narrows its gaps to one space, then wraps its cells."""
    from rich.box import Box  # rich loads with the first table, not with the package
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    width = _table_width.get()
    columns = list(zip(headers, *rows, strict=True)) if rows else [(h,) for h in headers]
    gap, widths = _fit(
        [[len(cell) for cell in column] for column in columns],
        [max(len(word) for cell in column for word in cell.split() or [""]) for column in columns],
        width,
    )
    table = Table(
        # Only the rule under the headers: dashes over each column, a space between.
        box=Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True),
        show_edge=False,
        pad_edge=False,
        padding=(0, gap - 1, 0, 0),
        highlight=False,
    )
    for index, header in enumerate(headers):
        table.add_column(
            Text(header),
            justify="right" if str(index) in right else "left",
            overflow="fold",
            width=None if widths is None else widths[index],
        )
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
        emoji=False,
        markup=False,
        highlight=False,
    )
    console.print(table)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    if gap == 2:  # rich rules a column's padding too: keep the dashes over the cells
        for index, line in enumerate(lines):
            if line and not line.strip("- "):
                lines[index] = line.replace("- ", "  ")
                break
    return "\n".join(lines)


def _fit(lengths: list[list[int]], words: list[int], width: int) -> tuple[int, list[int] | None]:
    """The gap between columns and their widths (None: as wide as their cells) for a table
    of cells *lengths* (per column) to fit *width*: two spaces, else one; if the cells do
    not fit whole, the widest column that can wrap at a space narrows, one character at a
    time, to its longest word (*words*). None when even that does not fit: rich folds
    words then."""
    natural = [max(column) for column in lengths]
    gaps = len(natural) - 1
    for gap in (2, 1):
        if sum(natural) + gap * gaps <= width:
            return gap, None
    for gap in (2, 1):
        room = width - gap * gaps
        if sum(words) <= room:
            widths = natural[:]
            for _ in range(sum(natural) - room):
                index = max(range(len(widths)), key=lambda i: (widths[i] - words[i], widths[i]))
                widths[index] -= 1
            return gap, widths
    return 1, None


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``plural(1, "component") == "1 component"``, ``plural(2, ...) == "2 components"``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {nouns or noun + 's'}"


def _seconds(ns: int | float) -> str:
    return f"{ns / 1e9:.1f} s"


def render_trend_verdict(trends: Sequence[Trend]) -> str:
    """The leak verdict over *trends*: which components grow steadily, if any."""
    growing = [t for t in trends if t.growing]
    if not trends:
        return "leak verdict: no time series to judge (sample the ledger while it runs)"
    if not growing:
        longest = max(t.duration_s for t in trends)
        return (
            f"leak verdict: no steady growth in {plural(len(trends), 'component')} "
            f"over {longest:.1f} s of samples"
        )
    lines = [
        f"leak verdict: LEAK SUSPECTED in {len(growing)} of {plural(len(trends), 'component')}"
    ]
    rows = [
        [
            t.component,
            t.device,
            f"{format_size(round(t.slope_bytes_per_s))}/s",
            f"{t.r_squared:.3f}",
            format_size(t.net_growth_bytes, signed=True),
            f"{t.duration_s:.1f} s",
            str(t.points),
        ]
        for t in growing
    ]
    lines.append(
        render_table(
            ["component", "device", "growth", "R²", "net", "over", "points"], rows, right="23456"
        )
    )
    return "\n".join(lines)


def _process_line(stats: ProcessStats) -> str:
    if stats.device == "cpu":
        figures = [("RSS", stats.rss_bytes), ("USS", stats.uss_bytes), ("PSS", stats.pss_bytes)]
        which = "USS" if stats.uss_bytes else "RSS"
    else:
        figures = [("CuPy pool", stats.pool_bytes)]
        which = "device"
    known = ", ".join(f"{name} {format_size(n)}" for name, n in figures if n)
    return (
        f"process on {stats.device}: {format_size(stats.process_bytes)} {which}"
        + (f" ({known})" if known else "")
        + f"; reported by memactor {format_size(stats.bytes_reserved)} reserved; "
        f"unattributed {format_size(stats.unattributed_bytes, signed=True)}"
    )


def render_process(snapshot: Snapshot) -> list[str]:
    """One line per device of what the process held beside what memactor was told
    (``unattributed``: memory outside memactor); no lines when it was never sampled."""
    return [_process_line(stats) for stats in snapshot.process]


def render_unattributed_verdict(trends: Sequence[Trend]) -> str:
    """The verdict on memory outside memactor: which devices' unattributed bytes grow
    steadily (``"memory outside memactor grows at 3.1 MiB/s on cpu ..."``); empty when
    there is no unattributed series to judge."""
    if not trends:
        return ""
    growing = [t for t in trends if t.growing]
    if not growing:
        longest = max(t.duration_s for t in trends)
        return f"memory outside memactor: no steady growth over {longest:.1f} s of samples"
    return "\n".join(
        f"memory outside memactor grows at {format_size(round(t.slope_bytes_per_s))}/s "
        f"on {t.device} (R² {t.r_squared:.3f}, "
        f"{format_size(t.net_growth_bytes, signed=True)} over {t.duration_s:.1f} s): "
        "memory nobody reported to memactor"
        for t in growing
    )


def render_requested(snapshot: Snapshot) -> list[str]:
    """The slack and reuse ratio of each component that reported requested sizes (see
    :attr:`ComponentStats.slack_ratio` and :attr:`ComponentStats.reuse_ratio`); none
    without one."""
    lending = [c for c in snapshot.components if c.requested_lends]
    if not lending:
        return []
    return [
        "",
        "requested versus lent:",
        *(
            f"  {c.component}@{c.device}: {c.slack_ratio:.0%} of lent bytes are slack "
            f"({format_size(c.bytes_lent - c.requested_bytes_lent)} of "
            f"{format_size(c.bytes_lent)} lent over {plural(c.requested_lends, 'lend')}); "
            f"reuse ratio {c.reuse_ratio:.1f} ({format_size(c.requested_bytes_lent)} "
            f"requested, peak {format_size(c.peak_requested_bytes_in_use)} in use)"
            for c in lending
        ),
    ]


def _component_json(stats: ComponentStats) -> dict[str, Any]:
    """A component's fields, with its slack and reuse ratio where it reported requested
    sizes (``None`` where it did not)."""
    lending = stats.requested_lends > 0
    return {
        **stats.to_dict(),
        "slack_ratio": stats.slack_ratio if lending else None,
        "reuse_ratio": stats.reuse_ratio if lending else None,
    }


def render_snapshot(
    snapshot: Snapshot,
    *,
    trend: TrendConfig | None = None,
    sites: int = SITES_SHOWN,
    limits: Sequence[Limit] = (),
) -> str:
    """A text report of *snapshot*: totals, components, owners, devices, the top *sites*
    allocation sites by in-use bytes (where sites were recorded) and the verdict, then the
    leak verdicts, projections to *limits*, fragmentation and recommendations (see
    :func:`leak_report`)."""
    totals = snapshot.totals
    label = f'"{snapshot.label}"' if snapshot.label else "(unlabelled)"
    out = [
        f"memactor snapshot {label}: {format_size(totals.bytes_in_use)} in use, "
        f"{format_size(totals.bytes_reserved)} reserved, "
        f"{plural(totals.live_blocks, 'live block')}",
        f"peak: {format_size(totals.peak_bytes_in_use)} in use, "
        f"{format_size(totals.peak_bytes_reserved)} reserved; events: "
        f"{totals.events_applied:,} applied, {totals.events_dropped:,} dropped, "
        f"{plural(totals.anomalies, 'anomaly', 'anomalies')}, "
        f"{totals.malformed:,} malformed",
        "",
    ]
    if totals.loop_stalls:
        out.insert(
            2,
            f"loop stalls: {totals.loop_stalls:,}, the longest "
            f"{totals.longest_stall_ns / 1e9:.3f} s in {totals.longest_stall_task}",
        )
    if snapshot.process:
        out[-1:-1] = render_process(snapshot)
    if snapshot.sources:
        out[-1:-1] = render_sources(snapshot.sources)
    # A (component, device) that only copied data (TRANSFER) shows in the transfers table.
    held = [c for c in snapshot.components if c.peak_bytes_reserved or c.anomalies]
    rows = [
        [
            c.component,
            c.device,
            format_size(c.bytes_in_use),
            format_size(c.peak_bytes_in_use),
            format_size(c.bytes_reserved),
            format_size(c.peak_bytes_reserved),
            f"{c.live_blocks:,}",
            f"{c.allocations:,}",
            f"{c.acquires:,}",
            f"{c.anomaly_count:,}",
        ]
        for c in held
    ]
    out.append(
        render_table(
            [
                "component",
                "device",
                "in use",
                "peak in use",
                "reserved",
                "peak reserved",
                "blocks",
                "allocs",
                "hits",
                "anomalies",
            ],
            rows,
            right="23456789",
        )
    )
    anomalous = [c for c in snapshot.components if c.anomalies]
    if anomalous:
        out += ["", "anomalies:"]
        out += [
            f"  {c.component}@{c.device}: " + ", ".join(f"{k} {n}" for k, n in c.anomalies)
            for c in anomalous
        ]
    out += render_requested(snapshot)
    if len(snapshot.devices) > 1:
        out += [
            "",
            render_table(
                ["device", "in use", "peak in use", "reserved", "peak reserved"],
                [
                    [
                        d.device,
                        format_size(d.bytes_in_use),
                        format_size(d.peak_bytes_in_use),
                        format_size(d.bytes_reserved),
                        format_size(d.peak_bytes_reserved),
                    ]
                    for d in snapshot.devices
                ],
                right="1234",
            ),
        ]
    if snapshot.transfers:
        out += ["", *render_transfers(snapshot)]
    owners = sorted(snapshot.owners, key=lambda o: (-o.bytes_in_use, -o.peak_bytes_in_use, o.owner))
    if owners:
        shown = owners[:OWNERS_SHOWN]
        out += [
            "",
            render_table(
                ["owner", "in use", "peak in use"],
                [
                    [
                        o.owner or "(none)",
                        format_size(o.bytes_in_use),
                        format_size(o.peak_bytes_in_use),
                    ]
                    for o in shown
                ],
                right="12",
            ),
        ]
        if len(owners) > len(shown):
            out.append(f"... and {plural(len(owners) - len(shown), 'more owner')}")
    out += render_sites(snapshot, sites)
    out += ["", render_trend_verdict(find_growth(snapshot, trend))]
    outside = render_unattributed_verdict(find_unattributed_growth(snapshot, trend))
    if outside:
        out.append(outside)
    out += ["", *render_leak_report(leak_report(snapshot, limits, trend=trend))]
    return "\n".join(out) + "\n"


def snapshot_report_json(
    snapshot: Snapshot, *, trend: TrendConfig | None = None, limits: Sequence[Limit] = ()
) -> dict[str, Any]:
    """Every number of *snapshot*'s report, under stable keys, with the trend verdicts
    and :class:`LeakReport`'s keys (``verdicts``, ``leak_flagged``, ``projections``,
    ``fragmentation``, ``recommendations``)."""
    trends = find_growth(snapshot, trend)
    outside = find_unattributed_growth(snapshot, trend)
    return {
        "label": snapshot.label,
        "wall_time_ns": snapshot.wall_time_ns,
        "monotonic_ns": snapshot.monotonic_ns,
        "totals": dataclasses.asdict(snapshot.totals),
        "components": [_component_json(c) for c in snapshot.components],
        "owners": [dataclasses.asdict(o) for o in snapshot.owners],
        "devices": [dataclasses.asdict(d) for d in snapshot.devices],
        "transfers": [_transfer_json(snapshot, *route) for route in snapshot.transfers],
        "trends": [dataclasses.asdict(t) for t in trends],
        "leak_suspected": any(t.growing for t in trends),
        "process": [dataclasses.asdict(p) for p in snapshot.process],
        "unattributed_trends": [dataclasses.asdict(t) for t in outside],
        "outside_growing": any(t.growing for t in outside),
        **leak_report(snapshot, limits, trend=trend).to_dict(),
        **(
            {"sources": [dataclasses.asdict(s) for s in snapshot.sources]}
            if snapshot.sources
            else {}
        ),
        "callsites": snapshot.totals.callsites,
        "sites": [site_json(row) for row in usage_of(snapshot)],
    }


def render_transfers(snapshot: Snapshot) -> list[str]:
    """The table of *snapshot*'s copies per route; where copies were timed, with the
    time they took and their bandwidth (the timed copies' bytes over their time), so
    each direction's speed shows beside its bytes. ``-`` where no copy was timed."""
    timed = bool(snapshot.transfer_timings)
    rows = []
    for src, dst, n, b in snapshot.transfers:
        row = [src, dst, f"{n:,}", format_size(b)]
        if timed:
            timing = snapshot.timing_of(src, dst)
            rate = None if timing is None else timing.bytes_per_s
            row += [
                "-" if timing is None else f"{timing.duration_ns / 1e9:.3f} s",
                "-" if rate is None else f"{format_size(round(rate))}/s",
            ]
        rows.append(row)
    head = ["from", "to", "copies", "bytes", *(["time", "bandwidth"] if timed else [])]
    return [render_table(head, rows, right="2345" if timed else "23")]


def _transfer_json(snapshot: Snapshot, src: str, dst: str, n: int, b: int) -> dict[str, Any]:
    timing = snapshot.timing_of(src, dst)
    return {
        "from": src,
        "to": dst,
        "transfers": n,
        "bytes": b,
        "timed_transfers": 0 if timing is None else timing.transfers,
        "timed_bytes": 0 if timing is None else timing.bytes,
        "duration_ns": 0 if timing is None else timing.duration_ns,
        "bytes_per_s": None if timing is None else timing.bytes_per_s,
    }


def render_diff(result: SnapshotDiff, *, titles: tuple[str, str] | None = None) -> str:
    """A text report of *result*: per-component changes, suspects and the verdict.

    The heading names the two snapshots by their quoted labels, or by *titles* (such as
    their file names, when the labels are the same)."""
    before, after = titles or (f'"{result.before_label}"', f'"{result.after_label}"')
    out = [
        f"memactor diff {before} -> {after} over "
        f"{_seconds(result.elapsed_ns)} (tolerance {format_size(result.tolerance_bytes)}): "
        f"in use {format_size(result.bytes_in_use_delta, signed=True)}, "
        f"reserved {format_size(result.bytes_reserved_delta, signed=True)}, "
        f"{plural(len(result.new_blocks), 'new live block')}",
        "",
    ]
    rows = [
        [
            d.component,
            d.device,
            d.change.value,
            format_size(d.bytes_in_use_before),
            format_size(d.bytes_in_use_after),
            format_size(d.bytes_in_use_delta, signed=True),
            format_size(d.bytes_reserved_delta, signed=True),
            f"{d.live_blocks_delta:+,}",
        ]
        for d in result.components
        if d.change is not Change.UNCHANGED
    ]
    unchanged = sum(1 for d in result.components if d.change is Change.UNCHANGED)
    process = [
        f"unattributed on {u.device} (memory outside memactor): "
        f"{format_size(u.unattributed_bytes_before, signed=True)} -> "
        f"{format_size(u.unattributed_bytes_after, signed=True)} "
        f"({format_size(u.unattributed_bytes_delta, signed=True)}); the process "
        f"{format_size(u.process_bytes_delta, signed=True)}"
        for u in result.unattributed
    ]
    if rows:
        out.append(
            render_table(
                [
                    "component",
                    "device",
                    "change",
                    "in use before",
                    "after",
                    "delta",
                    "reserved delta",
                    "blocks delta",
                ],
                rows,
                right="34567",
            )
        )
    if unchanged:
        out.append(f"{plural(unchanged, 'component')} unchanged")
    out += process
    out.append("")
    if not result.suspects:
        out.append("verdict: no leak suspected")
    else:
        out.append(f"verdict: LEAK SUSPECTED in {plural(len(result.suspects), 'component')}")
        for s in result.suspects:
            owners = ", ".join(f"{o or '(none)'} {format_size(b)}" for o, b in s.top_owners)
            out.append(
                f"  {s.component}@{s.device}: {s.reason}, "
                f"{format_size(s.bytes_in_use_delta, signed=True)} in use; "
                f"{plural(s.new_blocks, 'new block')} lent out ({format_size(s.new_bytes)})"
                + (f"; held by {owners}" if owners else "")
            )
            out += site_lines(s.top_sites, every=result.callsites, indent="    at ")
    outside = render_unattributed_verdict(result.outside_growing)
    if outside:
        out.append(outside)
    return "\n".join(out) + "\n"


def diff_report_json(result: SnapshotDiff) -> dict[str, Any]:
    """Every number of *result* under stable keys."""
    return {
        "before": result.before_label,
        "after": result.after_label,
        "elapsed_ns": result.elapsed_ns,
        "tolerance_bytes": result.tolerance_bytes,
        "bytes_in_use_delta": result.bytes_in_use_delta,
        "bytes_reserved_delta": result.bytes_reserved_delta,
        "new_blocks": len(result.new_blocks),
        "new_blocks_bytes": int(result.new_blocks.size.sum()),
        "components": [
            {
                **dataclasses.asdict(d),
                "change": d.change.value,
                "bytes_in_use_delta": d.bytes_in_use_delta,
                "bytes_reserved_delta": d.bytes_reserved_delta,
                "live_blocks_delta": d.live_blocks_delta,
            }
            for d in result.components
        ],
        "suspects": [
            {
                **dataclasses.asdict(s),
                "top_owners": [list(pair) for pair in s.top_owners],
                "top_sites": [site_json(row) for row in s.top_sites],
            }
            for s in result.suspects
        ],
        "leak_suspected": result.leaked,
        "unattributed": [
            {**dataclasses.asdict(u), "unattributed_bytes_delta": u.unattributed_bytes_delta}
            for u in result.unattributed
        ],
        "unattributed_trends": [dataclasses.asdict(t) for t in result.unattributed_trends],
        "outside_growing": bool(result.outside_growing),
    }
