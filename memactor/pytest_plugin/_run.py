"""``memactor_run``: the markers for plain (synchronous) tests, without pytest-trio.

A plain test cannot await, so it hands a trio function to the runner, which runs it with
``trio.run`` under a fresh memory system and returns its result. The markers then judge
that system's ledger exactly as they judge ``memactor_system``'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import pytest
import trio

from .._errors import sole_error
from ..actors import MemorySystem
from ._record import RECORD, recorded_system

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class SystemRunner:
    """The ``memactor_run`` fixture's value: ``memactor_run(fn, *args)`` runs
    ``await fn(system, *args)`` under a fresh memory system and returns what it returns.

    ::

        @pytest.mark.memactor_limit("64 MiB")
        def test_decode(memactor_run):
            async def decode(system, frames):
                pool = memactor.BufferPool()
                await system.spawn(pool, name="pool")
                ...
            assert memactor_run(decode, 8) == ...

    Each call is one ``trio.run``: the system opens, *fn* runs in it, and the system
    closes (its actors stop and hand on their last events) before the call returns, so
    the ledger the markers read is complete. An error in *fn* closes the system and is
    raised from the call as itself (not wrapped in an exception group). A test runs
    at most one system: a second call raises ``RuntimeError``, and calling it from inside
    a trio run (an ``async def`` test) raises trio's ``RuntimeError``; use the
    ``memactor_system`` fixture there.
    """

    __slots__ = ("_item",)

    def __init__(self, item: pytest.Item) -> None:
        self._item = item

    def __call__(self, fn: Callable[[MemorySystem, *Ts], Awaitable[T]], *args: *Ts) -> T:
        if RECORD in self._item.stash:
            raise RuntimeError(
                "memactor_run runs one memory system per test, and this test ran one already; "
                "do all the work in one trio function (or split the test)"
            )

        async def main() -> T:
            async with recorded_system(self._item) as system:
                return await fn(system, *args)

        try:
            return trio.run(main)
        except BaseExceptionGroup as group:
            failure = sole_error(group)
            if failure is group:
                raise
        raise failure
