"""SIGINT and SIGTERM stop a command cleanly: its trio run is cancelled where it is told to.

A program that serves its memory view must not be harmed by how it is stopped: the
socket file is removed, viewers get their closing frame and ``--save`` is written, then
the command exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).

:class:`StopSignals` handles both signals for the whole command, not only while trio
runs: before ``trio.run`` starts and after it returns, a signal is recorded by a plain
handler; inside the run, :meth:`StopSignals.watch` receives it through
`trio.open_signal_receiver` and cancels the scope it was given. The handlers are
installed even when the process started with SIGINT ignored (as a shell does for a job
started with ``&``): otherwise an interrupt sent to such a demo is lost and it runs to its
end.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Final

import trio

from ._command import CommandError

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a command cleanly."""

_WORDS: Final = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class StoppedBySignal(CommandError):
    """The command was stopped by a signal after cleaning up; exits 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(
            _WORDS.get(signal.Signals(signum), f"stopped by signal {signum}"),
            exit_code=128 + signum,
        )
        self.signum = signum


class StopSignals:
    """Which stop signal arrived first, if any, and the cancellation it causes.

    Use :meth:`caught` around the whole command and run :meth:`watch` in a task of its
    trio run. The first signal cancels the *stop* scope given to :meth:`watch` (the work,
    not the clean-up); a second one also cancels the *everything* scope, so that a
    clean-up that hangs can still be interrupted.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        """The number of the first stop signal received, or None."""
        self._count = 0

    @contextmanager
    def caught(self) -> Iterator[StopSignals]:
        """Record stop signals while the block runs (outside trio); restore the previous
        handlers on leaving it."""
        previous = {signum: signal.signal(signum, self._record) for signum in STOP_SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self._count += 1
        if self.received is None:
            self.received = signum

    async def watch(
        self,
        stop: trio.CancelScope,
        everything: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Cancel *stop* on the first stop signal (also one that came before this task
        started), and *everything* on the second; run until cancelled."""
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            task_status.started()
            if self._count:
                stop.cancel()
            if self._count > 1:
                everything.cancel()
            async for signum in signals:
                self._record(signum, None)
                stop.cancel()
                if self._count > 1:
                    everything.cancel()

    def raise_if_received(self) -> None:
        """Raise :class:`StoppedBySignal` if a stop signal arrived."""
        if self.received is not None:
            raise StoppedBySignal(self.received)
