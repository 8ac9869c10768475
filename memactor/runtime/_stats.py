"""What an actor reports about itself: its lifecycle state and a frozen statistics value."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._mailbox import Overflow


class ActorState(enum.Enum):
    """Where an actor is in its lifecycle."""

    STARTING = "starting"
    """``on_start`` is running (at spawn or at a restart)."""

    RUNNING = "running"
    """Handling messages, or waiting for one."""

    RESTARTING = "restarting"
    """The last incarnation ended and the supervisor is about to start a new one."""

    STOPPING = "stopping"
    """A stop was requested: the actor is handling what its mailbox still holds."""

    STOPPED = "stopped"
    """For good: the name is free and refs raise `trio.BrokenResourceError`."""


@dataclass(frozen=True, slots=True)
class ActorStatistics:
    """A snapshot of one actor, taken by ``statistics()``; it does not change afterwards.

    Counters cover the actor's whole life, across restarts.
    """

    name: str
    """The actor's unique, possibly dotted, name."""

    state: ActorState
    """The lifecycle state when the snapshot was taken."""

    mailbox_capacity: int
    """How many messages the mailbox holds before its overflow policy applies."""

    mailbox_depth: int
    """Messages queued now, not counting the one being handled."""

    mailbox_peak_depth: int
    """The largest ``mailbox_depth`` seen since spawn."""

    senders_waiting: int
    """Tasks blocked in ``send`` or ``ask`` waiting for room (``Overflow.BLOCK`` only)."""

    overflow: Overflow
    """The mailbox's overflow policy."""

    messages_handled: int
    """Messages whose ``handle`` returned normally."""

    messages_dropped: int
    """Messages the overflow policy dropped (``DROP_NEWEST`` or ``DROP_OLDEST``)."""

    messages_discarded: int
    """Messages still queued when the actor stopped for good, never handled."""

    failures: int
    """Incarnations that ended with an error (in ``on_start``, ``handle``, a background
    task or ``on_stop``)."""

    restarts: int
    """Incarnations started by the supervisor after the first one."""

    uptime_s: float
    """Seconds since the current incarnation's ``on_start`` returned (0.0 before that);
    frozen when the incarnation ends. Measured with `trio.current_time`."""
