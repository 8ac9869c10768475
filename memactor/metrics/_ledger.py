"""The ledger: memory events in, exact statistics out. Pure and synchronous.

The ledger is the single source of truth for what memactor shows. Every number it keeps
is exact for the events it was given: reserved and in-use bytes per component and
device, per owner, per device and overall, with true peaks (the peak of each sum, not a
sum of peaks). Events that make no sense (a free of an unknown block, a double free, a
negative size) are counted as anomalies of their component and otherwise ignored, so a
bad producer can never crash the ledger or corrupt another component's books.

A tick (:meth:`Ledger.sample` and a live view) costs what changed since the last one:
``apply`` marks the accounts it touches, and only those are frozen again, sampled, and
put back into the cached, sorted views. Components that stay idle and empty retire into
one ``"(retired)"`` row per device, and the owner table stays bounded (see
:mod:`._owners`), so a program that names a component or owner per request keeps a
bounded ledger.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from operator import index as as_int
from operator import length_hint
from typing import Any, ClassVar, SupportsIndex

from .._native import load
from ..events import (
    MAX_BLOCK,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    EventKind,
    Site,
    SiteTable,
    Tags,
    check_device,
    duration_of,
    is_device,
)
from ._accounts import (
    NO_OWNER,
    NO_SIZE,
    OWNER_BITS,
    OWNER_FIELD,
    OWNER_MASK,
    OWNER_SHIFT,
    RETIRED,
    SIZE_BITS,
    SIZE_MASK,
    TIME_SHIFT,
    Account,
    DeviceAccount,
    OwnerAccount,
    SiteBooks,
    recent_frees_limit,
)
from ._actors import ActorSample
from ._blocks import LiveBlocks
from ._owners import DEFAULT_OWNER_LIMIT, OwnerTable
from ._rows import ComponentRows, SortedRows
from ._series import DEFAULT_CAPACITY, SampleTimes, SeriesView, TimeSeries
from ._sites import top_sites
from ._snapshot import PROCESS, TOTAL, ComponentSeries, Snapshot
from ._stats import (
    HISTOGRAM_BUCKETS,
    ComponentStats,
    DeviceStats,
    LedgerStats,
    OwnerStats,
    ProcessStats,
    TransferTiming,
)

_ALLOC = int(EventKind.ALLOC)
_FREE = int(EventKind.FREE)
_RESIZE = int(EventKind.RESIZE)
_ACQUIRE = int(EventKind.ACQUIRE)
_RELEASE = int(EventKind.RELEASE)
_TRANSFER = int(EventKind.TRANSFER)


_compiled = load("_ledger")
"""The compiled apply loop (``memactor/_native/_ledger.c``), or ``None``: pure Python."""
if _compiled is not None:
    _compiled.bind(
        Account,
        DeviceAccount,
        OwnerAccount,
        tuple(int(kind) for kind in sorted(EventKind)),
        (SIZE_BITS, OWNER_BITS, HISTOGRAM_BUCKETS, 11),
    )

_records = load("_emit") if _compiled is not None else None
"""The compiled emits, whose batches of records the compiled apply reads in place."""
_Batch: type | None = getattr(_records, "Batch", None)
if _compiled is not None and _Batch is not None:
    _compiled.bind_records(_Batch, _records.RECORDS_VERSION)  # type: ignore[union-attr]  # loaded

_UNSET = object()
_NO_BLOCKS = LiveBlocks.empty()
"""The live blocks of a view without them: read-only, so every such view shares one."""
_NO_ACCOUNT = Account("(none)", "cpu", DeviceAccount("cpu"))

DEFAULT_RETIRE_AFTER_NS = 60 * 10**9
"""How long a component with no live blocks stays idle before it retires (60 s)."""
SAMPLE_WINDOW = 16_384
"""How many sample times the ledger remembers to catch idle series up with."""


class Ledger:
    """Applies memory events and answers what is held, where, by whom, and since when.

    ``clock`` gives the ledger's notion of now in nanoseconds (ages, samples, snapshot
    time); it defaults to :func:`time.monotonic_ns`, which is also what events are stamped
    with. ``series_capacity`` bounds each component's time series.

    ``retire_after_ns`` (default 60 s on the ledger's clock; ``None``: never) is how long
    a component on a device may go without events while it holds no live block before
    :meth:`sample` retires it: its counters are added into the ``"(retired)"`` row of its
    device and its books, series and remembered frees are dropped. If it comes back it
    starts a fresh account (new peaks; a free of a block from before it retired counts
    as an unknown block, not a double free). ``owner_limit`` (default 1000) is how many
    owners the views show by name; the rest make one exact ``"(other owners)"`` row, and
    owners beyond it that hold no bytes are forgotten. ``sample_window`` is how many
    sample times are remembered to catch idle series up with (a tuning knob; the default
    suits every rate).

    ``sites`` is the table that the events' site tags point into (a system with sites
    on passes its hub's, see :class:`~memactor.events.SiteTable`): the ledger keeps
    each lent block's site, the in-use bytes per site, and puts both in snapshots.
    Without it, site tags are still kept but snapshots name no site.

    To tell a double free from a free of an unknown block, each account remembers the
    ids it freed last, in two generations of up to ``RECENT_FREES`` (4,096) ids; with
    more than 64 accounts they share one budget of ``RECENT_FREES_BUDGET`` ids per
    generation, down to 64 each (see ``_share_recent_frees``).

    The ledger is not thread-safe; it belongs to one task (the metrics actor).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        series_capacity: int = DEFAULT_CAPACITY,
        retire_after_ns: int | None = DEFAULT_RETIRE_AFTER_NS,
        owner_limit: int = DEFAULT_OWNER_LIMIT,
        sample_window: int = SAMPLE_WINDOW,
        sites: SiteTable | None = None,
    ) -> None:
        if retire_after_ns is not None and retire_after_ns < 0:
            raise ValueError(f"retire_after_ns must not be negative, got {retire_after_ns}")
        if sample_window < 2:
            raise ValueError(f"sample_window must be at least 2, got {sample_window}")
        self._clock = clock
        self._site_table = sites
        self._site_books: SiteBooks = {}
        self._series_capacity = series_capacity
        TimeSeries(series_capacity)  # checks the capacity now rather than at a sample
        self._retire_after_ns = retire_after_ns
        self._accounts: dict[tuple[str, str], Account] = {}
        self._owner_table = OwnerTable(owner_limit)
        self._owners = self._owner_table.by_name
        self._holders = self._owner_table.by_index
        self._devices: dict[str, DeviceAccount] = {}
        self._retired: dict[str, Account] = {}
        self._total_series = TimeSeries(series_capacity)
        self._sample_times = SampleTimes(sample_window)
        # What changed since the last tick: accounts that ``apply`` switched to (marked
        # once per run of events of one account) wait in ``_dirty`` to be frozen again,
        # then in ``_unsampled`` for the next sample.
        self._dirty: set[Account] = set()
        self._unsampled: set[Account] = set()
        # The frozen rows of every account and retired row, sorted by (component,
        # device), and the sums over them.
        self._rows = SortedRows()
        self._live_blocks = 0
        self._anomalies = 0
        # Accounts in the order they last changed (oldest first), for retirement; and in
        # the order their series were last caught up, so none lags past the window.
        self._idle: OrderedDict[Account, None] = OrderedDict()
        self._behind: OrderedDict[Account, None] = OrderedDict()
        # How many freed ids each account remembers per generation: shared out of one
        # budget, so they stop growing with the number of accounts.
        self._free_limit = recent_frees_limit(0)
        # Accounts that might hold a zero-byte block: it pins its owner's index.
        self._zero_suspects: set[Account] = set()
        # Per (src, dst): copies, bytes, then the timed copies, their bytes and time.
        self._transfers: dict[tuple[str, str], list[int]] = {}
        self._reserved = 0
        self._in_use = 0
        self._peak_reserved = 0
        self._peak_in_use = 0
        self._events_applied = 0
        self._events_dropped = 0
        self._stalls = 0
        self._longest_stall_ns = 0
        self._longest_stall_task = ""
        self._malformed = 0
        # What the process itself held per device at its last sample, and its series.
        self._process: dict[str, ProcessStats] = {}
        self._process_series: dict[str, TimeSeries] = {}
        self._actors: Callable[[], tuple[ActorSample, ...]] = tuple

    # -- applying events -------------------------------------------------------------

    implementation: ClassVar[str] = "python" if _compiled is None else "compiled"
    """Which ``apply`` ledgers use in this process: ``"compiled"`` (the C extension
    ``memactor._native._ledger``) or ``"python"`` (the reference, when
    ``MEMACTOR_PURE_PYTHON=1`` is set or the extension is missing). Both give the same
    books; ``tests/native`` holds them to it."""

    def apply(self, events: Iterable[Sequence[Any]]) -> int:
        """Apply *events* in order and return how many were taken in.

        Each event is a :class:`~memactor.events.MemoryEvent` or a tuple with its eleven
        fields (``seq`` last; the ledger does not read it: the order is the one given).
        Nothing is raised for a bad event: it is counted (see :meth:`statistics` and each
        component's ``anomalies``) and the rest apply.

        If an error that is not an event's fault escapes (a bug, ``MemoryError``, an
        interrupt), the events before the one it failed on are applied and counted in
        :attr:`events_applied`, the books are consistent, and the error is raised; the
        failed event and those after it are not counted (see ``EventOrder``).

        The work is done by the compiled loop or by :meth:`_apply_python`, as
        :attr:`implementation` says; their results are the same.
        """
        if not isinstance(events, list | tuple) and events.__class__ is not _Batch:
            events = list(events)
        if _compiled is None:
            return self._apply_python(events)
        return _compiled.apply(self, events)  # type: ignore[no-any-return]  # a C function

    def _apply_python(self, events: Iterable[Sequence[Any]]) -> int:
        """:meth:`apply` in pure Python: the reference the compiled loop is held to."""
        if not isinstance(events, list | tuple):
            events = list(events)
        owners = self._owners
        holders = self._holders
        mark = self._dirty.add
        reserved = self._reserved
        in_use = self._in_use
        peak_reserved = self._peak_reserved
        peak_in_use = self._peak_in_use
        # The books of the current (component, device) and its device live in locals
        # while consecutive events share them (a reporter's batch comes from one
        # component), and go back to their accounts when the pair changes.
        last_component: object = _UNSET
        last_device: object = _UNSET
        account = _NO_ACCOUNT
        dev = account.device_account
        blocks = account.blocks
        histogram = account.histogram
        requests = account.requests
        sites = account.sites
        a_reserved = a_in_use = a_peak_reserved = a_peak_in_use = 0
        a_allocations = a_frees = a_acquires = a_releases = a_bytes_allocated = 0
        d_reserved = d_in_use = d_peak_reserved = d_peak_in_use = 0
        remaining = iter(events)
        failure: BaseException | None = None
        for event in remaining:
            try:
                kind, component, block, size, device, owner, ts, old_size, dst, tags, _seq = event
                if component is not last_component or device is not last_device:
                    # Store the current books, then load the next pair's.
                    account.reserved = a_reserved
                    account.in_use = a_in_use
                    account.peak_reserved = a_peak_reserved
                    account.peak_in_use = a_peak_in_use
                    account.allocations = a_allocations
                    account.frees = a_frees
                    account.acquires = a_acquires
                    account.releases = a_releases
                    account.bytes_allocated = a_bytes_allocated
                    dev.reserved = d_reserved
                    dev.in_use = d_in_use
                    dev.peak_reserved = d_peak_reserved
                    dev.peak_in_use = d_peak_in_use
                    account = self._accounts.get((component, device)) or self._open_account(
                        component, device
                    )
                    mark(account)
                    last_component = component
                    last_device = device
                    blocks = account.blocks
                    histogram = account.histogram
                    requests = account.requests
                    sites = account.sites
                    a_reserved = account.reserved
                    a_in_use = account.in_use
                    a_peak_reserved = account.peak_reserved
                    a_peak_in_use = account.peak_in_use
                    a_allocations = account.allocations
                    a_frees = account.frees
                    a_acquires = account.acquires
                    a_releases = account.releases
                    a_bytes_allocated = account.bytes_allocated
                    dev = account.device_account
                    d_reserved = dev.reserved
                    d_in_use = dev.in_use
                    d_peak_reserved = dev.peak_reserved
                    d_peak_in_use = dev.peak_in_use

                if kind == _RELEASE:
                    record = blocks.get(block)
                    if record is None or not record & OWNER_FIELD:
                        account.count_anomaly(self._stray_kind(account, block, record, "release"))
                        continue
                    recorded = record & SIZE_MASK
                    if size != recorded:
                        account.count_anomaly("size_mismatch")
                    blocks[block] = record & NO_OWNER
                    holders[(record >> OWNER_SHIFT) & OWNER_MASK].in_use -= recorded
                    if requests:
                        account.end_request(block)
                    if sites:
                        account.end_site(block, recorded)
                    a_releases += 1
                    a_in_use -= recorded
                    d_in_use -= recorded
                    in_use -= recorded

                elif kind == _ACQUIRE:
                    record = blocks.get(block)
                    if record is None or record & OWNER_FIELD:
                        account.count_anomaly(self._stray_kind(account, block, record, "acquire"))
                        continue
                    recorded = record & SIZE_MASK
                    holder = owners.get(owner) or self._open_owner(owner)
                    if size != recorded:
                        account.count_anomaly("size_mismatch")
                    blocks[block] = record | holder.tag
                    value = holder.in_use + recorded
                    holder.in_use = value
                    if value > holder.peak_in_use:
                        holder.peak_in_use = value
                    a_acquires += 1
                    a_in_use += recorded
                    if a_in_use > a_peak_in_use:
                        a_peak_in_use = a_in_use
                    d_in_use += recorded
                    if d_in_use > d_peak_in_use:
                        d_peak_in_use = d_in_use
                    in_use += recorded
                    if in_use > peak_in_use:
                        peak_in_use = in_use
                    if tags:
                        account.note_tags(block, recorded, tags)

                elif kind == _ALLOC:
                    # numpy integers are welcome; floats and strings fail here, before
                    # anything has changed (and count as malformed).
                    if size.__class__ is not int:
                        size = as_int(size)
                    if not 0 <= size <= SIZE_MASK:
                        account.count_anomaly("bad_size")
                        continue
                    # The block id and time go to a snapshot's int64 columns.
                    if block.__class__ is not int or not 0 <= block <= MAX_BLOCK:
                        account.count_anomaly("bad_block")
                        continue
                    if block in blocks:
                        account.count_anomaly("duplicate_alloc")
                        continue
                    if ts.__class__ is not int:
                        ts = as_int(ts)
                    if not MIN_TIMESTAMP <= ts <= MAX_TIMESTAMP:
                        account.count_anomaly("bad_timestamp")
                        continue
                    packed = (ts << TIME_SHIFT) | size
                    holder = owners.get(owner) or self._open_owner(owner)
                    blocks[block] = packed | holder.tag
                    histogram[size.bit_length()] += 1
                    value = holder.in_use + size
                    holder.in_use = value
                    if value > holder.peak_in_use:
                        holder.peak_in_use = value
                    a_allocations += 1
                    a_bytes_allocated += size
                    a_reserved += size
                    if a_reserved > a_peak_reserved:
                        a_peak_reserved = a_reserved
                    a_in_use += size
                    if a_in_use > a_peak_in_use:
                        a_peak_in_use = a_in_use
                    d_reserved += size
                    if d_reserved > d_peak_reserved:
                        d_peak_reserved = d_reserved
                    d_in_use += size
                    if d_in_use > d_peak_in_use:
                        d_peak_in_use = d_in_use
                    reserved += size
                    if reserved > peak_reserved:
                        peak_reserved = reserved
                    in_use += size
                    if in_use > peak_in_use:
                        peak_in_use = in_use
                    if tags:
                        account.note_tags(block, size, tags)

                elif kind == _FREE:
                    record = blocks.get(block)
                    if record is None:
                        account.count_anomaly(
                            "double_free" if account.was_freed(block) else "unknown_block"
                        )
                        continue
                    if ts.__class__ is not int:
                        ts = as_int(ts)
                    lifetime = ts - (record >> TIME_SHIFT)
                    del blocks[block]
                    recorded = record & SIZE_MASK
                    if size != recorded:
                        account.count_anomaly("size_mismatch")
                    a_frees += 1
                    a_reserved -= recorded
                    d_reserved -= recorded
                    reserved -= recorded
                    if record & OWNER_FIELD:
                        holders[(record >> OWNER_SHIFT) & OWNER_MASK].in_use -= recorded
                        a_in_use -= recorded
                        d_in_use -= recorded
                        in_use -= recorded
                        if requests:
                            account.end_request(block)
                        if sites:
                            account.end_site(block, recorded)
                    if lifetime > 0:
                        account.lifetime_total_ns += lifetime
                        if lifetime > account.lifetime_max_ns:
                            account.lifetime_max_ns = lifetime
                    account.lifetimes += 1
                    freed = account.freed
                    freed.add(block)
                    if len(freed) >= account.free_limit:
                        account.forget_old_frees()

                elif kind == _RESIZE:
                    record = blocks.get(block)
                    if record is None:
                        account.count_anomaly(self._stray_kind(account, block, record, "resize"))
                        continue
                    if size.__class__ is not int:
                        size = as_int(size)
                    if not 0 <= size <= SIZE_MASK:
                        account.count_anomaly("bad_size")
                        continue
                    recorded = record & SIZE_MASK
                    resized = (record & NO_SIZE) | size
                    if old_size != recorded:
                        account.count_anomaly("size_mismatch")
                    delta = size - recorded
                    blocks[block] = resized
                    account.resizes += 1
                    if delta > 0:
                        a_bytes_allocated += delta
                    a_reserved += delta
                    d_reserved += delta
                    reserved += delta
                    a_peak_reserved = max(a_peak_reserved, a_reserved)
                    d_peak_reserved = max(d_peak_reserved, d_reserved)
                    peak_reserved = max(peak_reserved, reserved)
                    if record & OWNER_FIELD:
                        holder = holders[(record >> OWNER_SHIFT) & OWNER_MASK]
                        holder.in_use += delta
                        holder.peak_in_use = max(holder.peak_in_use, holder.in_use)
                        a_in_use += delta
                        d_in_use += delta
                        in_use += delta
                        a_peak_in_use = max(a_peak_in_use, a_in_use)
                        d_peak_in_use = max(d_peak_in_use, d_in_use)
                        peak_in_use = max(peak_in_use, in_use)
                        if tags or sites:
                            account.resize_site(block, recorded, size, tags)

                elif kind == _TRANSFER:
                    self._transfer(account, size, device, dst, tags)

                else:
                    account.count_anomaly("unknown_kind")
            except (TypeError, ValueError, AttributeError, KeyError, OverflowError):
                # Wrong arity, a non-string component, a non-integer size: every branch
                # fails before it changes anything, so the books stay consistent.
                self._malformed += 1
                last_component = last_device = _UNSET
            except BaseException as error:
                # Not the event's fault (a bug, memory, an interrupt): keep the books of
                # the events before it, say how many those were, and let it go on.
                failure = error
                break
        account.reserved = a_reserved
        account.in_use = a_in_use
        account.peak_reserved = a_peak_reserved
        account.peak_in_use = a_peak_in_use
        account.allocations = a_allocations
        account.frees = a_frees
        account.acquires = a_acquires
        account.releases = a_releases
        account.bytes_allocated = a_bytes_allocated
        dev.reserved = d_reserved
        dev.in_use = d_in_use
        dev.peak_reserved = d_peak_reserved
        dev.peak_in_use = d_peak_in_use
        self._reserved = reserved
        self._in_use = in_use
        self._peak_reserved = peak_reserved
        self._peak_in_use = peak_in_use
        if failure is not None:
            self._events_applied += len(events) - length_hint(remaining) - 1
            raise failure
        self._events_applied += len(events)
        return len(events)

    def _open_account(self, component: object, device: object) -> Account:
        """Open the books of a new (component, device); ValueError if either is bad."""
        if not isinstance(component, str) or not component or component == RETIRED:
            raise ValueError(f"component must be a non-empty string, got {component!r}")
        check_device(device)  # type: ignore[arg-type]  # checked here, at run time
        assert isinstance(device, str)
        device_account = self._devices.get(device)
        if device_account is None:
            device_account = self._devices[device] = DeviceAccount(device)
        account = self._accounts[(component, device)] = Account(component, device, device_account)
        account.free_limit = self._free_limit
        account.site_books = self._site_books
        return account

    def _transfer(
        self, account: Account, size: SupportsIndex, device: str, dst: object, tags: Tags
    ) -> None:
        """Count a TRANSFER of *size* bytes from *device* to *dst* on *account* (both
        implementations of ``apply`` call this). A bad size or device is counted as an
        anomaly; a size that is not an integer raises ``TypeError`` (a malformed event)
        before anything has changed. A :data:`~memactor.events.DURATION_TAG` in *tags*
        adds the copy to the route's timed copies (see :meth:`transfer_timings`); a bad
        one is counted as ``bad_duration`` and the copy counts untimed."""
        count = as_int(size)  # a float would turn the byte counts into floats
        if not 0 <= count <= SIZE_MASK:
            account.count_anomaly("bad_size")
            return
        if dst.__class__ is not str or not is_device(dst):
            account.count_anomaly("bad_device")
            return
        assert isinstance(dst, str)
        duration: int | None = None
        if tags:
            try:
                duration = duration_of(tags)
            except (ValueError, TypeError):  # counted, and the copy counts untimed
                account.count_anomaly("bad_duration")
        account.transfers += 1
        account.bytes_transferred += count
        route = self._transfers.get((device, dst))
        if route is None:
            route = self._transfers[(device, dst)] = [0, 0, 0, 0, 0]
        route[0] += 1
        route[1] += count
        if duration is not None:
            route[2] += 1
            route[3] += count
            route[4] += duration

    def _open_owner(self, owner: object) -> OwnerAccount:
        return self._owner_table.open(owner)

    @staticmethod
    def _stray_kind(account: Account, block: int, record: int | None, action: str) -> str:
        if record is None:
            return "use_after_free" if account.was_freed(block) else "unknown_block"
        return f"double_{action}"

    def note_dropped(self, count: int) -> None:
        """Record *count* events that were lost before they reached the ledger."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        self._events_dropped += count

    def note_stall(self, task: str, duration_ns: int) -> None:
        """Record that *task* kept its process's event loop from running for
        *duration_ns* (see ``memactor.runtime.StallWatch``); shown with the totals."""
        self._stalls += 1
        if duration_ns > self._longest_stall_ns:
            self._longest_stall_ns = duration_ns
            self._longest_stall_task = task

    def note_process(
        self,
        device: str,
        process_bytes: int,
        *,
        rss_bytes: int = 0,
        uss_bytes: int = 0,
        pss_bytes: int = 0,
        pool_bytes: int = 0,
        now_ns: int | None = None,
    ) -> ProcessStats:
        """Record what the process holds on *device* now (the metrics actor samples it
        each tick, see ``memactor.actors.read_process_memory``) and return it beside what
        the components reserve there: the difference is the unattributed remainder.

        Each call adds a point to the device's :data:`PROCESS` series (a snapshot's
        ``process_series``). Raises
        :class:`ValueError` for an invalid device or a negative size.
        """
        check_device(device)
        if min(process_bytes, rss_bytes, uss_bytes, pss_bytes, pool_bytes) < 0:
            raise ValueError("process memory figures must not be negative")
        now = self._clock() if now_ns is None else now_ns
        self._refresh()
        account = self._devices.get(device)
        reserved = 0 if account is None else account.reserved
        stats = ProcessStats(
            device,
            process_bytes,
            reserved,
            process_bytes - reserved,
            now,
            rss_bytes=rss_bytes,
            uss_bytes=uss_bytes,
            pss_bytes=pss_bytes,
            pool_bytes=pool_bytes,
        )
        self._process[device] = stats
        series = self._process_series.get(device)
        if series is None:
            series = self._process_series[device] = TimeSeries(self._series_capacity)
        series.append(now, process_bytes, stats.unattributed_bytes)
        return stats

    def note_actors(
        self, samples: Iterable[ActorSample] | Callable[[], tuple[ActorSample, ...]]
    ) -> None:
        """Record what the metrics actor's ticks saw of each actor (its mailbox, a chunk
        processor's lookahead): every later snapshot carries them, sorted by name. Given
        a callable (the metrics actor's book), each snapshot asks it for the samples of
        the moment, sorted by name. Each call replaces the last."""
        if callable(samples):
            self._actors = samples
        else:
            fixed = tuple(sorted(samples, key=lambda s: s.actor))
            self._actors = lambda: fixed

    def process(self) -> tuple[ProcessStats, ...]:
        """What the process held per device at its last sample, sorted by device; empty
        when it was never sampled."""
        return tuple(self._process[device] for device in sorted(self._process))

    # -- sampling ----------------------------------------------------------------------

    def sample(self, now_ns: int | None = None) -> None:
        """Take one sample: a point for the total's series and every component's.

        Call it at a fixed rate (the metrics actor does); each series stays bounded. The
        cost is that of the components that changed since the last sample: an unchanged
        component's points are filled in later (when its series is viewed, when it
        changes, or before the sample times it needs are forgotten), and are the same
        points one sample at a time would give. Components idle for ``retire_after_ns``
        with no live blocks retire here, and the owner table is trimmed when due.
        """
        now = self._clock() if now_ns is None else now_ns
        self._refresh()
        times = self._sample_times
        number = times.count
        times.append(now)
        idle, behind = self._idle, self._behind
        between = times.between
        for account in self._unsampled:
            series = account.series
            if series is None:
                series = account.series = TimeSeries(self._series_capacity)
                series.append(now, account.reserved, account.in_use)
            else:
                series.extend_then_append(
                    between(account.sampled, number),
                    account.sampled_reserved,
                    account.sampled_in_use,
                    now,
                    account.reserved,
                    account.in_use,
                )
            account.sampled = number + 1
            account.sampled_reserved = account.reserved
            account.sampled_in_use = account.in_use
            account.sampled_ns = now
            idle[account] = None
            idle.move_to_end(account)
            behind[account] = None
            behind.move_to_end(account)
        self._unsampled.clear()
        self._total_series.append(now, self._reserved, self._in_use)
        # Catch up the series that would otherwise need times about to be forgotten.
        oldest_kept = times.count - times.window // 2
        while behind:
            account = next(iter(behind))
            if account.sampled > oldest_kept:
                break
            self._catch_up(account, times.count)
            behind.move_to_end(account)
        if self._retire_after_ns is not None:
            self._retire_idle(now - self._retire_after_ns)
        self._share_recent_frees()
        if self._owner_table.due():
            self._owner_table.fold(self._pinned_owners())

    def _share_recent_frees(self) -> None:
        """Share the remembered frees out again when the accounts outgrew their share
        (or shrank to a quarter of the number it was set for).

        The ids remembered then stay within ``2 * RECENT_FREES_BUDGET`` over the ledger
        (two generations), or ``2 * MIN_RECENT_FREES`` per account beyond
        ``RECENT_FREES_BUDGET // MIN_RECENT_FREES`` accounts. The trade-off: with many
        accounts, a double free is told from a stranger only within fewer frees of the
        first, and a pass that lowers the share forgets the generations above it. The
        pass over every account comes once per doubling of their number (or fall to a
        quarter), and costs apply nothing: a FREE compares with the account's own limit.
        """
        limit = recent_frees_limit(len(self._accounts))
        if limit < self._free_limit or limit >= 4 * self._free_limit:
            self._free_limit = limit
            for account in self._accounts.values():
                account.limit_frees(limit)

    def _catch_up(self, account: Account, upto: int) -> None:
        """Fill *account*'s series in with its unchanged bytes up to sample *upto*."""
        if account.series is not None and account.sampled < upto:
            account.series.extend(
                self._sample_times.between(account.sampled, upto),
                account.sampled_reserved,
                account.sampled_in_use,
            )
            account.sampled = upto

    def _retire_idle(self, changed_before_ns: int) -> None:
        idle = self._idle
        while idle:
            account = next(iter(idle))
            if account.sampled_ns > changed_before_ns:
                break
            idle.popitem(last=False)
            # One with live blocks stays: it can only empty through an event, which
            # puts it back in line.
            if not account.blocks:
                self._retire(account)

    def _retire(self, account: Account) -> None:
        """Add *account*'s counters into its device's retired row and drop its books."""
        key = (account.component, account.device)
        del self._accounts[key]
        self._behind.pop(account, None)
        self._zero_suspects.discard(account)
        retired = self._retired.get(account.device)
        if retired is None:
            retired = Account(RETIRED, account.device, account.device_account)
            self._retired[account.device] = retired
        account.fold_into(retired)
        self._dirty.add(retired)
        if account.frozen is not None:
            self._rows.remove(account)
            self._anomalies -= account.frozen.anomaly_count

    def _refresh(self) -> None:
        """Freeze the accounts that changed again and put them into the sorted rows."""
        dirty = self._dirty
        if not dirty:
            return
        put = self._rows.put
        for account in dirty:
            stats = account.freeze()
            put(account, stats)
            before = account.frozen
            if before is None:
                self._live_blocks += stats.live_blocks
                if stats.anomalies:
                    self._anomalies += stats.anomaly_count
            else:
                self._live_blocks += stats.live_blocks - before.live_blocks
                if stats.anomalies:  # anomalies are only ever added
                    self._anomalies += stats.anomaly_count - before.anomaly_count
            account.frozen = stats
            if not account.retired:
                self._unsampled.add(account)
                if account.resizes or account.histogram[0]:
                    self._zero_suspects.add(account)
        dirty.clear()

    def _pinned_owners(self) -> set[int]:
        """Owner indexes that zero-byte lent blocks carry: their owners hold 0 bytes but
        must keep their index. Only accounts that allocated or resized to zero are read."""
        self._refresh()
        pinned: set[int] = set()
        for account in self._zero_suspects:
            for record in account.blocks.values():
                if not record & SIZE_MASK and record & OWNER_FIELD:
                    pinned.add((record >> OWNER_SHIFT) & OWNER_MASK)
        return pinned

    # -- reading -----------------------------------------------------------------------

    @property
    def bytes_reserved(self) -> int:
        return self._reserved

    @property
    def bytes_in_use(self) -> int:
        return self._in_use

    @property
    def peak_bytes_reserved(self) -> int:
        return self._peak_reserved

    @property
    def peak_bytes_in_use(self) -> int:
        return self._peak_in_use

    @property
    def events_applied(self) -> int:
        return self._events_applied

    def now_ns(self) -> int:
        """The ledger's clock, read now."""
        return self._clock()

    def statistics(self) -> LedgerStats:
        """Return the totals as a fresh frozen value."""
        self._refresh()
        return LedgerStats(
            bytes_reserved=self._reserved,
            bytes_in_use=self._in_use,
            peak_bytes_reserved=self._peak_reserved,
            peak_bytes_in_use=self._peak_in_use,
            live_blocks=self._live_blocks,
            events_applied=self._events_applied,
            events_dropped=self._events_dropped,
            anomalies=self._anomalies,
            malformed=self._malformed,
            loop_stalls=self._stalls,
            longest_stall_ns=self._longest_stall_ns,
            longest_stall_task=self._longest_stall_task,
            callsites=0 if self._site_table is None else self._site_table.every,
        )

    def components(self) -> ComponentRows:
        """Every component's statistics, sorted by component then device.

        Retired components are summed in a ``"(retired)"`` row per device (see the class
        docstring), so the rows still add up to the totals. The rows are an immutable
        sequence that behaves as (and compares equal to) the tuple of them; it shares
        the rows that did not change with the last one returned, so it costs what changed.
        """
        self._refresh()
        return self._rows.view()

    def component(self, component: str, device: str = "cpu") -> ComponentStats:
        """One component's statistics on *device* (``"(retired)"``: the retired row).

        Raises :class:`KeyError` naming the component when the ledger does not know it
        (never seen, or retired).
        """
        account = self._accounts.get((component, device))
        if account is None and component == RETIRED:
            account = self._retired.get(device)
        if account is None:
            known = ", ".join(f"{c}@{d}" for c, d in sorted(self._accounts)) or "none yet"
            raise KeyError(f"unknown component {component!r} on {device!r} (known: {known})")
        return account.freeze()

    def owners(self) -> tuple[OwnerStats, ...]:
        """The owners' statistics, sorted by owner: the top ``owner_limit`` by bytes in use
        (then peak), and an ``"(other owners)"`` row for the rest once there is a rest."""
        return self._owner_table.stats()

    def devices(self) -> tuple[DeviceStats, ...]:
        """Every device's totals and true peaks, sorted by device."""
        return tuple(self._devices[name].freeze() for name in sorted(self._devices))

    def transfers(self) -> tuple[tuple[str, str, int, int], ...]:
        """``(from_device, to_device, transfers, bytes)`` for every route used, sorted."""
        routes = self._transfers
        return tuple(
            (src, dst, routes[src, dst][0], routes[src, dst][1]) for src, dst in sorted(routes)
        )

    def transfer_timings(self) -> tuple[TransferTiming, ...]:
        """How long the timed copies of every route took (the copies whose TRANSFER
        carried a duration), sorted by route; routes without one are left out."""
        routes = self._transfers
        return tuple(
            TransferTiming(src, dst, *routes[src, dst][2:])
            for src, dst in sorted(routes)
            if routes[src, dst][2]
        )

    def series(self, component: str = TOTAL, device: str = "cpu") -> SeriesView:
        """The series of one component on *device*, or of the total (``"*"``).

        A component that has not been sampled yet (or has retired) has an empty series.
        """
        if component == TOTAL:
            return self._total_series.view()
        account = self._accounts.get((component, device))
        if account is None or account.series is None:
            return TimeSeries(2).view()
        self._catch_up(account, self._sample_times.count)
        return account.series.view()

    def snapshot(
        self,
        label: str = "",
        *,
        now_ns: int | None = None,
        blocks: bool = True,
        series: bool = True,
    ) -> Snapshot:
        """Return an immutable :class:`Snapshot` of everything the ledger knows now.

        *now_ns* (default: the ledger's clock) is the moment block ages count to. With
        *blocks* false the live blocks are left out (``snapshot.blocks`` is empty): a
        cheap view for live displays, where the statistics and series are what counts.
        With *series* false the time series are left out too (``snapshot.series`` is
        empty): for a viewer that keeps its own history after a first full view.

        Without blocks or series a view costs what changed since the last one, plus a
        copy of the cached rows. With series it costs a pass over every component (each
        series is caught up and copied); with blocks, a pass over every live block.
        """
        all_series: list[ComponentSeries] = []
        process_series: list[ComponentSeries] = []
        if series:
            process_series = [
                ComponentSeries(PROCESS, device, self._process_series[device].view())
                for device in sorted(self._process_series)
            ]
            upto = self._sample_times.count
            for key in sorted(self._accounts):
                account = self._accounts[key]
                if account.series is not None:
                    self._catch_up(account, upto)
                    all_series.append(ComponentSeries(*key, account.series.view()))
            all_series.append(ComponentSeries(TOTAL, "*", self._total_series.view()))
        live = _NO_BLOCKS
        if blocks:
            accounts = [self._accounts[key] for key in sorted(self._accounts)]
            live = LiveBlocks.collect(accounts, self._holders, self._site_of)
        return Snapshot(
            label=label,
            wall_time_ns=time.time_ns(),
            monotonic_ns=self._clock() if now_ns is None else now_ns,
            totals=self.statistics(),
            components=self.components(),
            owners=self.owners(),
            devices=self.devices(),
            transfers=self.transfers(),
            transfer_timings=self.transfer_timings(),
            blocks=live,
            series=tuple(all_series),
            process=self.process(),
            process_series=tuple(process_series),
            site_usage=top_sites(self._site_books, self._site_of) if self._site_books else (),
            actors=self._actors(),
        )

    def _site_of(self, site_id: int) -> Site | None:
        table = self._site_table
        return None if table is None else table.site(site_id)
