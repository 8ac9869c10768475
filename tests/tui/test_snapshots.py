"""SVG snapshots of the main screens, from seeded views with fixed times.

Update with ``.venv/bin/pytest tests/tui --snapshot-update`` and look at the result.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from memactor.remote import ConnectionLost
from memactor.tui import MemactorApp

from .feeds import updates
from .helpers import SIZE

SnapCompare = Callable[..., bool]


def seeded(*, lost: bool = False) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, MemactorApp)
        stream = updates(80)
        for update in stream[:60]:
            app.post(update)
        app.post(ConnectionLost("connection refused", 1.6, attempt=1))
        for update in stream[60:]:
            app.post(update)
        if lost:
            app.post(ConnectionLost("connection reset by peer", 1.6, attempt=3))
        await pilot.pause()

    return run_before


@pytest.mark.parametrize(
    "press",
    [(), ("2",), ("3",), ("4",), ("question_mark",), ("slash", "p", "o")],
    ids=["components", "owners", "leaks", "events", "help", "filter"],
)
def test_screens(snap_compare: SnapCompare, press: tuple[str, ...]) -> None:
    app = MemactorApp(chart_hz=None)
    assert snap_compare(app, press=press, terminal_size=SIZE, run_before=seeded())


def test_disconnected(snap_compare: SnapCompare) -> None:
    app = MemactorApp(chart_hz=None)
    assert snap_compare(app, terminal_size=SIZE, run_before=seeded(lost=True))


def test_waiting(snap_compare: SnapCompare) -> None:
    assert snap_compare(MemactorApp(chart_hz=None), terminal_size=SIZE)
