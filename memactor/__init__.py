"""memactor: memory-aware actors for Trio.

The names most programs need are re-exported here; each layer's package
(:mod:`memactor.events`, :mod:`memactor.codec`, :mod:`memactor.metrics`) has the rest.

The re-exports load on first use (PEP 562): ``import memactor`` alone imports neither
trio nor NumPy, so the ``memactor`` command starts quickly; ``from memactor import
BufferPool`` imports the layer that defines it, once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._errors import MemactorError as MemactorError
from ._version import __version__ as __version__

if TYPE_CHECKING:
    from .actors import BufferPool as BufferPool
    from .actors import ChunkProcessor as ChunkProcessor
    from .actors import Lease as Lease
    from .actors import LeaseError as LeaseError
    from .actors import MemorySystem as MemorySystem
    from .actors import PoolTimeoutError as PoolTimeoutError
    from .actors import Stage as Stage
    from .actors import open_pipeline as open_pipeline
    from .actors import open_system as open_system
    from .actors import run_pipeline as run_pipeline
    from .codec import CodecError as CodecError
    from .events import EventKind as EventKind
    from .events import MemoryEvent as MemoryEvent
    from .events import format_size as format_size
    from .events import parse_size as parse_size
    from .metrics import Ledger as Ledger
    from .metrics import Snapshot as Snapshot
    from .runtime import Actor as Actor
    from .runtime import ActorRef as ActorRef
    from .runtime import Backoff as Backoff
    from .runtime import MemoryReporter as MemoryReporter
    from .runtime import Overflow as Overflow
    from .runtime import Restart as Restart
    from .runtime import Strategy as Strategy

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        [
            "BufferPool",
            "ChunkProcessor",
            "Lease",
            "LeaseError",
            "MemorySystem",
            "PoolTimeoutError",
            "Stage",
            "open_pipeline",
            "open_system",
            "run_pipeline",
        ],
        "actors",
    ),
    "CodecError": "codec",
    **dict.fromkeys(["EventKind", "MemoryEvent", "format_size", "parse_size"], "events"),
    **dict.fromkeys(["Ledger", "Snapshot"], "metrics"),
    **dict.fromkeys(
        ["Actor", "ActorRef", "Backoff", "MemoryReporter", "Overflow", "Restart", "Strategy"],
        "runtime",
    ),
}
"""Each lazily re-exported name and the layer package (under ``memactor``) that defines it.
The ``TYPE_CHECKING`` imports above say the same to type checkers; a test keeps the two
in step."""

_SUBPACKAGES = frozenset(
    ["events", "codec", "metrics", "runtime", "actors", "remote", "tui", "cli", "pytest_plugin"]
)
"""Layer packages reachable as attributes after a bare ``import memactor``, as they were
when this module imported them all."""

__all__ = ["MemactorError", "__version__", *_LAZY]

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name stays an error

    def __getattr__(name: str) -> object:
        """Import the layer that defines *name* on first use and keep the name here."""
        if name in _SUBPACKAGES:
            return importlib.import_module(f"{__name__}.{name}")
        package = _LAZY.get(name)
        if package is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{package}"), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
