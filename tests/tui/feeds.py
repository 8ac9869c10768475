"""Seeded, deterministic feed items for the TUI tests: views of a real Ledger.

Every time in them comes from a fake clock (monotonic and wall), so what the TUI shows
depends on nothing but the seed.
"""

from __future__ import annotations

import dataclasses

from memactor.events import EventKind, MemoryEvent, Site
from memactor.metrics import Ledger, SiteUsage, Snapshot
from memactor.remote import Source, ViewUpdate

STEP_NS = 100_000_000
"""A view every 100 ms: 10 Hz."""
START_WALL_NS = 1_700_000_000_000_000_000
SOURCE = Source("demo-pipeline", 4242, "testhost", START_WALL_NS)
KIB = 1024
MIB = 1024 * KIB


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 1_000_000_000

    def __call__(self) -> int:
        return self.now_ns


class Pipeline:
    """A ledger fed a small, seeded pipeline: a pool with hits, a chunk processor, a GPU
    buffer, a leaking stage and, at tick 30, a double free."""

    def __init__(self, *, leak: bool = True, components: int = 0) -> None:
        self.clock = FakeClock()
        self.ledger = Ledger(clock=self.clock)
        self.leak = leak
        self.extra = components
        self.tick = 0
        self.block = 0

    def _event(
        self,
        kind: EventKind,
        component: str,
        block: int,
        size: int,
        *,
        device: str = "cpu",
        owner: str = "",
    ) -> MemoryEvent:
        return MemoryEvent(
            kind, component, block, size, device, owner, timestamp_ns=self.clock.now_ns
        )

    def step(self) -> None:
        tick = self.tick
        events: list[MemoryEvent] = []
        if tick == 0:
            for block in range(4):
                events.append(self._event(EventKind.ALLOC, "pool", block, MIB, owner="decode"))
            for block in range(4):
                events.append(self._event(EventKind.RELEASE, "pool", block, MIB))
        lent = tick % 4
        if tick:
            events.append(self._event(EventKind.RELEASE, "pool", (tick - 1) % 4, MIB))
        events.append(self._event(EventKind.ACQUIRE, "pool", lent, MIB, owner="decode"))
        events.append(
            self._event(EventKind.ALLOC, "decode.chunks", 1000 + tick, 64 * KIB, owner="decode")
        )
        if tick:
            events.append(self._event(EventKind.FREE, "decode.chunks", 999 + tick, 64 * KIB))
        events.append(
            self._event(EventKind.ALLOC, "gpu", tick, 256 * KIB, device="cuda:0", owner="upload")
        )
        if tick % 2:
            events.append(self._event(EventKind.FREE, "gpu", tick - 1, 256 * KIB, device="cuda:0"))
            events.append(self._event(EventKind.FREE, "gpu", tick, 256 * KIB, device="cuda:0"))
        if self.leak:
            events.append(
                self._event(EventKind.ALLOC, "enrich", 5000 + tick, 16 * KIB, owner="enrich")
            )
        if tick == 30:
            events.append(self._event(EventKind.FREE, "decode.chunks", 999 + tick, 64 * KIB))
        for index in range(self.extra):
            block = 10_000 + tick
            size = (index + 1) * KIB * (1 + tick % 3)
            name = f"stage{index:02d}"
            events.append(self._event(EventKind.ALLOC, name, block, size, owner=name))
            if tick:
                events.append(
                    self._event(
                        EventKind.FREE, name, block - 1, (index + 1) * KIB * (1 + (tick - 1) % 3)
                    )
                )
        self.ledger.apply(events)
        self.ledger.sample()
        self.tick += 1

    def view(self, *, series: bool = True) -> Snapshot:
        view = self.ledger.snapshot("live", blocks=False)
        # The wall clock follows the fake monotonic one: the source started 1 s before it.
        view = dataclasses.replace(view, wall_time_ns=START_WALL_NS + self.clock.now_ns)
        if not series:
            view = dataclasses.replace(view, series=())
        return view

    def advance(self) -> ViewUpdate:
        """One tick of the pipeline, then its view (series only in the first)."""
        self.clock.now_ns += STEP_NS
        self.step()
        return ViewUpdate(self.view(series=self.tick == 1), SOURCE, received_ns=self.clock.now_ns)


def updates(count: int, **options: bool | int) -> list[ViewUpdate]:
    """*count* successive views of a seeded :class:`Pipeline`."""
    pipeline = Pipeline(**options)  # type: ignore[arg-type]  # each option has its own type
    return [pipeline.advance() for _ in range(count)]


SITES = (
    (Site("/srv/pipeline/stages/enrich/lookup.py", 88, "lookup_features"), "cpu", 16 * KIB),
    (Site("/srv/pipeline/stages/decode.py", 41, "decode_frame"), "cpu", 64 * KIB),
    (Site("/srv/pipeline/gpu/upload.py", 120, "stage_to_device"), "cuda:0", 256 * KIB),
    (Site("/srv/pipeline/pool.py", 17, "acquire"), "cpu", MIB),
)
"""Seeded allocation sites: where each of :class:`Pipeline`'s stages lends from."""


def with_sites(update: ViewUpdate, tick: int) -> ViewUpdate:
    """*update* with seeded site usage, as a view of a program with sites on carries:
    the enrich stage's site holds one more block each tick."""
    usage = sorted(
        (
            SiteUsage(site, device, size * blocks, blocks)
            for (site, device, size), blocks in zip(SITES, (tick + 1, 2, 1, 1), strict=True)
        ),
        key=lambda u: -u.bytes_in_use,
    )
    view = update.view
    totals = dataclasses.replace(view.totals, callsites=1)
    view = dataclasses.replace(view, totals=totals, site_usage=tuple(usage))
    return dataclasses.replace(update, view=view)
