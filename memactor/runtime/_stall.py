"""Stall detection: a task step that keeps the trio loop from running for too long.

An actor that never yields (a long computation, a blocking call) freezes every other
actor, the metrics actor and the live view with it. :class:`StallWatch` is a trio
instrument that times every task step and records those longer than a threshold, with
the task that ran, so the program can say which actor froze it and for how long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio

DEFAULT_STALL_THRESHOLD_S: Final = 0.25
"""A task step longer than this is a stall."""

_log = logging.getLogger("memactor.runtime")


@dataclass(frozen=True, slots=True)
class Stall:
    """One task step that kept the loop from running for longer than the threshold."""

    task: str
    """The name of the task that ran (an actor's task is named ``"actor NAME"``)."""
    duration_ns: int


@dataclass(frozen=True, slots=True)
class StallStatistics:
    """A snapshot of a :class:`StallWatch`'s counters; it does not change."""

    threshold_ns: int
    stalls: int
    """Task steps longer than the threshold, since the watch started."""
    longest_ns: int
    """The longest of them (0 if none)."""
    longest_task: str
    """The task that ran the longest one (``""`` if none)."""


class StallWatch(trio.abc.Instrument):
    """Times every task step of the trio run it is added to; see the module docstring.

    ``clock`` reads nanoseconds (a real clock: steps take real time even under a mock
    trio clock). Stalls are kept until :meth:`take` collects them (the first ``keep``
    since the last take; later ones are only counted) and each is logged as a warning
    on the ``memactor.runtime`` logger. Add it with ``trio.lowlevel.add_instrument``;
    the actor system does so for its run and removes it when the system closes.
    """

    def __init__(
        self,
        threshold_s: float = DEFAULT_STALL_THRESHOLD_S,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        keep: int = 64,
    ) -> None:
        if not threshold_s > 0:
            raise ValueError(f"stall_threshold_s must be positive, got {threshold_s}")
        self.threshold_ns = int(threshold_s * 1e9)
        self._clock = clock
        self._keep = keep
        self._started: int | None = None
        self._recent: list[Stall] = []
        self._stalls = 0
        self._longest = Stall("", 0)

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = self._clock()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        started = self._started
        if started is None:
            return  # added in the middle of this step: its start is unknown
        self._started = None
        duration = self._clock() - started
        if duration > self.threshold_ns:
            self._note(Stall(task.name, duration))

    def _note(self, stall: Stall) -> None:
        self._stalls += 1
        if stall.duration_ns > self._longest.duration_ns:
            self._longest = stall
        if len(self._recent) < self._keep:
            self._recent.append(stall)
        _log.warning(
            "the trio loop stalled for %.3f s while task %r ran (no other task could run)",
            stall.duration_ns / 1e9,
            stall.task,
        )

    def take(self) -> list[Stall]:
        """The stalls recorded since the last call, oldest first."""
        taken, self._recent = self._recent, []
        return taken

    def statistics(self) -> StallStatistics:
        """Return the counters as a fresh frozen value."""
        return StallStatistics(
            threshold_ns=self.threshold_ns,
            stalls=self._stalls,
            longest_ns=self._longest.duration_ns,
            longest_task=self._longest.task,
        )
