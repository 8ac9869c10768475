"""The runtime's own errors.

The runtime reuses trio's vocabulary where trio's meaning fits:

- :class:`trio.WouldBlock`: :meth:`ActorRef.send_nowait` found a full ``Overflow.BLOCK``
  mailbox.
- :class:`trio.BrokenResourceError`: the actor on the other side of a ref is gone (it was
  stopped, or failed and was not restarted, or its system closed), so it will never
  handle the message.
- :class:`trio.ClosedResourceError`: you used something *you* closed: spawning into an
  actor system whose ``async with`` block has ended or is ending.

Everything else that is the runtime's own account is a :class:`MemactorError`, defined here.
"""

from __future__ import annotations

from memactor._errors import MemactorError


class DuplicateNameError(MemactorError):
    """An actor or supervisor with this name is already alive in the system.

    Names are freed when an actor stops for good, so a name may be reused after
    ``await ref.stop()`` returns.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"an actor or supervisor named {name!r} already exists in this system")
        self.name = name


class ActorNotFoundError(MemactorError, LookupError):
    """:meth:`ActorSystem.lookup` found no live actor with this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no live actor named {name!r} in this system")
        self.name = name


class AskTimeoutError(MemactorError, TimeoutError):
    """:meth:`ActorRef.ask` got no reply within its timeout.

    The timeout covers waiting for room in the mailbox and waiting for the reply. If the
    message was already delivered, the actor still handles it and its reply is discarded.
    """

    def __init__(self, actor_name: str, timeout_s: float) -> None:
        super().__init__(f"actor {actor_name!r} did not reply within {timeout_s} s")
        self.actor_name = actor_name
        self.timeout_s = timeout_s


class ActorFailedError(MemactorError):
    """The actor failed while handling your message, or while stopping.

    Raised in the task that asked (:meth:`ActorRef.ask`) when the handler raised for that
    message, and from :meth:`ActorRef.stop` when the actor failed after the stop was
    requested. The original exception is :attr:`error`, also chained as ``__cause__``.
    The actor's failure itself is handled by its supervisor (restart or escalation); this
    error only tells the caller.
    """

    def __init__(self, actor_name: str, error: BaseException) -> None:
        super().__init__(f"actor {actor_name!r} failed: {error!r}")
        self.actor_name = actor_name
        self.error = error
        self.__cause__ = error


class MessageDroppedError(MemactorError):
    """A lossy mailbox (``DROP_NEWEST`` or ``DROP_OLDEST``) dropped the message you asked.

    Plain sends to a lossy mailbox never raise: their drops are only counted.
    """

    def __init__(self, actor_name: str) -> None:
        super().__init__(f"actor {actor_name!r} dropped the message: its mailbox was full")
        self.actor_name = actor_name


class RestartIntensityError(MemactorError):
    """A supervisor gave up after too many restarts caused by normal exits.

    When the restarts that exceeded the intensity were caused by an error, that original
    error is escalated instead, so this is raised only when there is no error to escalate
    (a ``PERMANENT`` actor that keeps exiting normally).
    """

    def __init__(self, supervisor_name: str, max_restarts: int, within_s: float) -> None:
        super().__init__(
            f"supervisor {supervisor_name!r} exceeded {max_restarts} restarts in {within_s} s"
        )
        self.supervisor_name = supervisor_name
        self.max_restarts = max_restarts
        self.within_s = within_s
