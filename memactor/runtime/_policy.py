"""Supervision policies: when a child is restarted, which siblings restart with it, and
how long the supervisor waits before it restarts them."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long a supervisor waits before a restart: exponentially longer for each restart
    in a row, capped, with random jitter, as Akka's backoff supervisor does.

    The *n*-th restart within the supervisor's restart window (``within_s``, the window of
    its restart intensity) waits ``min(max_s, first_s * factor ** (n - 1))``, lengthened
    by a random fraction of up to ``jitter`` of itself, so that many actors failing
    together do not all come back at the same instant. Once the window holds no restart,
    the next one waits ``first_s`` again. The wait uses trio's clock (an autojump clock
    skips it); an actor stopped during the wait is not restarted and the stop returns at
    once; a shutdown cancels the wait. Restarts still count towards the restart intensity
    when they are counted, before the wait.

    ``Backoff(first_s=0)`` restarts at once, as supervisors without a backoff do.
    """

    first_s: float = 0.01
    """The wait before the first restart in a row."""
    factor: float = 2.0
    """How much longer each next wait is."""
    max_s: float = 1.0
    """The longest wait, before jitter."""
    jitter: float = 0.2
    """Up to this fraction of a wait is added at random (0 for exact waits)."""

    def __post_init__(self) -> None:
        for name in ("first_s", "max_s", "jitter"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of 0 or more, not {value}")
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError(f"factor must be a finite number of 1 or more, not {self.factor}")

    def delay_s(self, attempt: int, random: float = 0.0) -> float:
        """The wait before restart number *attempt* in a row (from 1), given a *random*
        number in [0, 1) for the jitter."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, not {attempt}")
        base = self.first_s
        for _ in range(attempt - 1):
            if base >= self.max_s or self.factor == 1:
                break  # capped (and no float overflow however many restarts in a row)
            base *= self.factor
        base = min(base, self.max_s)
        return base * (1.0 + self.jitter * random)


DEFAULT_BACKOFF = Backoff()
"""Restarts wait 10 ms, then 20, 40, ... up to 1 s, each up to 20 % longer at random."""
NO_BACKOFF = Backoff(first_s=0.0, jitter=0.0)
"""Restarts happen at once."""
