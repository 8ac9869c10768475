"""Frozen statistics values: what the ledger knows, as of the moment they were taken.

Each value is a fresh, immutable copy; holding one never keeps the ledger's own state
alive and never changes as more events arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HISTOGRAM_BUCKETS = 49
"""Size histogram buckets: bucket 0 holds zero-byte blocks, bucket ``i`` sizes in
``[2**(i-1), 2**i)``, up to the largest event size (``2**48 - 1``)."""


def histogram_bucket_bounds(bucket: int) -> tuple[int, int]:
    """Return the smallest and largest size that fall in *bucket* of a size histogram."""
    if bucket == 0:
        return (0, 0)
    return (1 << (bucket - 1), (1 << bucket) - 1)


@dataclass(frozen=True, slots=True)
class ComponentStats:
    """Everything the ledger counts for one component on one device."""

    component: str
    device: str
    bytes_reserved: int = 0
    """Bytes the component holds from the system, cached or lent."""
    bytes_in_use: int = 0
    """Bytes lent out to an owner: reserved minus the component's cache."""
    peak_bytes_reserved: int = 0
    peak_bytes_in_use: int = 0
    live_blocks: int = 0
    allocations: int = 0
    """ALLOC events: new memory taken from the system (pool misses)."""
    frees: int = 0
    acquires: int = 0
    """ACQUIRE events: cached blocks lent out again (pool hits)."""
    releases: int = 0
    resizes: int = 0
    transfers: int = 0
    bytes_allocated: int = 0
    """Total bytes ever allocated: ALLOC sizes plus the growth of RESIZEs."""
    bytes_transferred: int = 0
    size_histogram: tuple[int, ...] = field(default=(0,) * HISTOGRAM_BUCKETS)
    """Counts of ALLOC sizes by power of two; see :data:`HISTOGRAM_BUCKETS`."""
    lifetimes: int = 0
    """How many blocks were freed, and so have a known lifetime."""
    lifetime_total_ns: int = 0
    lifetime_max_ns: int = 0
    anomalies: tuple[tuple[str, int], ...] = ()
    """Anomalies by kind, sorted by name: ``(("double_free", 2), ...)``."""
    requested_bytes_in_use: int = 0
    """Bytes asked for by the lends now out that carried a requested size (the
    ``"requested"`` tag of their ALLOC or ACQUIRE): what their owners use of the blocks
    they hold. 0 for a component that never reports requested sizes."""
    peak_requested_bytes_in_use: int = 0
    requested_lends: int = 0
    """ALLOC and ACQUIRE events that carried a requested size."""
    bytes_lent: int = 0
    """Block bytes lent over the run by those :attr:`requested_lends`."""
    requested_bytes_lent: int = 0
    """Bytes asked for over the run by those :attr:`requested_lends`."""

    def to_dict(self) -> dict[str, object]:
        """Every field under its name, histogram as a list and anomalies as a map (JSON-ready)."""
        return {
            **{name: getattr(self, name) for name in self.__dataclass_fields__},
            "size_histogram": list(self.size_histogram),
            "anomalies": dict(self.anomalies),
        }

    @property
    def bytes_cached(self) -> int:
        """Bytes reserved but not lent: a pool's cache."""
        return self.bytes_reserved - self.bytes_in_use

    @property
    def anomaly_count(self) -> int:
        return sum(count for _, count in self.anomalies)

    @property
    def lifetime_mean_ns(self) -> float:
        return self.lifetime_total_ns / self.lifetimes if self.lifetimes else 0.0

    @property
    def slack_ratio(self) -> float:
        """Share of lent bytes that nobody asked for: ``1 - requested_bytes_lent /
        bytes_lent`` over the lends that carried a requested size; 0.0 without any."""
        if not self.bytes_lent:
            return 0.0
        return (self.bytes_lent - self.requested_bytes_lent) / self.bytes_lent

    @property
    def reuse_ratio(self) -> float:
        """How many times over the peak working set was lent: ``requested_bytes_lent /
        peak_requested_bytes_in_use``; 0.0 without requested sizes. A pool that lends
        its peak once and never again has 1.0; the higher, the more its memory served."""
        peak = self.peak_requested_bytes_in_use
        return self.requested_bytes_lent / peak if peak else 0.0

    @property
    def hit_ratio(self) -> float:
        """Share of lendings served from cache: acquires / (acquires + allocations)."""
        lendings = self.acquires + self.allocations
        return self.acquires / lendings if lendings else 0.0


class _Unfrozen:
    """:class:`ComponentStats`'s slots, in its order, but writable with a plain store.

    A frozen dataclass's ``__init__`` sets each of its 25 fields through
    ``object.__setattr__``; the ledger freezes an account at every change, so it writes
    the fields of one of these instead and then makes it a ``ComponentStats`` by class
    assignment, which CPython allows only between classes of the same slots (it raises
    ``TypeError`` otherwise, so a field added to one and not the other cannot go unseen).
    """

    __slots__ = ComponentStats.__slots__


