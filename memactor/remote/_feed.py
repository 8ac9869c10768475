"""What a viewer receives: views of the metrics actor, and word of a lost connection.

The TUI redraws from these and from nothing else, whether its views come from the
metrics actor in the same process or over a stream from another one.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass, field

from ..metrics import Snapshot


@dataclass(frozen=True, slots=True)
class Source:
    """The process being watched."""

    name: str
    """The program's name (its script or module), or one given by the user."""
    pid: int
    host: str
    started_wall_ns: int
    """When its memory system started, in ``time.time_ns()`` units."""
    address: str = ""
    """Where it is served (``unix:/run/user/1000/memactor/4242.sock``); "" in process."""

    @classmethod
    def this_process(cls, *, name: str | None = None, address: str = "") -> Source:
        """Describe the calling process, started now."""
        script = sys.argv[0] or "python"
        if os.path.basename(script) == "__main__.py":  # python -m package
            script = os.path.dirname(script)
        program = name or os.path.basename(script) or "python"
        return cls(program, os.getpid(), socket.gethostname(), time.time_ns(), address)


@dataclass(frozen=True, slots=True)
class ViewUpdate:
    """One view of the metrics actor: a snapshot without blocks.

    ``view.series`` may be empty: a stream sends the time series once, in the first view
    after a (re)connection, and a viewer keeps its own history from then on.
    """

    view: Snapshot
    source: Source
    missed: int = 0
    """Views dropped just before this one because the viewer was too slow (a gap)."""
    received_ns: int = field(default_factory=time.monotonic_ns)
    """When the viewer received it (``time.monotonic_ns()``): for the event-to-screen delay."""


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The stream broke; the client retries in ``retry_in_s`` (attempt ``attempt``)."""

    reason: str
    retry_in_s: float
    attempt: int = 1


Feed = ViewUpdate | ConnectionLost
"""Everything a viewer is ever handed."""
