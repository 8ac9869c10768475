"""The memory reporter's emits, compiled, and the batches of compact event records they
write: see memactor/_native/_emit.c, memactor/_native/_records.h and
memactor/runtime/_emits.py (the pure-Python reference, with the same fields and emits)."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, SupportsIndex, overload

from ..runtime._inbox import Events

REQUESTED_TAG: str
RECORDS_VERSION: int

class Batch(Sequence[tuple[Any, ...]]):
    """Events in emission order, kept as compact records: a sequence of the event tuples
    the pure-Python emits build (an appended object that is not an 11-tuple is kept as
    it is, and read back as itself)."""

    def __init__(self, events: Iterable[Any] = (), /) -> None: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: SupportsIndex) -> tuple[Any, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> Batch: ...
    def __iter__(self) -> Iterator[tuple[Any, ...]]: ...
    def __add__(self, other: Batch) -> Batch: ...
    def __eq__(self, other: object) -> bool: ...
    def append(self, event: Any, /) -> None: ...
    def extend(self, events: Iterable[Any], /) -> None: ...
    def pop(self, index: SupportsIndex = -1, /) -> tuple[Any, ...]: ...
    def clear(self) -> None: ...

class Counter:
    """Calling it returns start, start + 1, ... (as ``itertools.count(start).__next__``
    does, up to 2**63 - 2); the compiled emits read it without making an int."""

    def __init__(self, start: int = 1) -> None: ...
    def __call__(self) -> int: ...
    def __iter__(self) -> Counter: ...
    def __next__(self) -> int: ...

def merge(runs: Iterable[Sequence[Any]], /) -> tuple[Batch, bool] | None:
    """The events of *runs* in order of their numbers, and whether runs overlapped; None
    where a number is not an int within int64."""

class EmitCore:
    """The fields an emit reads and the six emits, compiled."""

    _batch: Events
    _limit: int
    _clock: Callable[[], int]
    _seq: Callable[[], int]
    component: str
    owner: str
    device: str

    def _full(self) -> None: ...
    def _lend(
        self,
        kind: int,
        block: int,
        size: int,
        owner: str | None,
        device: str | None,
        tags: tuple[tuple[str, str], ...],
        /,
    ) -> None: ...
    def alloc(
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None: ...
    def free(self, block: int, size: int, device: str | None = None) -> None: ...
    def acquire(
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None: ...
    def release(self, block: int, size: int, device: str | None = None) -> None: ...
    def resize(self, block: int, old_size: int, size: int, device: str | None = None) -> None: ...
    def transfer(self, size: int, src: str, dst: str, block: int = 0) -> None: ...