def component_stats(
    component: str,
    device: str,
    bytes_reserved: int,
    bytes_in_use: int,
    peak_bytes_reserved: int,
    peak_bytes_in_use: int,
    live_blocks: int,
    allocations: int,
    frees: int,
    acquires: int,
    releases: int,
    resizes: int,
    transfers: int,
    bytes_allocated: int,
    bytes_transferred: int,
    size_histogram: tuple[int, ...],
    lifetimes: int,
    lifetime_total_ns: int,
    lifetime_max_ns: int,
    anomalies: tuple[tuple[str, int], ...],
    requested_bytes_in_use: int,
    peak_requested_bytes_in_use: int,
    requested_lends: int,
    bytes_lent: int,
    requested_bytes_lent: int,
) -> ComponentStats:
    """Return ``ComponentStats(...)`` of these fields (all of them, in order), at about a
    fifth of the constructor's cost. For the ledger, which freezes at every tick."""
    stats: Any = _Unfrozen()
    stats.component = component
    stats.device = device
    stats.bytes_reserved = bytes_reserved
    stats.bytes_in_use = bytes_in_use
    stats.peak_bytes_reserved = peak_bytes_reserved
    stats.peak_bytes_in_use = peak_bytes_in_use
    stats.live_blocks = live_blocks
    stats.allocations = allocations
    stats.frees = frees
    stats.acquires = acquires
    stats.releases = releases
    stats.resizes = resizes
    stats.transfers = transfers
    stats.bytes_allocated = bytes_allocated
    stats.bytes_transferred = bytes_transferred
    stats.size_histogram = size_histogram
    stats.lifetimes = lifetimes
    stats.lifetime_total_ns = lifetime_total_ns
    stats.lifetime_max_ns = lifetime_max_ns
    stats.anomalies = anomalies
    stats.requested_bytes_in_use = requested_bytes_in_use
    stats.peak_requested_bytes_in_use = peak_requested_bytes_in_use
    stats.requested_lends = requested_lends
    stats.bytes_lent = bytes_lent
    stats.requested_bytes_lent = requested_bytes_lent
    stats.__class__ = ComponentStats
    frozen: ComponentStats = stats
    return frozen


@dataclass(frozen=True, slots=True)
class OwnerStats:
    """Bytes lent to one owner (an actor or task), over all components and devices."""

    owner: str
    bytes_in_use: int
    peak_bytes_in_use: int


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """Totals over every component on one device, with the device's true peaks."""

    device: str
    bytes_reserved: int
    bytes_in_use: int
    peak_bytes_reserved: int
    peak_bytes_in_use: int


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """Totals over everything, with the true global peaks (the peak of the sum)."""

    bytes_reserved: int
    bytes_in_use: int
    peak_bytes_reserved: int
    peak_bytes_in_use: int
    live_blocks: int
    events_applied: int
    """Events the ledger took in, anomalies included."""
    events_dropped: int
    """Events lost upstream (a lossy reporter, a full queue), as told to the ledger."""
    anomalies: int
    """Events counted as anomalies, over every component. All but ``size_mismatch`` and
    ``bad_requested`` are not applied; a size mismatch is applied with the size the
    ledger recorded, and a lend with a bad requested size without it."""
    malformed: int
    """Events too broken to attribute to a component (not an 11-field event, bad types)."""
    loop_stalls: int = 0
    """Times one task kept the process's event loop from running for longer than the
    stall threshold (see ``memactor.runtime.StallWatch``); 0 where nobody watches."""
    longest_stall_ns: int = 0
    """The longest such stall."""
    longest_stall_task: str = ""
    """The task that ran during the longest stall (``"actor NAME"`` for an actor)."""
    callsites: int = 0
    """Whether allocation sites were recorded: ``0`` no, ``1`` for every allocation,
    ``N`` for one allocation in ``N`` (sampled; site figures are not scaled)."""


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """What the process itself held on one device when it was last sampled, beside what
    its components reported: the bytes nobody reported are the unattributed remainder.

    On ``"cpu"`` the process's bytes are its USS (unique set size: the pages only this
    process holds, what it would give back on exit) where the system tells it, else its
    RSS; USS leaves out the pages of shared libraries that every Python process maps and
    no component could report. On a GPU they are the device memory NVML reports for this
    process (else CuPy's pool total). ``unattributed_bytes`` is ``process_bytes -
    bytes_reserved``; it is negative when components reserve memory the system has not
    handed over yet (untouched pages).
    """

    device: str
    process_bytes: int
    """The process's bytes on the device (see the class docstring for which figure)."""
    bytes_reserved: int
    """What the ledger's components reserved on the device at the same moment."""
    unattributed_bytes: int
    """``process_bytes - bytes_reserved``: memory outside memactor's books."""
    sampled_ns: int
    """The ledger's clock when the process was sampled."""
    rss_bytes: int = 0
    """Resident set size (``"cpu"`` only; 0 where unknown)."""
    uss_bytes: int = 0
    """Unique set size (``"cpu"`` only; 0 where unknown)."""
    pss_bytes: int = 0
    """Proportional set size (``"cpu"`` only; 0 where unknown)."""
    pool_bytes: int = 0
    """A GPU's CuPy memory pool total (0 on ``"cpu"`` or without CuPy)."""


@dataclass(frozen=True, slots=True)
class TransferTiming:
    """How long the timed copies on one route took: the copies whose TRANSFER event
    carried a :data:`~memactor.events.DURATION_TAG` (a :class:`GpuBufferManager`'s do),
    and their bytes. Copies reported without a duration count in the route's transfers
    but not here, so :attr:`bytes_per_s` is the bandwidth of the timed copies alone."""

    src: str
    dst: str
    transfers: int
    """Timed copies on the route."""
    bytes: int
    """The bytes of the timed copies."""
    duration_ns: int
    """The time the timed copies took, added up."""

    @property
    def bytes_per_s(self) -> float | None:
        """The timed copies' bytes over their time; ``None`` when they took no time."""
        if self.duration_ns <= 0:
            return None
        return self.bytes * 1e9 / self.duration_ns
