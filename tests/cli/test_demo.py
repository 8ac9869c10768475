"""The demo: a real pipeline, its exact accounting, its verdicts and its command line."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from memactor import Snapshot, __version__
from memactor.cli import main
from memactor.cli._pipeline_demo import HEADER_BYTES, LEAK_EVERY, run_pipeline_demo
from memactor.metrics import find_growth
from memactor.remote import Connection, RemoteError, connect


async def test_the_leak_is_named_by_the_diff_and_the_books_are_exact() -> None:
    run = await run_pipeline_demo(items=60, leak=True)
    assert run.frames == 60
    end = run.end
    assert [s.component for s in run.change.suspects] == ["enrich"]
    # What is in use at the end is exactly the headers enrich never let go.
    assert end.component("enrich").bytes_in_use == (60 // LEAK_EVERY) * HEADER_BYTES
    assert end.totals.bytes_in_use == end.component("enrich").bytes_in_use
    # The pool lends nothing any more; what it reserves is its cache, to the byte.
    pool = end.component("pool")
    assert pool.bytes_in_use == 0
    rows = end.blocks.rows_of("pool", "cpu")
    assert pool.bytes_reserved == int(end.blocks.size[rows].sum())
    assert not end.blocks.in_use[rows].any()
    assert (end.totals.anomalies, end.totals.malformed, end.totals.events_dropped) == (0, 0, 0)


async def test_without_the_leak_everything_comes_back() -> None:
    run = await run_pipeline_demo(items=40)
    assert run.change.suspects == ()
    assert run.end.totals.bytes_in_use == 0
    assert {c.component for c in run.end.components} == {"enrich", "gpu", "pool"}
    # The host backend says "cpu"; on a GPU machine the buffers are on "cuda:0", and each
    # copy counts on the device it leaves from.
    accounts = [c for c in run.end.components if c.component == "gpu"]
    (gpu,) = [c for c in accounts if c.allocations]
    assert gpu.device == "cpu" or gpu.device.startswith("cuda:")
    assert (gpu.bytes_in_use, gpu.allocations, gpu.frees) == (0, 40, 40)
    assert sum(c.transfers for c in accounts) == 80


async def test_same_seed_same_frames() -> None:
    first = await run_pipeline_demo(items=5, seed=3)
    second = await run_pipeline_demo(items=5, seed=3)
    assert first.checksum == second.checksum


async def test_over_seconds_the_trend_names_the_leaking_stage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Six seconds of trio time, whatever the machine's load: a frame every 20 ms, events
    # stamped and samples taken (10 Hz) on the mock clock, no worker threads.
    def trio_clock_ns() -> int:
        return round(trio.current_time() * 1e9)

    run = await run_pipeline_demo(
        seconds=6,
        leak=True,
        frame_interval_s=0.02,
        threads=False,
        system_options={"clock": trio_clock_ns},
    )
    assert run.frames == 300
    growing = [t.component for t in find_growth(run.end) if t.growing]
    assert growing == ["enrich"]


def test_demo_command_prints_both_verdicts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "end.msgpack"
    code = main(["demo", "--headless", "--items", "30", "--leak", "--save", str(target)])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("memactor demo: running the pipeline for 30 frames with a leak\n")
    assert "verdict: LEAK SUSPECTED in 1 component\n  enrich@cpu" in out
    assert Snapshot.load(target).label == "end"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seconds", "0"], "--seconds must be above 0 and at most 3600"),
        (["--seconds", "nan"], "--seconds must be above 0 and at most 3600"),
        (["--seconds", "1e9"], "--seconds must be above 0 and at most 3600"),
        (["--items", "0"], "--items must be at least 1, got 0"),
    ],
)
def test_demo_rejects_bad_arguments(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--headless", *args]) == 2
    assert message in capsys.readouterr().err


def test_console_script_version_and_help() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "memactor.cli", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"memactor {__version__}"
    usage = subprocess.run(
        [sys.executable, "-m", "memactor.cli", "--help"], capture_output=True, text=True
    )
    assert usage.returncode == 0
    assert "demo" in usage.stdout


def test_demo_refuses_a_bad_serve_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--headless", "--serve", "tcp://nowhere"]) == 2
    assert capsys.readouterr().err.startswith("memactor demo: ")


def test_headless_demo_says_why_it_cannot_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each fails inside the memory system's nursery: a message and exit 2, no traceback.
    not_a_socket = tmp_path / "notes.txt"
    not_a_socket.write_text("mine")
    for address, why in [
        ("tcp://0.0.0.0:0", "needs a token"),
        (str(not_a_socket), "exists and is not a socket"),
    ]:
        assert main(["demo", "--headless", "--items", "5", "--serve", address]) == 2
        err = capsys.readouterr().err
        assert err.startswith("memactor demo: ")
        assert why in err
        assert "Traceback" not in err


def test_headless_demo_serves_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = "tcp://127.0.0.1:0"
    assert main(["demo", "--headless", "--items", "40", "--serve", address]) == 0
    out = capsys.readouterr().out
    assert "serving on tcp://127.0.0.1:" in out
    assert "watch with: memactor top tcp://127.0.0.1:" in out
    assert "40 frames in" in out


@pytest.mark.parametrize(
    ("where", "problem"),
    [("/nonexistent/end.msgpack", "no directory /nonexistent"), ("/", "it is a directory")],
)
def test_a_bad_save_path_is_refused_before_the_run(
    where: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--headless", "--items", "5", "--save", where]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"memactor demo: cannot save to {where}: {problem}\n"
    assert "running the pipeline" not in captured.out


def test_an_interrupted_demo_says_so_without_a_traceback(tmp_path: Path) -> None:
    # Started with SIGINT ignored, as a shell starts a job with '&' (and as some test
    # runners start their workers): the demo handles it all the same.
    saved = tmp_path / "end.json"
    demo = subprocess.Popen(
        [*DEMO, "--headless", "--seconds", "60", "--save", str(saved)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert demo.stdout is not None
    assert demo.stdout.readline().startswith("memactor demo: running the pipeline")
    demo.send_signal(signal.SIGINT)
    _, err = demo.communicate(timeout=60)
    assert demo.returncode == 130
    assert err == "memactor demo: interrupted\n"
    assert Snapshot.load(saved).label == "end"  # written before exiting


DEMO = (sys.executable, "-m", "memactor", "demo")


async def _views_until_closed(viewer: Connection) -> None:
    while True:
        await viewer.receive_view()


@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGTERM, 143, "terminated")])
async def test_a_stop_signal_closes_the_served_demo_cleanly(
    socket_dir: Path, tmp_path: Path, signum: int, code: int, word: str
) -> None:
    socket, saved = socket_dir / "demo.sock", tmp_path / "end.msgpack"
    demo = subprocess.Popen(
        [*DEMO, "--headless", "--seconds", "60", "--serve", str(socket), "--save", str(saved)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stdout is not None
        assert demo.stdout.readline().startswith("memactor demo: running the pipeline")
        assert demo.stdout.readline().startswith(f"serving on unix:{socket}")
        with trio.fail_after(30):
            async with connect(f"unix:{socket}") as viewer:
                await viewer.subscribe(10.0)
                await viewer.receive_view()
                demo.send_signal(signum)
                with pytest.raises(RemoteError, match=r"closed the connection: .*closing"):
                    await _views_until_closed(viewer)
        out, err = demo.communicate(timeout=30)
    finally:
        demo.kill()
    assert (demo.returncode, err) == (code, f"memactor demo: {word}\n")
    assert out == f"snapshot saved to {saved}\n"
    assert Snapshot.load(saved).label == "end"
    assert not socket.exists()
