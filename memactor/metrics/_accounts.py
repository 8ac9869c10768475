"""The ledger's mutable bookkeeping: one account per (component, device), per owner, per device.

These are private and mutated only by :class:`~memactor.metrics.Ledger`; the public
face of each is a frozen value from :mod:`._stats`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING

from .._native import load
from ..events import NO_SITE, SITE_TAG, Tags, requested_of, site_of
from ._series import TimeSeries
from ._stats import HISTOGRAM_BUCKETS, ComponentStats, DeviceStats, OwnerStats, component_stats

if TYPE_CHECKING:
    from ._rows import _Chunk

# A live block is one int in ``Account.blocks[block]``, packed to keep a million live
# blocks small and every update a few integer operations (where the compiled ledger
# runs, ``blocks`` is its C table, which stores each in 24 bytes and reads the same):
#   bits 0-47   size in bytes
#   bits 48-71  index of the owner holding it (0: in its pool's cache, lent to nobody)
#   bits 72-    allocation time in nanoseconds (may be negative; Python ints are unbounded)
SIZE_BITS = 48
SIZE_MASK = (1 << SIZE_BITS) - 1
OWNER_SHIFT = SIZE_BITS
OWNER_BITS = 24
OWNER_MASK = (1 << OWNER_BITS) - 1
OWNER_FIELD = OWNER_MASK << OWNER_SHIFT
TIME_SHIFT = OWNER_SHIFT + OWNER_BITS
NO_OWNER = ~OWNER_FIELD
NO_SIZE = ~SIZE_MASK

RECENT_FREES = 4096
"""How many freed block ids an account remembers per generation (it keeps two), to tell
a double free from a stranger, while the ledger has few accounts."""
RECENT_FREES_BUDGET = 1 << 18
"""How many freed block ids one generation may hold over all of a ledger's accounts: with
more than ``RECENT_FREES_BUDGET // RECENT_FREES`` accounts, each remembers fewer."""
MIN_RECENT_FREES = 64
"""The fewest freed block ids an account remembers per generation, however many there are."""


def recent_frees_limit(accounts: int) -> int:
    """How many freed ids each of *accounts* accounts remembers per generation: the
    budget shared out, rounded down to a power of two, within the bounds above."""
    share = RECENT_FREES_BUDGET // max(accounts, 1)
    return max(MIN_RECENT_FREES, min(RECENT_FREES, 1 << (share.bit_length() - 1) if share else 0))


RETIRED = "(retired)"
"""The component name of the row that sums every retired component of a device."""
OTHER_OWNERS = "(other owners)"
"""The owner name of the row that sums every owner left out of the owner table."""


BlockMap = MutableMapping[int, int]
"""An account's live blocks: block id to packed record, in insertion order."""

_ledger_core = load("_ledger")
new_blocks: Callable[[], BlockMap] = dict if _ledger_core is None else _ledger_core.Blocks
"""A fresh, empty map of live blocks: the compiled ledger's C table (24 bytes a block),
or a dict where the ledger runs in pure Python."""

SiteBooks = dict[tuple[int, str], list[int]]
"""In-use ``[bytes, blocks]`` per ``(site id, device)``."""


class DeviceAccount:
    __slots__ = ("device", "in_use", "peak_in_use", "peak_reserved", "reserved")

    def __init__(self, device: str) -> None:
        self.device = device
        self.reserved = 0
        self.in_use = 0
        self.peak_reserved = 0
        self.peak_in_use = 0

    def freeze(self) -> DeviceStats:
        return DeviceStats(
            self.device, self.reserved, self.in_use, self.peak_reserved, self.peak_in_use
        )


class OwnerAccount:
    __slots__ = ("in_use", "owner", "peak_in_use", "tag")

    def __init__(self, owner: str, index: int) -> None:
        self.owner = owner
        self.tag = index << OWNER_SHIFT
        """The owner's index, placed where a packed block keeps it."""
        self.in_use = 0
        self.peak_in_use = 0

    def freeze(self) -> OwnerStats:
        return OwnerStats(self.owner, self.in_use, self.peak_in_use)


