"""The ledger: memory events in, exact statistics out. Pure and synchronous.

The ledger is the single source of truth for what memactor shows. Every number it keeps
is exact for the events it was given: reserved and in-use bytes per component and
device, per owner, per device and overall, with true peaks (the peak of each sum, not a
sum of peaks). Events that make no sense (a free of an unknown block, a double free, a
negative size) are counted as anomalies of their component and otherwise ignored, so a
bad producer can never crash the ledger or corrupt another component's books.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from operator import index as as_int
from operator import length_hint
from typing import Any

from ..events import MAX_BLOCK, MAX_TIMESTAMP, MIN_TIMESTAMP, EventKind, check_device, is_device
from ._accounts import (
    NO_OWNER,
    NO_SIZE,
    OWNER_FIELD,
    OWNER_MASK,
    OWNER_SHIFT,
    RECENT_FREES,
    SIZE_MASK,
    TIME_SHIFT,
    Account,
    DeviceAccount,
    OwnerAccount,
)
from ._blocks import LiveBlocks
from ._series import DEFAULT_CAPACITY, SeriesView, TimeSeries
from ._snapshot import TOTAL, ComponentSeries, Snapshot
from ._stats import ComponentStats, DeviceStats, LedgerStats, OwnerStats

_ALLOC = int(EventKind.ALLOC)
_FREE = int(EventKind.FREE)
_RESIZE = int(EventKind.RESIZE)
_ACQUIRE = int(EventKind.ACQUIRE)
_RELEASE = int(EventKind.RELEASE)
_TRANSFER = int(EventKind.TRANSFER)


_UNSET = object()
_NO_ACCOUNT = Account("(none)", "cpu", DeviceAccount("cpu"))


class Ledger:
    """Applies memory events and answers what is held, where, by whom, and since when.

    ``clock`` gives the ledger's notion of now in nanoseconds (ages, samples, snapshot
    time); it defaults to :func:`time.monotonic_ns`, which is also what events are stamped
    with. ``series_capacity`` bounds each component's time series.

    The ledger is not thread-safe; it belongs to one task (the metrics actor).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        series_capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._clock = clock
        self._series_capacity = series_capacity
        self._accounts: dict[tuple[str, str], Account] = {}
        self._owners: dict[str, OwnerAccount] = {}
        # Owner accounts by index; index 0 stands for "lent to nobody" (cached).
        self._holders: list[OwnerAccount] = [OwnerAccount("", 0)]
        self._devices: dict[str, DeviceAccount] = {}
        self._series: dict[tuple[str, str], TimeSeries] = {}
        self._total_series = TimeSeries(series_capacity)
        self._transfers: dict[tuple[str, str], list[int]] = {}
        self._reserved = 0
        self._in_use = 0
        self._peak_reserved = 0
        self._peak_in_use = 0
        self._events_applied = 0
        self._events_dropped = 0
        self._malformed = 0
        self._anomalies = 0

    # -- applying events -------------------------------------------------------------

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
        """
        if not isinstance(events, list | tuple):
            events = list(events)
        owners = self._owners
        holders = self._holders
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
        a_reserved = a_in_use = a_peak_reserved = a_peak_in_use = 0
        a_allocations = a_frees = a_acquires = a_releases = a_bytes_allocated = 0
        d_reserved = d_in_use = d_peak_reserved = d_peak_in_use = 0
        remaining = iter(events)
        failure: BaseException | None = None
        for event in remaining:
            try:
                kind, component, block, size, device, owner, ts, old_size, dst, _tags, _seq = event
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
                    last_component = component
                    last_device = device
                    blocks = account.blocks
                    histogram = account.histogram
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
                    if lifetime > 0:
                        account.lifetime_total_ns += lifetime
                        if lifetime > account.lifetime_max_ns:
                            account.lifetime_max_ns = lifetime
                    account.lifetimes += 1
                    freed = account.freed
                    freed.add(block)
                    if len(freed) >= RECENT_FREES:
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

                elif kind == _TRANSFER:
                    size = as_int(size)  # a float would turn the byte counts into floats
                    if not 0 <= size <= SIZE_MASK:
                        account.count_anomaly("bad_size")
                        continue
                    if dst.__class__ is not str or not is_device(dst):
                        account.count_anomaly("bad_device")
                        continue
                    account.transfers += 1
                    account.bytes_transferred += size
                    route = self._transfers.get((device, dst))
                    if route is None:
                        route = self._transfers[(device, dst)] = [0, 0]
                    route[0] += 1
                    route[1] += size

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
        if not isinstance(component, str) or not component:
            raise ValueError(f"component must be a non-empty string, got {component!r}")
        check_device(device)  # type: ignore[arg-type]  # checked here, at run time
        assert isinstance(device, str)
        device_account = self._devices.get(device)
        if device_account is None:
            device_account = self._devices[device] = DeviceAccount(device)
        account = self._accounts[(component, device)] = Account(component, device, device_account)
        return account

    def _open_owner(self, owner: object) -> OwnerAccount:
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a string, got {owner!r}")
        index = len(self._holders)
        if index > OWNER_MASK:
            raise OverflowError(f"more than {OWNER_MASK} distinct owners")
        holder = self._owners[owner] = OwnerAccount(owner, index)
        self._holders.append(holder)
        return holder

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

    # -- sampling ----------------------------------------------------------------------

    def sample(self, now_ns: int | None = None) -> None:
        """Append one point to every component's series and to the total's.

        Call it at a fixed rate (the metrics actor does); each series stays bounded.
        """
        now = self._clock() if now_ns is None else now_ns
        series = self._series
        for key, account in self._accounts.items():
            one = series.get(key)
            if one is None:
                one = series[key] = TimeSeries(self._series_capacity)
            one.append(now, account.reserved, account.in_use)
        self._total_series.append(now, self._reserved, self._in_use)

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
        anomalies = sum(sum(a.anomalies.values()) for a in self._accounts.values())
        return LedgerStats(
            bytes_reserved=self._reserved,
            bytes_in_use=self._in_use,
            peak_bytes_reserved=self._peak_reserved,
            peak_bytes_in_use=self._peak_in_use,
            live_blocks=sum(len(a.blocks) for a in self._accounts.values()),
            events_applied=self._events_applied,
            events_dropped=self._events_dropped,
            anomalies=anomalies,
            malformed=self._malformed,
        )

    def components(self) -> tuple[ComponentStats, ...]:
        """Every component's statistics, sorted by component then device."""
        return tuple(self._accounts[key].freeze() for key in sorted(self._accounts))

    def component(self, component: str, device: str = "cpu") -> ComponentStats:
        """One component's statistics on *device*.

        Raises :class:`KeyError` naming the component when the ledger has never seen it.
        """
        account = self._accounts.get((component, device))
        if account is None:
            known = ", ".join(f"{c}@{d}" for c, d in sorted(self._accounts)) or "none yet"
            raise KeyError(f"unknown component {component!r} on {device!r} (known: {known})")
        return account.freeze()

    def owners(self) -> tuple[OwnerStats, ...]:
        """Every owner's statistics, sorted by owner."""
        return tuple(self._owners[name].freeze() for name in sorted(self._owners))

    def devices(self) -> tuple[DeviceStats, ...]:
        """Every device's totals and true peaks, sorted by device."""
        return tuple(self._devices[name].freeze() for name in sorted(self._devices))

    def transfers(self) -> tuple[tuple[str, str, int, int], ...]:
        """``(from_device, to_device, transfers, bytes)`` for every route used, sorted."""
        routes = self._transfers
        return tuple(
            (src, dst, routes[src, dst][0], routes[src, dst][1]) for src, dst in sorted(routes)
        )

    def series(self, component: str = TOTAL, device: str = "cpu") -> SeriesView:
        """The series of one component on *device*, or of the total (``"*"``).

        A component that has not been sampled yet has an empty series.
        """
        if component == TOTAL:
            return self._total_series.view()
        one = self._series.get((component, device))
        return one.view() if one is not None else TimeSeries(2).view()

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
        """
        keys = sorted(self._accounts)
        accounts = [self._accounts[key] for key in keys]
        all_series: list[ComponentSeries] = []
        if series:
            all_series = [
                ComponentSeries(component, device, self._series[component, device].view())
                for component, device in sorted(self._series)
            ]
            all_series.append(ComponentSeries(TOTAL, "*", self._total_series.view()))
        return Snapshot(
            label=label,
            wall_time_ns=time.time_ns(),
            monotonic_ns=self._clock() if now_ns is None else now_ns,
            totals=self.statistics(),
            components=tuple(account.freeze() for account in accounts),
            owners=self.owners(),
            devices=self.devices(),
            transfers=self.transfers(),
            blocks=LiveBlocks.collect(accounts, self._holders) if blocks else LiveBlocks.empty(),
            series=tuple(all_series),
        )
