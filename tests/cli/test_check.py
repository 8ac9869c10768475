"""``memactor check``: peaks against budgets, every exit code, and the budget syntax."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memactor import EventKind, Ledger, MemoryEvent
from memactor.cli._check import Budget, budget_argument

from .helpers import memactor

MiB = 1 << 20


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Peaks in use: decode 3 MiB; pool 1 MiB (reserving 4 MiB); gpu 2 MiB on cuda:0
    and 1 MiB on cpu; in total 5 MiB (decode and gpu@cuda:0 at once)."""
    ledger = Ledger(clock=lambda: 0)

    def event(
        kind: EventKind, component: str, block: int, size: int, device: str = "cpu"
    ) -> MemoryEvent:
        return MemoryEvent(kind, component, block, size, device=device, owner="w", timestamp_ns=0)

    ledger.apply(
        [
            event(EventKind.ALLOC, "decode", 1, 3 * MiB),
            event(EventKind.ALLOC, "gpu", 1, 2 * MiB, "cuda:0"),
            event(EventKind.FREE, "decode", 1, 3 * MiB),
            event(EventKind.FREE, "gpu", 1, 2 * MiB, "cuda:0"),
            event(EventKind.ALLOC, "gpu", 2, MiB),
            event(EventKind.FREE, "gpu", 2, MiB),
        ]
        + [
            e
            for block in range(1, 5)
            for e in (
                event(EventKind.ALLOC, "pool", block, MiB),
                event(EventKind.RELEASE, "pool", block, MiB),
            )
        ]
    )
    return ledger.snapshot("end").save(tmp_path_factory.mktemp("check") / "end.msgpack")


def test_within_budget_exits_0_with_a_table(snapshot_file: Path) -> None:
    result = memactor(
        "check",
        snapshot_file,
        "--budget",
        "decode=3MiB",
        "--budget",
        "pool=1.5M",
        "--budget",
        "total=8M",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        'memactor check "end": peak in use against budgets\n'
        "\n"
        "component  device  peak in use   budget  used  headroom  verdict\n"
        "---------  ------  -----------  -------  ----  --------  -------\n"
        "decode     cpu           3 MiB    3 MiB  100%       0 B  ok\n"
        "pool       cpu           1 MiB  1.5 MiB   67%  +512 KiB  ok\n"
        "total      all           5 MiB    8 MiB   62%    +3 MiB  ok\n"
        "\n"
        "verdict: within budget (3 checked)\n"
    )


def test_a_peak_over_its_budget_exits_1(snapshot_file: Path) -> None:
    result = memactor("check", snapshot_file, "--budget", "gpu=1.5MiB", "--budget", "*=5MiB")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    # A component on two devices is checked on each.
    assert "gpu        cpu           1 MiB  1.5 MiB   67%  +512 KiB  ok" in lines
    assert "gpu        cuda:0        2 MiB  1.5 MiB  133%  -512 KiB  OVER" in lines
    assert "total      all           5 MiB    5 MiB  100%       0 B  ok" in lines
    assert lines[-1] == "verdict: OVER BUDGET in 1 of 3"


def test_devices_and_reserved_bytes(snapshot_file: Path) -> None:
    one_device = memactor(
        "check", snapshot_file, "--budget", "gpu@cpu=1MiB", "--budget", "total@cuda:0=2M"
    )
    assert one_device.returncode == 0, one_device.stdout
    # The pool's cache counts only when reserved bytes are checked.
    assert memactor("check", snapshot_file, "--budget", "pool=1MiB").returncode == 0
    reserved = memactor("check", snapshot_file, "--budget", "pool=1MiB", "--reserved")
    assert reserved.returncode == 1
    assert "component  device  peak reserved  budget  used  headroom  verdict" in reserved.stdout