class Account:
    """The books of one component on one device."""

    __slots__ = (
        "acquires",
        "allocations",
        "anomalies",
        "blocks",
        "bytes_allocated",
        "bytes_lent",
        "bytes_transferred",
        "component",
        "device",
        "device_account",
        "free_limit",
        "freed",
        "freed_before",
        "frees",
        "frozen",
        "histogram",
        "in_use",
        "lifetime_max_ns",
        "lifetime_total_ns",
        "lifetimes",
        "peak_in_use",
        "peak_reserved",
        "releases",
        "requested_in_use",
        "requested_lends",
        "requested_lent",
        "requested_peak_in_use",
        "requests",
        "reserved",
        "resizes",
        "retired",
        "row_chunk",
        "row_index",
        "sampled",
        "sampled_in_use",
        "sampled_ns",
        "sampled_reserved",
        "series",
        "site_books",
        "sites",
        "transfers",
    )

    def __init__(self, component: str, device: str, device_account: DeviceAccount) -> None:
        self.component = component
        self.device = device
        self.device_account = device_account
        self.blocks: BlockMap = new_blocks()
        self.reserved = 0
        self.in_use = 0
        self.peak_reserved = 0
        self.peak_in_use = 0
        self.allocations = 0
        self.frees = 0
        self.acquires = 0
        self.releases = 0
        self.resizes = 0
        self.transfers = 0
        self.bytes_allocated = 0
        self.bytes_transferred = 0
        self.histogram = [0] * HISTOGRAM_BUCKETS
        self.lifetimes = 0
        self.lifetime_total_ns = 0
        self.lifetime_max_ns = 0
        self.anomalies: dict[str, int] = {}
        # Requested versus lent, kept only for lends that carried a requested size: the
        # requested bytes of each such block lent now (so a RELEASE or FREE takes them
        # back), and their sums. Empty and zero for components that report none.
        self.requests: dict[int, int] = {}
        self.requested_in_use = 0
        self.requested_peak_in_use = 0
        self.requested_lends = 0
        self.bytes_lent = 0
        self.requested_lent = 0
        # Allocation sites, kept only for lends that carried one: the site id of each
        # such block lent now, and the ledger's in-use bytes and blocks per (site,
        # device), shared by every account (the ledger hands its own in).
        self.sites: dict[int, int] = {}
        self.site_books: SiteBooks = {}
        # Two generations of recently freed ids: bounded memory, and a double free is
        # recognised if it comes within the last free_limit..2*free_limit frees. The
        # ledger lowers free_limit as accounts multiply (see ``recent_frees_limit``).
        self.free_limit = RECENT_FREES
        self.freed: set[int] = set()
        self.freed_before: set[int] = set()
        # Kept by the ledger between ticks: the last frozen statistics, the series, how
        # many samples it holds (counted from the ledger's first), the bytes of the last
        # of them and when the account last changed, as seen by a sample.
        self.frozen: ComponentStats | None = None
        self.series: TimeSeries | None = None
        self.sampled = 0
        self.sampled_reserved = 0
        self.sampled_in_use = 0
        self.sampled_ns = 0
        self.retired = component == RETIRED
        # Where the ledger's sorted rows keep this account's row (see ``SortedRows``): the
        # chunk, and the position in it when last seen (rows may have come before it since).
        self.row_chunk: _Chunk | None = None
        self.row_index = 0

    def fold_into(self, retired: Account) -> None:
        """Add this account's counters into *retired*, the summary of retired accounts.

        Only for an account with no live blocks (so no reserved or in-use bytes). Peaks
        and the longest lifetime are maxima: the highest any one retired account reached.
        """
        assert not self.blocks, "an account with live blocks cannot retire"
        retired.peak_reserved = max(retired.peak_reserved, self.peak_reserved)
        retired.peak_in_use = max(retired.peak_in_use, self.peak_in_use)
        retired.allocations += self.allocations
        retired.frees += self.frees
        retired.acquires += self.acquires
        retired.releases += self.releases
        retired.resizes += self.resizes
        retired.transfers += self.transfers
        retired.bytes_allocated += self.bytes_allocated
        retired.bytes_transferred += self.bytes_transferred
        retired.histogram = [a + b for a, b in zip(retired.histogram, self.histogram, strict=True)]
        retired.lifetimes += self.lifetimes
        retired.lifetime_total_ns += self.lifetime_total_ns
        retired.lifetime_max_ns = max(retired.lifetime_max_ns, self.lifetime_max_ns)
        for kind, count in self.anomalies.items():
            retired.anomalies[kind] = retired.anomalies.get(kind, 0) + count
        retired.requested_peak_in_use = max(
            retired.requested_peak_in_use, self.requested_peak_in_use
        )
        retired.requested_lends += self.requested_lends
        retired.bytes_lent += self.bytes_lent
        retired.requested_lent += self.requested_lent

    def forget_old_frees(self) -> None:
        """Start a new generation of remembered frees, dropping the oldest one."""
        self.freed_before = self.freed
        self.freed = set()

    def limit_frees(self, limit: int) -> None:
        """Remember at most *limit* freed ids per generation from now on; a generation
        already larger than that is forgotten (its ids count as strangers if freed again)."""
        self.free_limit = limit
        if len(self.freed_before) > limit:
            self.freed_before = set()
        if len(self.freed) > limit:
            self.freed = set()

    def was_freed(self, block: int) -> bool:
        return block in self.freed or block in self.freed_before

    def note_requested(self, block: int, size: int, tags: Tags) -> None:
        """Count a lend of *block* (*size* bytes) whose event carried *tags*: where they
        name a requested size, keep it beside the lent bytes. A requested size that is
        not a number or exceeds the block is counted as ``bad_requested`` and left out
        (the lend itself stands)."""
        try:
            requested = requested_of(tags)
        except (TypeError, ValueError):  # not pairs of strings, or not a size
            requested = -1
        if requested is None:
            return
        if not 0 <= requested <= size:
            self.count_anomaly("bad_requested")
            return
        self.requests[block] = requested
        self.requested_lends += 1
        self.bytes_lent += size
        self.requested_lent += requested
        self.requested_in_use += requested
        if self.requested_in_use > self.requested_peak_in_use:
            self.requested_peak_in_use = self.requested_in_use

    def note_tags(self, block: int, size: int, tags: Tags) -> None:
        """Count what the *tags* of a lend of *block* (*size* bytes) say: its requested
        size (see :meth:`note_requested`) and its site (see :meth:`note_site`)."""
        key: object = None
        value: object = None
        # A try costs nothing when nothing is raised; contextlib.suppress costs a call.
        try:  # noqa: SIM105
            ((key, value),) = tags
        except (TypeError, ValueError):  # more tags than one, or not pairs
            pass
        if key != SITE_TAG or not isinstance(value, str) or not value.isdigit():
            self.note_requested(block, size, tags)
            self.note_site(block, size, tags)
            return
        # The one tag of a lend with sites on and no requested size, inline: this runs
        # for every such lend the metrics actor applies.
        if not value.isascii():
            self.count_anomaly("bad_site")
            return
        site = int(value)
        if site == NO_SITE:
            return
        sites = self.sites
        if block in sites:
            self.end_site(block, 0)
        sites[block] = site
        entry = self.site_books.get((site, self.device))
        if entry is None:
            entry = self.site_books[(site, self.device)] = [0, 0]
        entry[0] += size
        entry[1] += 1

    def note_site(self, block: int, size: int, tags: Tags) -> None:
        """Where *tags* name a site, put *block*'s *size* in-use bytes on it (moving
        them from the site that held the block, if any). A site id that is not a number
        is counted as ``bad_site`` and left out."""
        site = self._site_in(tags)
        if site != NO_SITE:
            self._hold(block, size, site)

    def resize_site(self, block: int, recorded: int, size: int, tags: Tags) -> None:
        """An in-use *block* went from *recorded* to *size* bytes: a resize with a site
        moves the whole block to it, one without changes its site's bytes."""
        site = self._site_in(tags) if tags else NO_SITE
        if site != NO_SITE:
            self._hold(block, size, site, recorded)
            return
        site = self.sites.get(block, NO_SITE)
        if site != NO_SITE:
            self.site_books[(site, self.device)][0] += size - recorded

    def _site_in(self, tags: Tags) -> int:
        try:
            return site_of(tags)
        except (TypeError, ValueError):  # not pairs of strings, or not an id
            self.count_anomaly("bad_site")
            return NO_SITE

    def _hold(self, block: int, size: int, site: int, old_size: int = 0) -> None:
        # A resize moves the whole block: its *old_size* bytes leave their old site.
        self.end_site(block, old_size)
        self.sites[block] = site
        entry = self.site_books.get((site, self.device))
        if entry is None:
            entry = self.site_books[(site, self.device)] = [0, 0]
        entry[0] += size
        entry[1] += 1

    def end_site(self, block: int, size: int) -> None:
        """*block* (*size* bytes) came back or was freed: its site no longer holds it."""
        site = self.sites.pop(block, None)
        if site is not None:
            key = (site, self.device)
            entry = self.site_books[key]
            entry[0] -= size
            entry[1] -= 1
            if not entry[1]:
                del self.site_books[key]

    def end_request(self, block: int) -> None:
        """*block* came back or was freed: its requested bytes are no longer in use."""
        requested = self.requests.pop(block, None)
        if requested is not None:
            self.requested_in_use -= requested

    def count_anomaly(self, kind: str) -> None:
        self.anomalies[kind] = self.anomalies.get(kind, 0) + 1

    def freeze(self) -> ComponentStats:
        return component_stats(
            self.component,
            self.device,
            self.reserved,
            self.in_use,
            self.peak_reserved,
            self.peak_in_use,
            len(self.blocks),
            self.allocations,
            self.frees,
            self.acquires,
            self.releases,
            self.resizes,
            self.transfers,
            self.bytes_allocated,
            self.bytes_transferred,
            tuple(self.histogram),
            self.lifetimes,
            self.lifetime_total_ns,
            self.lifetime_max_ns,
            tuple(sorted(self.anomalies.items())) if self.anomalies else (),
            self.requested_in_use,
            self.requested_peak_in_use,
            self.requested_lends,
            self.bytes_lent,
            self.requested_lent,
        )
