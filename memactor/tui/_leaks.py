"""The Leaks view's content: the leak report of the latest view, as Rich renderables.

The live view judges leaks with :func:`memactor.metrics.leak_report`, the very verdicts
(LEAK, SUSPECT, PLATEAU, OK) and sentences of ``memactor report``, ``memactor diff
--trend`` and the pytest plugin. The snapshot it judges is the latest view with the
viewer's own history as its series (a view carries series only now and then). Views
carry no live blocks, so staleness (blocks held but dead) is not judged there; the
view says so rather than call such blocks fine. Pure: no widgets.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..metrics import LeakReport, LeakVerdict, Snapshot, Verdict
from ._model import matches

VERDICT_STYLES = {
    Verdict.LEAK: "bold red",
    Verdict.SUSPECT: "yellow",
    Verdict.PLATEAU: "cyan",
    Verdict.OK: "green",
}
"""How each verdict's word is coloured: LEAK bold red, SUSPECT yellow, PLATEAU cyan, OK
green."""
OWNERS_SHOWN = 3
"""Owner verdicts shown under a component, worst first (as ``memactor report`` does)."""
NO_AGES = (
    "views carry no block ages, so blocks held but dead are not judged here: save a "
    "snapshot (w) and run memactor report on it"
)


def ages_known(view: Snapshot) -> bool:
    """Whether *view* carries the live blocks that staleness is judged from (a view
    taken without blocks holds none while its components hold some)."""
    return len(view.blocks) > 0 or not any(c.live_blocks for c in view.components)


def _grid(indent: int) -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=indent, no_wrap=True)
    grid.add_column(ratio=1)
    return grid


def _word(verdict: LeakVerdict, *, nested: bool) -> Text:
    return Text(
        ("  " if nested else "") + verdict.verdict.name, style=VERDICT_STYLES[verdict.verdict]
    )


def _section(title: str, sentences: Sequence[str]) -> list[RenderableType]:
    if not sentences:
        return []
    grid = _grid(1)
    for sentence in sentences:
        grid.add_row("·", sentence)
    return [Text(title, style="bold"), grid]


def leak_panel(
    report: LeakReport | None, view: Snapshot | None, history_s: float, text: str = ""
) -> RenderableType:
    """What the Leaks view shows: a head line, a verdict per component whose name matches
    the filter *text* (owners' verdicts nested under it), then projections,
    fragmentation and recommendations where the report has any. *history_s* is the span
    of history the verdicts were judged over."""
    if report is None or view is None:
        return Text("no view yet", style="dim")
    verdicts = [v for v in report.verdicts if matches(v.component, text)]
    flagged = sum(v.flagged for v in verdicts)
    if not verdicts:
        head = "leaks: no component held memory" if not text else f"leaks: none match {text!r}"
    elif flagged:
        head = f"leaks: {flagged} of {len(verdicts)} components flagged"
    else:
        head = f"leaks: none of {len(verdicts)} components flagged"
    parts: list[RenderableType] = [Text(f"{head}, judged over {history_s:.0f} s of views")]
    if not ages_known(view):
        parts.append(Text(NO_AGES, style="dim"))
    grid = _grid(9)
    for verdict in verdicts:
        grid.add_row(_word(verdict, nested=False), verdict.reason)
        for owner in verdict.owners[:OWNERS_SHOWN]:
            grid.add_row(_word(owner, nested=True), owner.reason)
    if verdicts:
        parts.append(grid)

    def picked(component: str | None) -> bool:
        return matches(component, text) if component not in (None, "*") else not text

    parts += _section(
        "projections", [p.sentence for p in report.projections if picked(p.limit.component)]
    )
    parts += _section(
        "fragmentation", [f.sentence() for f in report.fragmentation if picked(f.component)]
    )
    parts += _section(
        "recommendations",
        [r.sentence() for r in report.recommendations if picked(r.component)],
    )
    return Group(*parts)
