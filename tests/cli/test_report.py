"""``memactor report``: a snapshot file's report as text or JSON, and unreadable files."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from memactor import EventKind, Ledger, MemoryEvent, Snapshot
from memactor.cli._output import highlight, wants_color

from .helpers import memactor

MiB = 1 << 20


def seeded_snapshot() -> Snapshot:
    """A pool that caches, a decoder that frees, an indexer that keeps: 2 s of samples."""
    now = [0]
    ledger = Ledger(clock=lambda: now[0])

    def event(kind: EventKind, component: str, block: int, size: int, owner: str) -> MemoryEvent:
        return MemoryEvent(kind, component, block, size, owner=owner, timestamp_ns=now[0])

    for step in range(20):
        now[0] = step * 100_000_000
        ledger.apply(
            [
                event(EventKind.ALLOC, "decode", step, MiB, "decoder"),
                event(EventKind.FREE, "decode", step, MiB, "decoder"),
                event(EventKind.ALLOC, "index", step, 4096, "indexer"),
            ]
        )
        ledger.sample()
    ledger.apply(
        [
            event(EventKind.ALLOC, "pool", 1, 2 * MiB, "decoder"),
            event(EventKind.RELEASE, "pool", 1, 2 * MiB, "decoder"),
        ]
    )
    return ledger.snapshot("end")


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_snapshot().save(tmp_path_factory.mktemp("report") / "end.msgpack")


def test_text_report_of_a_real_file(snapshot_file: Path) -> None:
    result = memactor("report", snapshot_file)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == 'memactor snapshot "end": 80 KiB in use, 2.1 MiB reserved, 21 live blocks'
    assert (
        "index      cpu     80 KiB       80 KiB    80 KiB         80 KiB      20      20"
        "     0          0" in lines
    )
    assert any(line.startswith("leak verdict:") for line in lines)
    assert "\x1b" not in result.stdout  # piped: plain text
    assert result.stderr == ""


def test_json_report_keeps_exact_numbers(snapshot_file: Path, tmp_path: Path) -> None:
    snapshot = Snapshot.load(snapshot_file)
    json_file = snapshot.save(tmp_path / "end.json")
    for path in (snapshot_file, json_file):
        result = memactor("report", path, "--format", "json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["file"] == str(path)
        assert report["totals"]["bytes_in_use"] == 20 * 4096
        assert report["totals"]["peak_bytes_in_use"] == snapshot.totals.peak_bytes_in_use
        pool = next(c for c in report["components"] if c["component"] == "pool")
        assert (pool["bytes_reserved"], pool["bytes_in_use"]) == (2 * MiB, 0)
        assert [t["component"] for t in report["trends"]] == ["decode", "index"]
        assert isinstance(report["leak_suspected"], bool)


def _halved(good: bytes) -> bytes:
    return good[: len(good) // 2]


DAMAGED: dict[str, Callable[[bytes], bytes]] = {
    "truncated": _halved,
    "random bytes": lambda good: bytes(range(7, 250, 3)) * 4,
    "empty": lambda good: b"",
    "json of the wrong shape": lambda good: b'{"components": []}',
    "broken json": lambda good: b'{"memactor": 1, "type": ',
    "json not utf-8": lambda good: b'{"label": "\xff\xfe"}',
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_file_exits_2_naming_it(damage: str, snapshot_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "damaged.msgpack"
    path.write_bytes(DAMAGED[damage](snapshot_file.read_bytes()))
    result = memactor("report", path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"memactor report: cannot read a snapshot from {path}: ")
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "problem"), [("missing.msgpack", "no such file"), ("", "it is a directory")]
)
def test_a_missing_file_or_a_directory_exits_2(name: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / name
    result = memactor("report", path)
    assert result.returncode == 2
    assert result.stderr == f"memactor report: cannot read a snapshot from {path}: {problem}\n"


def test_colour_only_when_asked_or_on_a_terminal(
    snapshot_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    coloured = memactor("report", snapshot_file, "--color", "always")
    assert "\x1b[1mcomponent" in coloured.stdout
    assert (
        memactor("report", snapshot_file, "--color", "never").stdout
        == memactor("report", snapshot_file).stdout
    )

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_color("auto", Terminal())
    assert not wants_color("auto", io.StringIO())
    assert not wants_color("never", Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_color("auto", Terminal())
    assert wants_color("always", io.StringIO())


def test_highlight_colours_verdicts_and_headers_only() -> None:
    text = "a  b\n-  -\nverdict: LEAK SUSPECTED in 1 component\nverdict: no leak suspected\n"
    assert highlight(text) == (
        "\x1b[1ma  b\x1b[0m\n-  -\n"
        "verdict: \x1b[1;31mLEAK SUSPECTED\x1b[0m in 1 component\n"
        "verdict: \x1b[32mno leak suspected\x1b[0m\n"
    )


def test_limits_are_projected_in_text_and_json(snapshot_file: Path) -> None:
    result = memactor("report", snapshot_file, "--limit", "index=1MiB", "--limit", "*=1GiB")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # 4 KiB every 100 ms: 40 KiB/s on an exact line, 944 KiB from 80 KiB to the cap.
    start = lines.index("projections:")
    assert lines[start + 1] == (
        "  index on cpu: 80 KiB reserved of its 1 MiB cap: reaches it in about 24 s at "
        "+40 KiB/s (line fit over the last 1 s, 10 points; 95% range 24 s to 24 s)"
    )
    assert lines[start + 2].startswith("  everything: 2.1 MiB reserved of its 1 GiB limit: ")
    assert any(line.startswith("leaks: ") for line in lines)
    report = json.loads(
        memactor("report", snapshot_file, "--limit", "index=1MiB", "--format", "json").stdout
    )
    (projection,) = report["projections"]
    assert projection["seconds_to_limit"] == pytest.approx(944 / 40, rel=0.01)
    assert isinstance(report["leak_flagged"], bool)
    bad = memactor("report", snapshot_file, "--limit", "index")
    assert bad.returncode == 2
    assert "a limit is COMPONENT[@DEVICE]=SIZE, like 'pool=1GiB', not 'index'" in bad.stderr
