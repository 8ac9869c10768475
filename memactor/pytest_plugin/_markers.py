"""The two markers, as pure judgements of a test's snapshots.

``memactor_limit`` sets a peak of memory in use (a component's or the total's) against a
limit; ``memactor_no_leaks`` sets the memory in use at the end against the memory in use
at the start (or after warm-up). Both read in-use bytes, never reserved ones, so a pool's
cache is neither a peak nor a leak. Each returns the failure message, offenders table
included, or ``None`` when the test passes.

``memactor_no_leaks(process=True)`` also sets the growth of the process's own memory
against the growth of the ledger's reserved bytes: what the ledger does not explain is
unattributed growth, memory nobody reported to memactor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from ..actors import ProcessMemory
from ..events import format_size, parse_size
from ..metrics import (
    Ledger,
    LiveBlocks,
    SiteUsage,
    Snapshot,
    UnknownBudgetTargetError,
    diff,
    judge_budget,
    judge_leaks,
    render_table,
    render_verdicts,
    site_lines,
    sites_of_blocks,
    usage_of,
)

DEFAULT_PROCESS_TOLERANCE = 32 * 2**20
"""How much unattributed growth ``memactor_no_leaks(process=True)`` forgives: well above
what an interpreter's own allocations (a few MiB) add over a test, well below a leak."""

OFFENDERS_SHOWN = 5
"""Rows in a failure's table of offenders."""


def _bytes(n: int) -> str:
    return f"{format_size(n)} ({n:,} bytes)"


def _size(marker: str, name: str, value: object) -> int:
    if not isinstance(value, int | str):
        raise TypeError(f"{name} must be a size like '64 MiB' or a number of bytes, not {value!r}")
    try:
        return parse_size(value)
    except ValueError as error:
        raise ValueError(f"{marker}({name}=...): {error}") from None


