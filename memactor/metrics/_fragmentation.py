"""Fragmentation per component and device: the cache, the slack, and the cached sizes.

- *cache*: reserved minus in use, the bytes a pool holds that nobody is using;
- *slack*: lent minus requested, the bytes handed out beyond what was asked for (a size
  class rounding up). Exact over the run from the lends that carried a requested size;
  exact *now* only when every lend carried one (else ``None``);
- *cached sizes*: the power-of-two histogram of the blocks sitting in the cache, from the
  snapshot's live blocks (exact: every cached block is a live block with no owner).

Pure functions of a snapshot; a component that never cached nor reported requested sizes
shows nothing worth a row and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..events import format_size
from ._blocks import CACHED
from ._snapshot import Snapshot
from ._stats import ComponentStats, histogram_bucket_bounds


@dataclass(frozen=True, slots=True)
class Fragmentation:
    """The cache and slack of one component on one device (``component="*"``: a
    device's total)."""

    component: str
    device: str
    bytes_reserved: int
    bytes_in_use: int
    cached_bytes: int
    cached_blocks: int
    cached_sizes: tuple[tuple[int, int, int, int], ...]
    """``(smallest, largest, blocks, bytes)`` per power-of-two bucket of cached block
    sizes, smallest first, empty buckets left out."""
    slack_bytes_now: int | None
    """Lent minus requested among the lends out now; ``None`` where not every lend
    carried a requested size."""
    slack_bytes_lent: int
    """Lent minus requested over the run, over :attr:`requested_lends`."""
    bytes_lent: int
    requested_lends: int

    def to_dict(self) -> dict[str, object]:
        return {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name != "cached_sizes"
        } | {
            "cached_sizes": [
                {"smallest": lo, "largest": hi, "blocks": n, "bytes": b}
                for lo, hi, n, b in self.cached_sizes
            ]
        }

    def sentence(self) -> str:
        """``"pool: cache 48 MiB in 12 blocks (4 MiB: 12) of 64 MiB reserved; slack ..."``"""
        sizes = ", ".join(f"{format_size(lo)}: {n:,}" for lo, _, n, _ in self.cached_sizes)
        where = self.component if self.component != "*" else "every component"
        # A view (no live blocks) knows the cached bytes but not the blocks holding them.
        blocks = (
            f" in {self.cached_blocks:,} blocks"
            if self.cached_blocks or not self.cached_bytes
            else ""
        )
        text = (
            f"{where} on {self.device}: cache {format_size(self.cached_bytes)}{blocks} "
            f"of {format_size(self.bytes_reserved)} reserved"
            + (f" (sizes from {sizes})" if sizes else "")
        )
        if self.requested_lends:
            share = self.slack_bytes_lent / self.bytes_lent if self.bytes_lent else 0.0
            text += (
                f"; slack {format_size(self.slack_bytes_lent)} of "
                f"{format_size(self.bytes_lent)} lent ({share:.0%})"
            )
            if self.slack_bytes_now is not None:
                text += f", {format_size(self.slack_bytes_now)} in the lends out now"
        return text


def _slack_now(stats: ComponentStats) -> int | None:
    every_lend = stats.requested_lends == stats.allocations + stats.acquires
    if not stats.requested_lends or not every_lend:
        return None
    return stats.bytes_in_use - stats.requested_bytes_in_use


def fragmentation(snapshot: Snapshot) -> tuple[Fragmentation, ...]:
    """The fragmentation of every component that caches or reported requested sizes,
    then each device's total of them, sorted by component then device."""
    blocks = snapshot.blocks
    cached = blocks.owner == CACHED
    rows = []
    for stats in snapshot.components:
        if not (
            stats.bytes_cached
            or stats.requested_lends
            or stats.peak_bytes_reserved > stats.peak_bytes_in_use
        ):
            continue
        mine = blocks.rows_of(stats.component, stats.device) & cached
        sizes = blocks.size[mine]
        buckets = np.zeros(64, dtype=np.int64)
        counts = np.zeros(64, dtype=np.int64)
        if len(sizes):
            index = np.where(
                sizes > 0, np.floor(np.log2(np.maximum(sizes, 1))).astype(np.int64) + 1, 0
            )
            np.add.at(counts, index, 1)
            np.add.at(buckets, index, sizes)
        histogram = tuple(
            (*histogram_bucket_bounds(i), int(counts[i]), int(buckets[i]))
            for i in range(64)
            if counts[i]
        )
        rows.append(
            Fragmentation(
                stats.component,
                stats.device,
                stats.bytes_reserved,
                stats.bytes_in_use,
                stats.bytes_cached,
                int(mine.sum()),
                histogram,
                _slack_now(stats),
                stats.bytes_lent - stats.requested_bytes_lent,
                stats.bytes_lent,
                stats.requested_lends,
            )
        )
    devices = sorted({r.device for r in rows})
    totals = []
    for device in devices:
        on = [r for r in rows if r.device == device]
        merged: dict[tuple[int, int], list[int]] = {}
        for r in on:
            for lo, hi, n, b in r.cached_sizes:
                entry = merged.setdefault((lo, hi), [0, 0])
                entry[0] += n
                entry[1] += b
        now = [r.slack_bytes_now for r in on]
        totals.append(
            Fragmentation(
                "*",
                device,
                sum(r.bytes_reserved for r in on),
                sum(r.bytes_in_use for r in on),
                sum(r.cached_bytes for r in on),
                sum(r.cached_blocks for r in on),
                tuple((lo, hi, n, b) for (lo, hi), (n, b) in sorted(merged.items())),
                None if None in now else sum(n for n in now if n is not None),
                sum(r.slack_bytes_lent for r in on),
                sum(r.bytes_lent for r in on),
                sum(r.requested_lends for r in on),
            )
        )
    return tuple(rows) + (tuple(totals) if len(rows) > 1 else ())
