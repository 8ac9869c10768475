"""memactor: memory-aware actors for Trio.

The names most programs need are re-exported here; each layer's package
(:mod:`memactor.events`, :mod:`memactor.codec`, :mod:`memactor.metrics`) has the rest.
"""

from ._errors import MemactorError as MemactorError
from ._version import __version__ as __version__
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
