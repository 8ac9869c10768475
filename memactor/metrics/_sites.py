"""In-use bytes by allocation site: the ledger's top sites, and sites of a set of blocks.

A site is the line of user code that asked for a block (see
:class:`memactor.events.SiteTable`). These figures exist only for systems opened with
sites on; with sampling (one allocation in N) they count only the sampled lends and are
not scaled, and every text made here says so.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ..events import Site, format_size
from ._accounts import SiteBooks
from ._blocks import UNKNOWN_SITE, LiveBlocks

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
    """Lines for *rows*: ``"1.0 MiB in 4 blocks  tests/test_x.py:12 in test_leak"``
    (the device too, when not ``cpu``), and the sampling note where sampled."""
    lines = [
        f"{indent}{format_size(row.bytes_in_use)} in {row.blocks} "
        f"block{'s' if row.blocks != 1 else ''}"
        f"{'' if row.device == 'cpu' else ' on ' + row.device}  {row.site}"
        for row in rows
    ]
    note = sampled_note(every)
    if note and lines:
        lines.append(f"{indent}({note})")
    return lines
