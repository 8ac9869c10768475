"""The one budget rule: a snapshot's peaks set against a cap, for every tool that checks one.

``memactor check`` (the command line) and ``@pytest.mark.memactor_limit`` (the pytest
plugin) both call :func:`judge_budget`, so they agree on the two questions a budget
raises:

- the boundary: a peak *at most* its budget is within it (``peak <= budget`` passes,
  one byte more fails);
- an unknown name: a budget for a component or device the snapshot does not hold is an
  error (:class:`UnknownBudgetTargetError`) naming it and the ones the snapshot holds,
  never a peak of 0 that passes silently.

Pure and synchronous, like the rest of the metrics layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import MemactorError
from ._snapshot import Snapshot


class UnknownBudgetTargetError(MemactorError, LookupError):
    """A budget names a component or a device that the snapshot does not hold.

    The message names what was asked for and lists what the snapshot holds
    (``component@device`` for components, the device names for devices).
    """


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """One peak set against its budget."""

    component: str | None
    """``None``: the total over every component."""
    device: str | None
    """``None``: every device (the total's true peak)."""
    peak_bytes: int
    budget_bytes: int

    @property
    def over(self) -> bool:
        """Whether the peak exceeds the budget; a peak equal to it is within it."""
        return self.peak_bytes > self.budget_bytes


def judge_budget(
    snapshot: Snapshot,
    budget_bytes: int,
    *,
    component: str | None = None,
    device: str | None = None,
    reserved: bool = False,
) -> list[BudgetVerdict]:
    """Set *budget_bytes* against the peaks it caps in *snapshot*: one verdict per peak.

    With neither *component* nor *device*: the true peak of the total. With only
    *device*: that device's true peak. With *component*: its peak on each device it used
    (only on *device*, if given). Peaks are of bytes in use, or reserved with
    *reserved*. Each verdict's :attr:`~BudgetVerdict.over` applies the boundary rule
    (``peak <= budget`` is within budget).

    Raises :class:`UnknownBudgetTargetError` when *device* or *component* (on *device*)
    is not in the snapshot, naming it and the ones it holds.
    """
    field = "peak_bytes_reserved" if reserved else "peak_bytes_in_use"
    if component is None and device is None:
        return [BudgetVerdict(None, None, getattr(snapshot.totals, field), budget_bytes)]
    if component is None:
        verdicts = [
            BudgetVerdict(None, d.device, getattr(d, field), budget_bytes)
            for d in snapshot.devices
            if d.device == device
        ]
        if not verdicts:
            known = ", ".join(d.device for d in snapshot.devices) or "none"
            raise UnknownBudgetTargetError(
                f"no device {device!r} in the snapshot (devices: {known})"
            )
        return verdicts
    verdicts = [
        BudgetVerdict(c.component, c.device, getattr(c, field), budget_bytes)
        for c in snapshot.components
        if c.component == component and device in (None, c.device)
    ]
    if not verdicts:
        known = ", ".join(f"{c.component}@{c.device}" for c in snapshot.components) or "none"
        name = f"{component}@{device}" if device else component
        raise UnknownBudgetTargetError(
            f"unknown component {name!r} in the snapshot (components: {known})"
        )
    return verdicts
