"""In-use bytes by allocation site: the ledger's top sites, and sites of a set of blocks.

A site is the line of user code that asked for a block (see
:class:`memactor.events.SiteTable`). These figures exist only for systems opened with
sites on; with sampling (one allocation in N) they count only the sampled lends and are
not scaled, and every text made here says so.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..events import Site, format_size
from ._accounts import SiteBooks
from ._blocks import UNKNOWN_SITE, LiveBlocks

if TYPE_CHECKING:
    from ._snapshot import Snapshot

SITES_SHOWN: Final = 10
"""How many sites a report lists unless told otherwise."""

TOP_SITES: Final = 32
"""How many sites a snapshot keeps in :attr:`Snapshot.site_usage` (the largest first):
enough for any display, few enough that a live view stays small."""


@dataclass(frozen=True, slots=True)
class SiteUsage:
    """The bytes that blocks lent from one site hold now on one device."""

    site: Site
    device: str
    bytes_in_use: int
    blocks: int


def top_sites(
    books: SiteBooks, site_of: Callable[[int], Site | None], limit: int = TOP_SITES
) -> tuple[SiteUsage, ...]:
    """The *limit* sites that hold the most in-use bytes, largest first (ties by site)."""
    rows = [
        SiteUsage(site, device, entry[0], entry[1])
        for (site_id, device), entry in books.items()
        if (site := site_of(site_id)) is not None
    ]
    return tuple(heapq.nsmallest(limit, rows, key=_order))


def sites_of_blocks(blocks: LiveBlocks, *, in_use_only: bool = True) -> tuple[SiteUsage, ...]:
    """The bytes of *blocks* summed by site and device, largest first; blocks without a
    site are left out. With *in_use_only* (the default) cached blocks are too."""
    mask = blocks.site != UNKNOWN_SITE
    if in_use_only:
        mask &= blocks.in_use
    if not mask.any():
        return ()
    device_of = [device for _, device in blocks.accounts]
    pairs: dict[tuple[int, str], list[int]] = {}
    for site, account, size in zip(
        blocks.site[mask].tolist(),
        blocks.account[mask].tolist(),
        blocks.size[mask].tolist(),
        strict=True,
    ):
        entry = pairs.setdefault((site, device_of[account]), [0, 0])
        entry[0] += size
        entry[1] += 1
    rows = [
        SiteUsage(blocks.sites[site], device, total, count)
        for (site, device), (total, count) in pairs.items()
    ]
    return tuple(sorted(rows, key=_order))


def _order(row: SiteUsage) -> tuple[int, str, int, str, str]:
    return (-row.bytes_in_use, row.site.file, row.site.line, row.site.function, row.device)


def sampled_note(every: int) -> str:
    """What a list of sites says about sampling: ``""`` for every allocation, else that
    only one allocation in *every* was recorded and the bytes are not scaled."""
    if every <= 1:
        return ""
    return f"sampled: one allocation in {every} recorded, bytes not scaled"


def site_lines(rows: Sequence[SiteUsage], *, every: int = 1, indent: str = "  ") -> list[str]:
    """Lines for *rows*: ``"tests/test_x.py:12 in test_leak: 1.0 MiB in 4 blocks"``
    (the device too, when not ``cpu``), and the sampling note where sampled."""
    lines = [
        f"{indent}{format_site(row.site)}: {format_size(row.bytes_in_use)} in {row.blocks} "
        f"block{'s' if row.blocks != 1 else ''}"
        f"{'' if row.device == 'cpu' else ' on ' + row.device}"
        for row in rows
    ]
    note = sampled_note(every)
    if note and lines:
        lines.append(f"{' ' * (len(indent) - len(indent.lstrip()))}({note})")
    return lines


def format_site(site: Site) -> str:
    """*site* as people read it: ``path:line in function``, the path relative to the
    working directory when the file lies under it."""
    file = site.file
    cwd = os.getcwd() + os.sep
    if file.startswith(cwd):
        file = file[len(cwd) :]
    return f"{file}:{site.line} in {site.function}"


def usage_of(snapshot: Snapshot) -> tuple[SiteUsage, ...]:
    """In-use bytes by site in *snapshot*, largest first: from its live blocks where it
    has them with sites (every site), else its :attr:`~Snapshot.site_usage` (the top)."""
    if snapshot.blocks.sites:
        return sites_of_blocks(snapshot.blocks)
    return snapshot.site_usage


def render_sites(snapshot: Snapshot, top: int = SITES_SHOWN) -> list[str]:
    """The report's section of in-use bytes by site: a heading and the *top* sites, or
    nothing when *snapshot* recorded no sites or *top* is 0."""
    if not snapshot.totals.callsites or top <= 0:
        return []
    rows = usage_of(snapshot)
    note = sampled_note(snapshot.totals.callsites)
    shown = f"top {top} of {len(rows)}" if len(rows) > top else plural_sites(len(rows))
    heading = f"in use by site ({shown}{'; ' + note if note else ''}):"
    if not rows:
        return ["", "in use by site: no lent block has a site"]
    return ["", heading, *site_lines(rows[:top], every=1)]


def plural_sites(count: int) -> str:
    return f"{count} site{'' if count == 1 else 's'}"


def site_json(row: SiteUsage) -> dict[str, Any]:
    """*row* under stable keys, for JSON reports."""
    return {
        "file": row.site.file,
        "line": row.site.line,
        "function": row.site.function,
        "device": row.device,
        "bytes_in_use": row.bytes_in_use,
        "blocks": row.blocks,
    }