def test_json_has_exact_bytes(snapshot_file: Path) -> None:
    result = memactor(
        "check", snapshot_file, "--budget", "gpu=1.5MiB", "--budget", "total=9M", "--format", "json"
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["measure"] == "peak_bytes_in_use"
    assert report["budgets"] == [
        {
            "component": "gpu",
            "device": "cpu",
            "peak_bytes": MiB,
            "budget_bytes": 3 * MiB // 2,
            "over": False,
        },
        {
            "component": "gpu",
            "device": "cuda:0",
            "peak_bytes": 2 * MiB,
            "budget_bytes": 3 * MiB // 2,
            "over": True,
        },
        {
            "component": "*",
            "device": "*",
            "peak_bytes": 5 * MiB,
            "budget_bytes": 9 * MiB,
            "over": False,
        },
    ]
    assert report["over_budget"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--budget", "decoder=1MiB"],
            "memactor check: unknown component 'decoder' in the snapshot "
            "(components: decode@cpu, gpu@cpu, gpu@cuda:0, pool@cpu)\n",
        ),
        (
            ["--budget", "total@cuda:1=1MiB"],
            "memactor check: no device 'cuda:1' in the snapshot (devices: cpu, cuda:0)\n",
        ),
        (
            ["--budget", "pool=1M", "--budget", "pool=2M"],
            "memactor check: two budgets for 'pool'; give each one once\n",
        ),
        (
            ["--budget", "pool"],
            "*argument --budget: cannot read budget 'pool': write COMPONENT=SIZE*",
        ),
        (
            ["--budget", "pool=lots"],
            "*argument --budget: budget 'pool=lots': cannot read 'lots' as a size*",
        ),
        ([], "*the following arguments are required: --budget*"),
    ],
)
def test_bad_budgets_exit_2_and_say_why(snapshot_file: Path, args: list[str], message: str) -> None:
    result = memactor("check", snapshot_file, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    if message.startswith("*"):
        assert message.strip("*") in result.stderr
    else:
        assert result.stderr == message


def test_an_unreadable_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "end.json"
    path.write_text('{"memactor": 1, "type": "snapshot", "label": 3}')
    result = memactor("check", path, "--budget", "pool=1M")
    assert result.returncode == 2
    assert result.stderr.startswith(f"memactor check: cannot read a snapshot from {path}: ")


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("pool=64MiB", Budget("pool", None, 64 * MiB)),
        ("gpu@cuda:0=1G", Budget("gpu", "cuda:0", 1 << 30)),
        ("total=1", Budget(None, None, 1)),
        ("*@cpu=1", Budget(None, "cpu", 1)),
        ("a=b=2", Budget("a=b", None, 2)),
        ("user@example=2", Budget("user@example", None, 2)),
    ],
)
def test_budget_syntax(text: str, budget: Budget) -> None:
    assert budget_argument(text) == budget


def test_budgets_are_projected_over_the_series(tmp_path: Path) -> None:
    """``index`` keeps 4 KiB every 100 ms for 2 s: 40 KiB/s toward its budget."""
    now = [0]
    ledger = Ledger(clock=lambda: now[0])
    for step in range(20):
        now[0] = step * 100_000_000
        ledger.apply(
            [MemoryEvent(EventKind.ALLOC, "index", step, 4096, owner="w", timestamp_ns=now[0])]
        )
        ledger.sample()
    path = ledger.snapshot("end").save(tmp_path / "growing.msgpack")
    result = memactor("check", path, "--budget", "index=1MiB")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(
        "\nprojections:\n  index on cpu: 80 KiB in use of its 1 MiB budget: reaches it in about "
        "24 s at +40 KiB/s (line fit over the last 1 s, 10 points; 95% range 24 s to 24 s)\n"
    )
    report = json.loads(
        memactor("check", path, "--budget", "index=1MiB", "--format", "json").stdout
    )
    (projection,) = report["projections"]
    assert (projection["measure"], projection["limit_name"]) == ("in_use", "budget")
    assert projection["seconds_to_limit"] == pytest.approx(944 / 40, rel=0.01)
