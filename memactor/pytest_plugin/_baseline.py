"""The baseline file: each test's peaks from an earlier run, to catch a peak that grew.

The file is JSON, keyed by test node id::

    {"memactor_baseline": 1,
     "tests": {"tests/test_io.py::test_decode": {"total": 8388608,
                                                 "components": {"pool@cpu": 4194304}}}}

``total`` is the test's true peak in use; ``components`` the peak in use of each
component on each device. A run records the tests the file does not hold yet and
compares the others; ``--memactor-baseline-update`` records every test that passes
again. The file is written to a temporary name and renamed, so a crash never leaves
half a baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Final

from .._errors import MemactorError
from ..codec import save_atomically
from ..events import format_size, parse_size
from ..metrics import Snapshot, render_table

BASELINE_VERSION: Final = 1


class BaselineError(MemactorError, ValueError):
    """The baseline file cannot be read or the tolerance cannot be understood.

    A :class:`~memactor.MemactorError` like every error memactor raises on its own
    account, and a ``ValueError`` as before."""


@dataclass(frozen=True, slots=True)
class Peaks:
    """One test's peaks in use: the total and each ``component@device``."""

    total: int
    components: dict[str, int]

    @classmethod
    def of(cls, snapshot: Snapshot) -> Peaks:
        """The peaks in use of *snapshot*."""
        return cls(
            snapshot.totals.peak_bytes_in_use,
            {f"{c.component}@{c.device}": c.peak_bytes_in_use for c in snapshot.components},
        )

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "components": dict(sorted(self.components.items()))}

    @classmethod
    def from_json(cls, data: object) -> Peaks:
        if not isinstance(data, dict) or set(data) != {"total", "components"}:
            raise ValueError("an entry must hold 'total' and 'components'")
        total, components = data["total"], data["components"]
        if not isinstance(components, dict) or not all(
            _is_count(v) for v in [total, *components.values()]
        ):
            raise ValueError("peaks must be whole numbers of bytes")
        return cls(total, dict(components))


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much a peak may grow past its baseline: a share (``10%``) or a size (``1 MiB``)."""

    share: Fraction | None = None
    size_bytes: int = 0

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``"10%"``, ``"0.5%"`` or a size (``"1 MiB"``); :class:`BaselineError` if bad."""
        if text.strip().endswith("%"):
            try:
                share = Fraction(text.strip()[:-1].strip()) / 100
            except ValueError:
                share = Fraction(-1)
            if share < 0:
                raise BaselineError(f"cannot read tolerance {text!r}; write e.g. '10%' or '1 MiB'")
            return cls(share=share)
        try:
            return cls(size_bytes=parse_size(text))
        except ValueError as error:
            raise BaselineError(f"tolerance: {error}") from None

    def allows(self, before: int, now: int) -> bool:
        """Whether growing from *before* to *now* bytes is within the tolerance."""
        if self.share is not None:
            return now <= before + before * self.share
        return now <= before + self.size_bytes

    def __str__(self) -> str:
        if self.share is not None:
            return f"{float(self.share * 100):g}%"
        return format_size(self.size_bytes)


def load_baseline(path: Path) -> dict[str, Peaks]:
    """The entries of the baseline at *path*; none if there is no file yet.

    Raises :class:`BaselineError` naming the file when it is not a baseline.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise BaselineError(f"cannot read the memactor baseline {path}: {error}") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("memactor_baseline") != BASELINE_VERSION:
            raise ValueError(f"not a memactor baseline (version {BASELINE_VERSION})")
        tests = data.get("tests")
        if not isinstance(tests, dict):
            raise ValueError("'tests' must map test ids to peaks")
        return {str(nodeid): Peaks.from_json(entry) for nodeid, entry in tests.items()}
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise BaselineError(f"cannot read the memactor baseline {path}: {error}") from None


def save_baseline(path: Path, entries: dict[str, Peaks]) -> None:
    """Write *entries* to *path* atomically: an exclusive temporary file beside it, synced,
    then renamed (see :func:`memactor.codec.save_atomically`)."""
    data = {
        "memactor_baseline": BASELINE_VERSION,
        "tests": {nodeid: entries[nodeid].to_json() for nodeid in sorted(entries)},
    }
    text = (json.dumps(data, indent=2) + "\n").encode("utf-8")

    def write(file: BinaryIO) -> None:
        file.write(text)

    save_atomically(path, write)


def compare(before: Peaks, now: Peaks, tolerance: Tolerance) -> str | None:
    """The table of the peaks that grew past *tolerance*, or ``None`` if none did.

    A component the baseline does not hold grew from nothing; one that vanished did not
    grow.
    """
    pairs = [("total", before.total, now.total)] + [
        (name, before.components.get(name, 0), peak)
        for name, peak in sorted(now.components.items())
    ]
    grown = [(name, old, new) for name, old, new in pairs if not tolerance.allows(old, new)]
    if not grown:
        return None
    rows = [
        [
            name,
            f"{old:,}",
            f"{new:,}",
            f"{new - old:+,}",
            f"{100 * (new - old) / old:+.0f}%" if old else "new",
        ]
        for name, old, new in grown
    ]
    return render_table(
        ["peak in use", "baseline bytes", "now bytes", "growth bytes", "growth"],
        rows,
        right="1234",
    )