def _text(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class MemoryLimit:
    """``@pytest.mark.memactor_limit(peak, component=None, device=None)``."""

    peak_bytes: int
    component: str | None = None
    device: str | None = None

    @classmethod
    def from_mark(cls, mark: pytest.Mark) -> MemoryLimit:
        """Read the marker's arguments; :class:`TypeError` or :class:`ValueError` if bad."""

        def read(
            peak: int | str, component: str | None = None, device: str | None = None
        ) -> MemoryLimit:
            return cls(
                _size("memactor_limit", "peak", peak),
                _text("component", component),
                _text("device", device),
            )

        return read(*mark.args, **mark.kwargs)

    def judge(self, end: Snapshot) -> str | None:
        """The failure message if a peak in use exceeds the limit, else ``None``.

        The rule is :func:`memactor.metrics.judge_budget`'s, the one ``memactor check``
        applies: a peak equal to the limit is within it, and a component or device the
        test never reported memory for fails the test, naming the ones it did.
        """
        try:
            verdicts = judge_budget(
                end, self.peak_bytes, component=self.component, device=self.device
            )
        except UnknownBudgetTargetError as error:
            return f"memactor_limit: {error}"
        over = [v for v in verdicts if v.over]
        if not over:
            return None
        worst = max(over, key=lambda v: v.peak_bytes)
        if worst.component is not None:
            what = f"of {worst.component!r} on {worst.device}"
        elif worst.device is not None:
            what = f"on {worst.device}"
        else:
            what = "in total"
        return (
            f"memactor_limit: the peak in use {what}, {_bytes(worst.peak_bytes)}, exceeds "
            f"the limit of {_bytes(self.peak_bytes)}\n\n"
            + peak_offenders(end, self.component, self.device)
        )


def peak_offenders(end: Snapshot, component: str | None = None, device: str | None = None) -> str:
    """The components (of *component*, on *device*, if given) and the owners with the
    highest peaks in use, as two small tables."""
    components = sorted(
        (
            c
            for c in end.components
            if component in (None, c.component) and device in (None, c.device)
        ),
        key=lambda c: (-c.peak_bytes_in_use, c.component),
    )
    owners = sorted(end.owners, key=lambda o: (-o.peak_bytes_in_use, o.owner))
    by_component = render_table(
        ["component", "device", "peak in use", "live blocks at end"],
        [
            [c.component, c.device, format_size(c.peak_bytes_in_use), f"{c.live_blocks:,}"]
            for c in components[:OFFENDERS_SHOWN]
            if c.peak_bytes_in_use
        ],
        right="23",
    )
    by_owner = render_table(
        ["owner", "peak in use"],
        [
            [o.owner or "(none)", format_size(o.peak_bytes_in_use)]
            for o in owners[:OFFENDERS_SHOWN]
            if o.peak_bytes_in_use
        ],
        right="1",
    )
    sites = ""
    if end.totals.callsites:
        # The peak's own blocks may be gone; the sites of what is held at the end are
        # where a peak that stays is found.
        usage = [u for u in usage_of(end) if device in (None, u.device)]
        sites = _sites_section("in use at the end, by allocation site:", usage, end)
    return f"{by_component}\n\n{by_owner}{sites}"


def _sites_section(heading: str, usage: Sequence[SiteUsage], end: Snapshot) -> str:
    lines = site_lines(usage[:OFFENDERS_SHOWN], every=end.totals.callsites)
    if not lines:
        return f"\n\n{heading}\n  (no lent block has a site)"
    return "\n\n" + "\n".join([heading, *lines])


@dataclass(frozen=True, slots=True)
class NoLeaks:
    """``@pytest.mark.memactor_no_leaks(tolerance=0, component=None, warmup=0,
    process=False, verdict=False)``.

    *warmup* is a number of snapshots: with ``warmup=N`` the memory in use when the test
    took its N-th snapshot (``await memactor_system.metrics.snapshot()``) is the
    baseline, so whatever the test held by then (a cache filled on the first round, a
    lazily built table) is not a leak. With 0 the baseline is the start: nothing in use.
    """

    tolerance_bytes: int = 0
    component: str | None = None
    warmup: int = 0
    process_tolerance_bytes: int | None = None
    """With ``process=True`` (:data:`DEFAULT_PROCESS_TOLERANCE`) or ``process="64 MiB"``:
    how much the process's memory may grow beyond what the ledger's reserved bytes
    explain, between the same two moments as the in-use check; ``None``: not checked."""
    verdict: bool = False
    """With ``verdict=True`` the test also fails when the leak verdict of the end
    snapshot flags a component (of *component*, if given) as LEAK or SUSPECT, whatever
    the in-use bytes did (see :func:`memactor.metrics.judge_leaks`)."""

    @classmethod
    def from_mark(cls, mark: pytest.Mark) -> NoLeaks:
        """Read the marker's arguments; :class:`TypeError` or :class:`ValueError` if bad."""

        def read(
            tolerance: int | str = 0,
            component: str | None = None,
            warmup: int = 0,
            process: bool | int | str = False,
            verdict: bool = False,
        ) -> NoLeaks:
            if not isinstance(verdict, bool):
                raise TypeError(f"verdict must be True or False, not {verdict!r}")
            if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
                raise ValueError(
                    f"memactor_no_leaks(warmup=...) is a number of snapshots (0 or more), "
                    f"not {warmup!r}"
                )
            if process is True:
                process_tolerance: int | None = DEFAULT_PROCESS_TOLERANCE
            elif process is False:
                process_tolerance = None
            else:
                process_tolerance = _size("memactor_no_leaks", "process", process)
            return cls(
                _size("memactor_no_leaks", "tolerance", tolerance),
                _text("component", component),
                warmup,
                process_tolerance,
                verdict,
            )

        return read(*mark.args, **mark.kwargs)

    def judge(self, snapshots: list[Snapshot], end: Snapshot) -> str | None:
        """The failure message if *end* holds more in use than the baseline, beyond the
        tolerance, else ``None``. *snapshots* are those the test took, in order."""
        if self.warmup > len(snapshots):
            return (
                f"memactor_no_leaks(warmup={self.warmup}): the test took "
                f"{len(snapshots)} snapshot{'' if len(snapshots) == 1 else 's'}, but "
                f"warm-up ends at its snapshot number {self.warmup} "
                "(take one with 'await memactor_system.metrics.snapshot()')"
            )
        start = snapshots[self.warmup - 1] if self.warmup else _EMPTY
        grown = _in_use(end, self.component) - _in_use(start, self.component)
        verdicts = [v for v in judge_leaks(end) if self.component in (None, v.component)]
        if grown <= self.tolerance_bytes:
            flagged = [v for v in verdicts if v.flagged]
            if not (self.verdict and flagged):
                return None
            return (
                f"memactor_no_leaks(verdict=True): the leak verdict flags "
                f"{', '.join(v.component for v in flagged)}\n\n"
                + "\n".join(render_verdicts(verdicts))
            )
        since = f"after warm-up (snapshot {self.warmup})" if self.warmup else "at the start"
        of = f"component {self.component!r}" if self.component else "the test"
        return (
            f"memactor_no_leaks: {of} ended with {_bytes(grown)} more in use than {since}; "
            f"the tolerance is {_bytes(self.tolerance_bytes)}\n\n"
            + leak_offenders(start, end, self.component)
            + "\n\n"
            + "\n".join(render_verdicts(verdicts))
        )

    def judge_process(
        self, snapshots: Sequence[Snapshot], end: Snapshot, readings: Sequence[ProcessMemory]
    ) -> str | None:
        """The failure message if the process grew past the process tolerance beyond what
        the ledger's reserved bytes explain, else ``None`` (also when not asked for, or
        when :meth:`judge` already reports a missing warm-up snapshot).

        *readings* are the process's memory at the start, at each of *snapshots*, and at
        the end, in that order.
        """
        if self.process_tolerance_bytes is None or self.warmup > len(snapshots):
            return None
        start = snapshots[self.warmup - 1] if self.warmup else _EMPTY
        first, last = readings[self.warmup], readings[-1]
        process_grown = last.host_bytes - first.host_bytes
        reserved_grown = reserved_on_cpu(end) - reserved_on_cpu(start)
        unattributed = process_grown - reserved_grown
        if unattributed <= self.process_tolerance_bytes:
            return None
        since = f"after warm-up (snapshot {self.warmup})" if self.warmup else "since the start"
        which = "USS" if last.uss_bytes else "RSS"
        return (
            f"memactor_no_leaks(process=...): unattributed growth of {_bytes(unattributed)} "
            f"{since}: the process ({which}) grew by {_bytes(process_grown)} while the "
            f"ledger's reserved bytes grew by {_bytes(reserved_grown)}; the tolerance is "
            f"{_bytes(self.process_tolerance_bytes)}. This memory is outside memactor: "
            "nothing reported it (report it through a memory reporter, or free it)"
        )


def reserved_on_cpu(snapshot: Snapshot) -> int:
    """What *snapshot*'s components reserved on ``"cpu"``: the part of the process's
    host memory that the ledger explains."""
    return sum(d.bytes_reserved for d in snapshot.devices if d.device == "cpu")


_EMPTY = Ledger(clock=lambda: 0).snapshot("start")
"""What a memory system holds when it opens: nothing."""


def _in_use(snapshot: Snapshot, component: str | None) -> int:
    if component is None:
        return snapshot.totals.bytes_in_use
    return sum(c.bytes_in_use for c in snapshot.components if c.component == component)


def leak_offenders(start: Snapshot, end: Snapshot, component: str | None = None) -> str:
    """Blocks lent out in *end* that were not alive in *start*, by component and owner."""
    fresh = diff(start, end).new_blocks
    totals: dict[tuple[str, str], list[int]] = {}
    for block in fresh:
        if block.owner is None or component not in (None, block.component):
            continue
        row = totals.setdefault((block.component, block.owner), [0, 0])
        row[0] += block.size
        row[1] += 1
    top = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    rows = [
        [name, owner or "(none)", format_size(size), f"{count:,}"]
        for (name, owner), (size, count) in top[:OFFENDERS_SHOWN]
    ]
    table = render_table(["component", "owner", "bytes", "live blocks"], rows, right="23")
    if len(top) > OFFENDERS_SHOWN:
        table += f"\n... and {len(top) - OFFENDERS_SHOWN} more"
    if not rows:
        table += "\n(no new blocks: memory in use grew by resizing older ones)"
    if end.totals.callsites:
        mine = _component_rows(fresh, component)
        usage = sites_of_blocks(fresh.select(mine)) if fresh.sites else ()
        table += _sites_section("allocated at (sites of the new blocks):", usage, end)
    return table


def _component_rows(blocks: LiveBlocks, component: str | None) -> npt.NDArray[np.bool_]:
    mask = np.ones(len(blocks), dtype=bool)
    if component is not None:
        mask = np.zeros(len(blocks), dtype=bool)
        for c, d in blocks.accounts:
            if c == component:
                mask |= blocks.rows_of(c, d)
    return mask
