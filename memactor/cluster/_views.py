"""The aggregator as a stream server sees a metrics actor: merged snapshots, and a
channel of merged views at a rate (see :mod:`memactor.remote`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ..metrics import Snapshot
from ._wire import DEFAULT_UPDATE_HZ

if TYPE_CHECKING:
    from ._aggregator import Aggregator


class Views:
    """The aggregator as a stream server sees a metrics actor: snapshots and views."""

    def __init__(self, aggregator: Aggregator, nursery: trio.Nursery) -> None:
        self._aggregator = aggregator
        self._nursery = nursery

    async def snapshot(
        self, label: str = "", *, blocks: bool = True, timeout: float | None = None
    ) -> Snapshot:
        return self._aggregator.snapshot(label, blocks=blocks)

    async def subscribe(
        self, rate_hz: float = DEFAULT_UPDATE_HZ, *, buffer: int = 1, series: bool = True
    ) -> trio.MemoryReceiveChannel[Snapshot]:
        send, receive = trio.open_memory_channel[Snapshot](buffer)
        self._nursery.start_soon(self._feed, send, rate_hz)
        return receive

    async def _feed(self, send: trio.MemorySendChannel[Snapshot], rate_hz: float) -> None:
        async with send:
            while True:
                await trio.sleep(1.0 / rate_hz)
                try:
                    send.send_nowait(self._aggregator.snapshot("live", blocks=False))
                except trio.WouldBlock:
                    pass  # the viewer is behind: it gets the next one
                except trio.BrokenResourceError:
                    return
