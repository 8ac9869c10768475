"""``memactor report``: a snapshot file's report as text or JSON, and unreadable files."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import pytest

from memactor import EventKind, Ledger, MemoryEvent, Snapshot
from memactor.cli._output import highlighted
from memactor.runtime import MemoryHub

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


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_colour_only_when_asked_or_forced(snapshot_file: Path) -> None:
    plain = memactor("report", snapshot_file).stdout
    assert "\x1b" not in plain
    assert memactor("report", snapshot_file, "--color", "never").stdout == plain
    always = ["--color", "always"]
    coloured = memactor("report", snapshot_file, *always, env={"NO_COLOR": "1", "TERM": "dumb"})
    assert "\x1b[1mcomponent" in coloured.stdout  # the table's header, bold
    assert "leak verdict: \x1b[32mno steady growth\x1b[0m in 2 components" in coloured.stdout
    # FORCE_COLOR colours a pipe as --color always does; --color never still wins.
    forced = memactor("report", snapshot_file, env={"FORCE_COLOR": "1"}).stdout
    assert "\x1b[32mno steady growth\x1b[0m" in forced
    assert ANSI.sub("", forced) == plain
    never = memactor("report", snapshot_file, "--color", "never", env={"FORCE_COLOR": "1"})
    assert never.stdout == plain


def report_in_a_terminal(path: Path, columns: int, env: dict[str, str]) -> str:
    """``memactor report PATH`` with a terminal of *columns* x 24 as stdin and stdout."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    unset = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR")
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    chunks = []
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "memactor", "report", str(path)],
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.PIPE,
            env={**environ, "TERM": "xterm-256color", **env},
        ) as process:
            os.close(terminal)
            while True:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the command closed its end of the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            assert process.wait(timeout=60) == 0
    finally:
        os.close(controller)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_on_a_terminal_the_tables_fit_its_width_and_are_coloured(snapshot_file: Path) -> None:
    wide = memactor("report", snapshot_file).stdout.splitlines()
    rule = next(index for index, line in enumerate(wide) if line.startswith("---"))
    table = wide[rule - 1 : rule + 4]
    assert len(table[0]) > 80  # too wide for 80 columns as a file ...
    shown = report_in_a_terminal(snapshot_file, 80, {})
    assert "\x1b[32mno steady growth\x1b[0m" in shown
    lines = ANSI.sub("", shown).splitlines()
    rule = next(index for index, line in enumerate(lines) if line.startswith("---"))
    narrow = lines[rule - 2 : lines.index("", rule)]
    assert all(len(line) <= 80 for line in narrow), narrow  # ... but not on a terminal of 80
    # Nothing is cut: every word of the wide table is in the narrow one.
    words = {word for line in table for word in line.split() if not word.startswith("-")}
    assert words <= set(" ".join(narrow).split())
    without = report_in_a_terminal(snapshot_file, 80, {"NO_COLOR": "1"})
    assert "31m" not in without  # NO_COLOR: no colour (bold headers remain)
    assert ANSI.sub("", without) == ANSI.sub("", shown)


def test_highlighted_styles_verdicts_and_headers_only() -> None:
    text = "a  b\n-  -\nverdict: LEAK SUSPECTED in 1 component\nverdict: no leak suspected\n"
    styled = highlighted(text)
    assert styled.plain == text
    assert [(text[span.start : span.end], str(span.style)) for span in styled.spans] == [
        ("LEAK SUSPECTED", "bold red"),
        ("no leak suspected", "green"),
        ("a  b", "bold"),
    ]


def sited_snapshot_file(folder: Path) -> tuple[Path, int]:
    """A snapshot of three allocations from two lines of this file, sites on; and the
    line of the first."""
    hub = MemoryHub(callsites=True)
    reporter = hub.reporter("decode")
    line = sys._getframe().f_lineno + 2
    for block in range(2):
        reporter.alloc(block, MiB)
    reporter.alloc(9, 4096)
    ledger = Ledger(sites=hub.sites)
    for batch in hub.collect().batches:
        ledger.apply(batch.events)
    return ledger.snapshot("sited").save(folder / "sited.msgpack"), line


def test_report_lists_the_sites_that_hold_the_most(tmp_path: Path) -> None:
    path, line = sited_snapshot_file(tmp_path)
    here = Path(__file__).resolve().relative_to(Path.cwd().resolve())
    result = memactor("report", path, "--sites", "1")
    assert result.returncode == 0, result.stderr
    assert (
        f"in use by site (top 1 of 2):\n  {here}:{line} in sited_snapshot_file: 2 MiB in 2 blocks\n"
    ) in result.stdout
    everything = json.loads(memactor("report", path, "--format", "json").stdout)
    assert [(s["line"], s["bytes_in_use"]) for s in everything["sites"]] == [
        (line, 2 * MiB),
        (line + 1, 4096),
    ]
    bad = memactor("report", path, "--sites", "many")
    assert bad.returncode == 2
    assert "expected a whole number of sites, got 'many'" in bad.stderr


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
