"""``memactor top``: the real command in a real terminal (tmux), against a served demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import memactor

TMUX = shutil.which("tmux")


def test_top_without_a_server_says_none_runs(socket_dir: Path) -> None:
    result = memactor("top", env={"XDG_RUNTIME_DIR": str(socket_dir)})
    assert result.returncode == 2
    assert result.stderr.startswith("memactor top: no memactor server is running")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tcp://nowhere"], "memactor top: "),
        (["unix:/tmp/x.sock", "--rate", "0"], "memactor top: --rate must be above 0"),
        (["unix:/tmp/x.sock", "--rate", "5000"], "memactor top: --rate must be above 0"),
    ],
)
def test_top_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = memactor("top", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)


def wait_until(check: object, what: str, timeout_s: float = 60.0) -> None:
    """Poll *check* until it is true; the deadline only bounds a broken run."""
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]  # a callable, typed loosely
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_top_in_a_terminal_shows_the_served_demo(socket_dir: Path) -> None:
    assert TMUX is not None
    sock = socket_dir / "demo.sock"
    address = f"unix:{sock}"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(socket_dir), "TERM": "xterm-256color"}
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memactor",
            "demo",
            "--headless",
            "--leak",
            "--serve",
            address,
            "--seconds",
            "120",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    tmux = [TMUX, "-S", str(socket_dir / "tmux"), "-f", os.devnull]
    status = socket_dir / "status"
    try:
        wait_until(sock.exists, "the demo to serve")
        top = f"{sys.executable} -m memactor top {address}; echo $? > {status}"
        subprocess.run(
            [*tmux, "new-session", "-d", "-x", "140", "-y", "45", "sh", "-c", top],
            env=env,
            check=True,
        )

        def screen() -> str:
            return subprocess.run(
                [*tmux, "capture-pane", "-p"], capture_output=True, text=True, check=False
            ).stdout

        wait_until(lambda: "enrich" in screen(), "the components to show")
        text = screen()
        assert "connected" in text
        assert f"memactor (pid {demo.pid} on" in text
        assert f"at {address}" in text
        for component in ("pool", "gpu"):
            assert component in text
        subprocess.run([*tmux, "send-keys", "s"], check=True)  # a snapshot, taken in the demo
        subprocess.run([*tmux, "send-keys", "4"], check=True)  # the events view
        wait_until(lambda: "snap-1" in screen(), "the snapshot to be listed")
        subprocess.run([*tmux, "send-keys", "q"], check=True)
        wait_until(status.exists, "top to exit")
        assert status.read_text().strip() == "0"
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)
        demo.terminate()
        demo.wait(timeout=30)
