"""Everything issue 17 adds to a report, as one pure value and its text and JSON.

:func:`leak_report` gathers, from one snapshot, the leak verdicts (:func:`judge_leaks`),
the projections to known limits (:func:`project`), the fragmentation per pool and device
(:func:`fragmentation`) and the recommendations (:func:`recommend`). A live view builds
one per snapshot it shows and draws its Leaks panel from it; ``memactor report``,
``memactor diff --trend`` and the pytest plugin print the same sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..events import parse_size
from ._advice import AdviceConfig, Recommendation, recommend
from ._fragmentation import Fragmentation, fragmentation
from ._projection import Limit, Projection, project
from ._snapshot import TOTAL, Snapshot
from ._trend import TrendConfig
from ._verdict import LeakVerdict, Verdict, VerdictConfig, judge_leaks


@dataclass(frozen=True, slots=True)
class LeakReport:
    """The verdicts, projections, fragmentation and recommendations of one snapshot."""

    verdicts: tuple[LeakVerdict, ...]
    projections: tuple[Projection, ...]
    fragmentation: tuple[Fragmentation, ...]
    recommendations: tuple[Recommendation, ...]

    @property
    def flagged(self) -> tuple[LeakVerdict, ...]:
        """The verdicts that are LEAK or SUSPECT."""
        return tuple(v for v in self.verdicts if v.flagged)

    def to_dict(self) -> dict[str, object]:
        return {
            "verdicts": [v.to_dict() for v in self.verdicts],
            "leak_flagged": bool(self.flagged),
            "projections": [p.to_dict() for p in self.projections],
            "fragmentation": [f.to_dict() for f in self.fragmentation],
            "recommendations": [r.to_dict() for r in self.recommendations],
        }


def leak_report(
    snapshot: Snapshot,
    limits: Sequence[Limit] = (),
    *,
    verdict: VerdictConfig | None = None,
    trend: TrendConfig | None = None,
    advice: AdviceConfig | None = None,
) -> LeakReport:
    """Judge *snapshot* (see the module docstring); *limits* are projected in order."""
    return LeakReport(
        judge_leaks(snapshot, verdict, trend=trend),
        project(snapshot, list(limits)),
        fragmentation(snapshot),
        recommend(snapshot, advice),
    )


def parse_limit(text: str) -> Limit:
    """Read ``COMPONENT[@DEVICE]=SIZE`` (``pool=1GiB``; ``*=16GiB`` for the total of
    every component): a cap on reserved bytes. :class:`ValueError` says what is wrong."""
    name, sep, size = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"a limit is COMPONENT[@DEVICE]=SIZE, like 'pool=1GiB', not {text!r}")
    component, _, device = name.strip().partition("@")
    if component == TOTAL and device:
        raise ValueError(
            f"{text!r}: '*' is the total over every device; the ledger keeps no series of "
            "one device's total, so name its components instead"
        )
    return Limit(
        parse_size(size.strip()),
        None if component == TOTAL else component,
        device or "cpu",
        "reserved",
        "cap" if component != TOTAL else "limit",
    )


def render_verdicts(verdicts: Sequence[LeakVerdict]) -> list[str]:
    """``leaks: 1 of 3 components flagged`` and a line per verdict that is not OK, its
    owners' below it; one line when nothing needs saying."""
    if not verdicts:
        return ["leaks: no component held memory"]
    flagged = [v for v in verdicts if v.flagged]
    shown = [v for v in verdicts if v.verdict is not Verdict.OK]
    head = (
        f"leaks: {len(flagged)} of {len(verdicts)} components flagged"
        if flagged
        else f"leaks: none of {len(verdicts)} components flagged"
    )
    lines = [head]
    for v in shown:
        lines.append(f"  {v.verdict.name:<8} {v.reason}")
        lines += [f"    {o.verdict.name:<8} {o.reason}" for o in v.owners[:3]]
    return lines


def render_leak_report(report: LeakReport) -> list[str]:
    """The text sections of *report*: verdicts always; projections, fragmentation and
    recommendations where there are any."""
    lines = render_verdicts(report.verdicts)
    if report.projections:
        lines += ["", "projections:", *(f"  {p.sentence}" for p in report.projections)]
    if report.fragmentation:
        lines += ["", "fragmentation:", *(f"  {f.sentence()}" for f in report.fragmentation)]
    if report.recommendations:
        lines += [
            "",
            "recommendations:",
            *(f"  {r.sentence()}" for r in report.recommendations),
        ]
    return lines
