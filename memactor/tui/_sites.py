"""The sites view's rows: in-use bytes by allocation site, as pure code (no widgets).

A view (a snapshot without blocks) carries the sites that hold the most bytes (see
``Snapshot.site_usage``), whether it comes from this process or over the wire, so this
works the same attached to a remote program.
"""

from __future__ import annotations

from typing import Final

from ..events import format_size
from ..metrics import Snapshot, format_site
from ._model import matches

SITE_COLUMNS: Final = ("site", "device", "in use", "blocks")
SITE_HIDE_FIRST: Final = (3, 1)
"""Columns a narrow table leaves out, first to last: blocks, device (the site and its
bytes stay)."""

Row = tuple[str, tuple[str, ...]]


def site_rows(view: Snapshot | None, text: str = "") -> tuple[Row, ...]:
    """``(key, cells)`` rows of *view*'s top sites, largest first, those whose
    ``file:line in function`` matches the filter *text*; a last row says when the sites
    were sampled, and a single row says how to turn sites on when they are off."""
    if view is None:
        return ()
    if not view.totals.callsites:
        off = "sites are off: open_system(callsites=True) or MEMACTOR_CALLSITES=1"
        return (("off", (off, "", "", "")),)
    rows: list[Row] = []
    for usage in view.site_usage:
        name = format_site(usage.site)
        if not matches(name, text):
            continue
        rows.append(
            (
                f"{usage.site.file}\0{usage.site.line}\0{usage.device}",
                (name, usage.device, format_size(usage.bytes_in_use), f"{usage.blocks:,}"),
            )
        )
    note = view.sites_note
    if note:
        rows.append(("sampled", (f"({note})", "", "", "")))
    return tuple(rows)
