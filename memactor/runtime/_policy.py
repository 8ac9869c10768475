"""Supervision policies: when a child is restarted, and which siblings restart with it."""

from __future__ import annotations

import enum


class Restart(enum.Enum):
    """When a supervisor restarts a child whose incarnation ended on its own.

    An actor stopped with :meth:`ActorRef.stop` is never restarted, whatever its policy.
    """

    PERMANENT = "permanent"
    """Always: after a failure and after a normal exit (:meth:`Actor.exit`)."""

    TRANSIENT = "transient"
    """Only after a failure; a normal exit stops it for good."""

    TEMPORARY = "temporary"
    """Never: a failure is logged and the actor stops for good. A ``TEMPORARY`` child
    terminated because a sibling failed under ``ONE_FOR_ALL`` is not restarted either."""


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them needs a restart."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that ended."""

    ONE_FOR_ALL = "one_for_all"
    """All children: the others are terminated in reverse start order (cancelled, their
    ``on_stop`` run), then all are started again in start order."""


def needs_restart(restart: Restart, *, failed: bool) -> bool:
    """Whether a child with this policy is restarted after ending (failed or normally)."""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return failed
    return False
