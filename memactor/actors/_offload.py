"""Running a blocking copy in a worker thread without holding trio's loop, and without
leaving it running when the caller is cancelled.

:func:`run_off_loop` is what :class:`~memactor.actors.GpuBufferManager` waits on for a
large copy. ``trio.to_thread.run_sync`` offers two ways to meet a cancellation: abandon
the thread (it runs on, holding a buffer nobody will free or report) or ignore the
cancellation until the thread is done (a 1 GiB copy then delays it by the copy's whole
length). Neither leaves nothing lent *promptly*, so this waits in trio's own low-level
way: a cancellation sets the work's ``abort`` flag, the work stops at its next chunk and
undoes what it did, and only then does the caller see ``trio.Cancelled``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import outcome
import trio

T = TypeVar("T")


class CopyAborted(Exception):
    """Raised by a copy's work, in its worker thread, when it saw its ``abort`` flag set
    and undid what it had done (it never reaches the caller: see :func:`run_off_loop`)."""


async def run_off_loop(work: Callable[[threading.Event], T], limiter: trio.CapacityLimiter) -> T:
    """Run ``work(abort)`` in a worker thread, holding a token of *limiter* meanwhile,
    and return what it returns (or raise what it raises).

    Trio's thread keeps running other tasks while the work runs. Waiting for a token is
    an ordinary cancellable wait (nothing has started). Once the work runs, cancelling
    the caller sets ``abort``; the caller keeps waiting until the work returns or raises
    (*work* must check ``abort`` often and, on seeing it, undo what it did and raise
    :class:`CopyAborted`), then raises ``trio.Cancelled``. A result that the work
    finished before it saw the flag is returned as usual, and the caller's next
    checkpoint raises ``trio.Cancelled``: the caller must give it back (see
    ``GpuBufferManager._offload``). So no thread outlives its caller's wait.
    """
    async with limiter:
        abort = threading.Event()
        task = trio.lowlevel.current_task()
        token = trio.lowlevel.current_trio_token()

        def deliver(result: outcome.Outcome[T]) -> None:
            # In the worker thread, once the work is done: wake the caller in trio's.
            token.run_sync_soon(trio.lowlevel.reschedule, task, result)

        def abort_fn(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            abort.set()
            return trio.lowlevel.Abort.FAILED  # woken by deliver(), never abandoned

        trio.lowlevel.start_thread_soon(lambda: work(abort), deliver)
        try:
            result: T = await trio.lowlevel.wait_task_rescheduled(abort_fn)
        except CopyAborted:
            # Only a cancellation (or a KeyboardInterrupt trio delivers the same way)
            # sets the flag, and cancel scopes stay cancelled: this raises it.
            await trio.lowlevel.checkpoint()
            raise RuntimeError("a copy was aborted without a cancellation") from None
        return result
