"""Check the peak memory of a snapshot file against budgets, for CI scripts.

Each ``--budget COMPONENT=SIZE`` caps the peak in-use bytes of one component (on every
device it used; ``COMPONENT@DEVICE=SIZE`` for one device). ``total=SIZE`` (or ``*=SIZE``)
caps the true peak of the sum over every component, ``total@cuda:0=SIZE`` that of one
device. A peak equal to its budget is within it. Peaks are of memory in use (lent to an
owner), so a pool's cache does not count; ``--reserved`` checks peak reserved bytes
instead. Sizes: ``4096``, ``64 MiB``, ``1.5GB``, ``512k``.

Exit 0: every peak is within its budget. Exit 1: a peak exceeds its budget. Exit 2: bad
usage, a file that cannot be read, or a budget for a component (or device) the file does
not hold; the message names the file, or the component and the ones the file holds.

Below the verdict, each budget of a component (or of the total) is projected: when the
current growth of its bytes reaches the budget, or that they do not grow (see
``memactor.metrics.project``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..events import format_size, is_device, parse_size
from ._command import EXIT_FOUND, EXIT_OK, CommandError
from ._output import add_output_arguments, load_snapshot, write_json, write_text

if TYPE_CHECKING:
    # A peak set against its budget: the one rule, in the metrics layer.
    from ..metrics import BudgetVerdict as Verdict
    from ..metrics import Projection, Snapshot

EXAMPLE = "memactor check end.msgpack --budget pool=64MiB --budget gpu@cuda:0=2G --budget total=3G"

TOTAL = "*"
"""The name of the total over every component (:data:`memactor.metrics.TOTAL`)."""

TOTAL_NAMES = ("total", TOTAL)
"""Budget names that mean the total over every component."""


@dataclass(frozen=True, slots=True)
class Budget:
    """One ``--budget``: a component (``None``: the total), an optional device, a cap."""

    component: str | None
    device: str | None
    budget_bytes: int


def budget_argument(text: str) -> Budget:
    """An ``argparse`` type: ``COMPONENT=SIZE``, ``COMPONENT@DEVICE=SIZE`` or ``total=SIZE``."""
    target, equals, size = text.rpartition("=")
    if not equals or not target:
        raise argparse.ArgumentTypeError(
            f"cannot read budget {text!r}: write COMPONENT=SIZE, e.g. 'pool=64MiB' or 'total=1GiB'"
        )
    try:
        budget_bytes = parse_size(size)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"budget {text!r}: {error}") from None
    component, at, device = target.rpartition("@")
    if not at or not is_device(device):
        component, device = target, ""
    return Budget(None if component in TOTAL_NAMES else component, device or None, budget_bytes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a snapshot file")
    parser.add_argument(
        "--budget",
        type=budget_argument,
        action="append",
        required=True,
        metavar="COMPONENT=SIZE",
        help="a cap on a peak; repeat for several (COMPONENT@DEVICE=SIZE, total=SIZE)",
    )
    parser.add_argument(
        "--reserved",
        action="store_true",
        help="check peak reserved bytes (caches included) instead of peak in use",
    )
    add_output_arguments(parser)


def judge(snapshot: Snapshot, budgets: list[Budget], *, reserved: bool = False) -> list[Verdict]:
    """Set each budget against its peak(s) in *snapshot*, in the order given.

    Raises :class:`CommandError` for a budget given twice or one whose component or device
    the snapshot does not hold, listing what it holds.
    """
    from ..metrics import UnknownBudgetTargetError, judge_budget

    seen: set[tuple[str | None, str | None]] = set()
    verdicts: list[Verdict] = []
    for budget in budgets:
        key = (budget.component, budget.device)
        if key in seen:
            raise CommandError(f"two budgets for {_name(budget)}; give each one once")
        seen.add(key)
        try:
            verdicts += judge_budget(
                snapshot,
                budget.budget_bytes,
                component=budget.component,
                device=budget.device,
                reserved=reserved,
            )
        except UnknownBudgetTargetError as error:
            raise CommandError(str(error)) from None
    return verdicts


def _name(budget: Budget) -> str:
    name = budget.component if budget.component is not None else "total"
    return repr(f"{name}@{budget.device}" if budget.device else name)


def render_check(snapshot: Snapshot, verdicts: list[Verdict], *, reserved: bool) -> str:
    """The budget table and the verdict line, as text."""
    from ..metrics import render_table

    measure = "peak reserved" if reserved else "peak in use"
    label = f'"{snapshot.label}"' if snapshot.label else "(unlabelled)"
    rows = [
        [
            "total" if v.component is None else v.component,
            "all" if v.device is None else v.device,
            format_size(v.peak_bytes),
            format_size(v.budget_bytes),
            f"{100 * v.peak_bytes / v.budget_bytes:.0f}%" if v.budget_bytes else "n/a",
            format_size(v.budget_bytes - v.peak_bytes, signed=True),
            "OVER" if v.over else "ok",
        ]
        for v in verdicts
    ]
    over = sum(v.over for v in verdicts)
    if over:
        verdict = f"verdict: OVER BUDGET in {over} of {len(verdicts)}"
    else:
        verdict = f"verdict: within budget ({len(verdicts)} checked)"
    table = render_table(
        ["component", "device", measure, "budget", "used", "headroom", "verdict"],
        rows,
        right="2345",
    )
    return f"memactor check {label}: {measure} against budgets\n\n{table}\n\n{verdict}\n"


def run(args: argparse.Namespace) -> int:
    """Print every budget's verdict; exit 1 if a peak exceeds its budget, else 0."""
    snapshot = load_snapshot(args.file)
    verdicts = judge(snapshot, args.budget, reserved=args.reserved)
    projections = _projections(snapshot, verdicts, reserved=args.reserved)
    if args.format == "json":
        report: dict[str, Any] = {
            "file": str(args.file),
            "label": snapshot.label,
            "measure": "peak_bytes_reserved" if args.reserved else "peak_bytes_in_use",
            "budgets": [
                {
                    "component": TOTAL if v.component is None else v.component,
                    "device": TOTAL if v.device is None else v.device,
                    "peak_bytes": v.peak_bytes,
                    "budget_bytes": v.budget_bytes,
                    "over": v.over,
                }
                for v in verdicts
            ],
            "over_budget": any(v.over for v in verdicts),
            "projections": [p.to_dict() for p in projections],
        }
        write_json(report)
    else:

        def text() -> str:
            shown = render_check(snapshot, verdicts, reserved=args.reserved)
            if projections:
                shown += "\nprojections:\n" + "".join(f"  {p.sentence}\n" for p in projections)
            return shown

        write_text(text, args)
    return EXIT_FOUND if any(v.over for v in verdicts) else EXIT_OK


def _projections(
    snapshot: Snapshot, verdicts: list[Verdict], *, reserved: bool
) -> tuple[Projection, ...]:
    """Each budget of a component, or of the total, projected over the file's series (a
    device's total keeps no series of its own, so it is not projected)."""
    from ..metrics import Limit, project

    limits = [
        Limit(
            v.budget_bytes,
            v.component,
            v.device or "cpu",
            "reserved" if reserved else "in_use",
            "budget",
        )
        for v in verdicts
        if v.component is not None or v.device is None
    ]
    return project(snapshot, limits)
