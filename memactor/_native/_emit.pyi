"""The memory reporter's emits, compiled: see memactor/_native/_emit.c and
memactor/runtime/_emits.py (the pure-Python reference, with the same fields and emits)."""

from collections.abc import Callable
from typing import Any

REQUESTED_TAG: str

class EmitCore:
    """The fields an emit reads and the six emits, compiled."""

    _batch: list[tuple[Any, ...]]
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
