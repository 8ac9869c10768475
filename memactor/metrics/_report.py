"""Reports of a snapshot or a diff: readable text tables and JSON with every number.

Both are pure functions of their inputs, with a deterministic order, so a report can be
compared in a test or a CI log. Text shows sizes for people (``format_size``); JSON keeps
exact byte counts under stable keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..events import format_size
from ._diff import Change, SnapshotDiff
from ._leaks import leak_report, render_leak_report
from ._projection import Limit
from ._snapshot import Snapshot
from ._sources import render_sources
from ._stats import ComponentStats, ProcessStats
from ._trend import Trend, TrendConfig, find_growth, find_unattributed_growth

OWNERS_SHOWN = 10


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: str = "") -> str:
    """Lay *rows* out under *headers* in columns; columns whose index is in *right* are
    right-aligned (``right="234"``)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if str(index) in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


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
    snapshot: Snapshot, *, trend: TrendConfig | None = None, limits: Sequence[Limit] = ()
) -> str:
    """A text report of *snapshot*: totals, components, owners, devices and the verdict,
    then the leak verdicts, projections to *limits*, fragmentation and recommendations
    (see :func:`leak_report`)."""
    totals = snapshot.totals
    label = f'"{snapshot.label}"' if snapshot.label else "(unlabelled)"
    out = [
        f"memactor snapshot {label}: {format_size(totals.bytes_in_use)} in use, "
        f"{format_size(totals.bytes_reserved)} reserved, {totals.live_blocks:,} live blocks",
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
        out += [
            "",
            render_table(
                ["from", "to", "copies", "bytes"],
                [[src, dst, f"{n:,}", format_size(b)] for src, dst, n, b in snapshot.transfers],
                right="23",
            ),
        ]
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
            out.append(f"... and {len(owners) - len(shown)} more owners")
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
        "transfers": [
            {"from": s, "to": d, "transfers": n, "bytes": b} for s, d, n, b in snapshot.transfers
        ],
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
    }


def render_diff(result: SnapshotDiff) -> str:
    """A text report of *result*: per-component changes, suspects and the verdict."""
    out = [
        f'memactor diff "{result.before_label}" -> "{result.after_label}" over '
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
            {**dataclasses.asdict(s), "top_owners": [list(pair) for pair in s.top_owners]}
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
