"""``memactor top``: the real command in a real terminal (tmux), against a served demo."""

from __future__ import annotations

import os
import pty
import shutil
import socket
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
        (["--wait"], "memactor top: --wait waits for a program at an ADDRESS; give the address"),
    ],
)
def test_top_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = memactor("top", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)


def test_top_without_a_terminal_fails_at_once_in_one_line(socket_dir: Path) -> None:
    result = memactor("top", f"unix:{socket_dir / 'none.sock'}", "--wait")
    assert result.returncode == 2
    assert result.stderr == (
        "memactor top: the live view needs a terminal, and stdin and stdout are not one; "
        f"to save a snapshot instead: memactor snapshot unix:{socket_dir / 'none.sock'} "
        "-o FILE\n"
    )


def in_a_terminal(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``memactor ARGS`` with a pseudo-terminal as stdin and stdout, stderr a pipe."""
    controller, terminal = pty.openpty()
    try:
        return subprocess.run(
            [sys.executable, "-m", "memactor", *args],
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)


def test_top_on_an_address_that_does_not_answer_fails_at_once(socket_dir: Path) -> None:
    sock = socket_dir / "none.sock"
    result = in_a_terminal("top", f"unix:{sock}")
    assert result.returncode == 2
    assert result.stderr == (
        f"memactor top: cannot connect to unix:{sock}: No such file or directory; "
        "start the program first, or pass --wait to wait for it\n"
    )
    with socket.socket(socket.AF_INET) as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: the port refuses
        port = unused.getsockname()[1]
        result = in_a_terminal("top", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stderr.startswith(f"memactor top: cannot connect to 127.0.0.1:{port}")
    assert result.stderr.endswith("; start the program first, or pass --wait to wait for it\n")
    assert result.stderr.count("\n") == 1


def wait_until(check: object, what: str, timeout_s: float = 60.0) -> None:
    """Poll *check* until it is true; the deadline only bounds a broken run."""
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]  # a callable, typed loosely
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def serve_demo(address: str, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    """A headless leaking demo serving at *address* for up to two minutes."""
    argv = ["demo", "--headless", "--leak", "--serve", address, "--seconds", "120", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "memactor", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


class Terminal:
    """A tmux session of 140x45 running one shell command, its exit status in a file."""

    def __init__(self, folder: Path, command: str, env: dict[str, str]) -> None:
        assert TMUX is not None
        self.tmux = [TMUX, "-S", str(folder / "tmux"), "-f", os.devnull]
        self.status = folder / "status"
        script = f"{command}; echo $? > {self.status}"
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-x", "140", "-y", "45", "sh", "-c", script],
            env=env,
            check=True,
        )

    def screen(self) -> str:
        return subprocess.run(
            [*self.tmux, "capture-pane", "-p"], capture_output=True, text=True, check=False
        ).stdout

    def keys(self, keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", keys], check=True)

    def exit_status(self) -> str:
        """Wait for the command to exit; its status."""
        wait_until(self.status.exists, "the command to exit")
        return self.status.read_text().strip()

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, check=False)


def test_top_refused_by_the_server_fails_at_once_in_one_line(socket_dir: Path) -> None:
    sock = socket_dir / "demo.sock"
    demo = serve_demo(f"unix:{sock}", dict(os.environ), "--token", "right")
    try:
        wait_until(sock.exists, "the demo to serve")
        result = in_a_terminal("top", f"unix:{sock}", "--token", "wrong")
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("memactor top: ")
    assert "token" in result.stderr
    assert "wrong" not in result.stderr  # no message quotes a token
    assert result.stderr.count("\n") == 1


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_top_in_a_terminal_shows_the_served_demo(socket_dir: Path) -> None:
    sock = socket_dir / "demo.sock"
    address = f"unix:{sock}"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(socket_dir), "TERM": "xterm-256color"}
    demo = serve_demo(address, env)
    terminal: Terminal | None = None
    try:
        wait_until(sock.exists, "the demo to serve")
        terminal = Terminal(socket_dir, f"{sys.executable} -m memactor top {address}", env)
        wait_until(lambda: "enrich" in terminal.screen(), "the components to show")
        text = terminal.screen()
        assert "connected" in text
        assert f"memactor (pid {demo.pid} on" in text
        assert f"at {address}" in text
        for component in ("pool", "gpu"):
            assert component in text
        terminal.keys("s")  # a snapshot, taken in the demo
        terminal.keys("4")  # the events view
        wait_until(lambda: "snap-1" in terminal.screen(), "the snapshot to be listed")
        terminal.keys("q")
        assert terminal.exit_status() == "0"
    finally:
        if terminal is not None:
            terminal.close()
        demo.terminate()
        demo.wait(timeout=30)


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_top_with_wait_watches_a_program_that_starts_later(socket_dir: Path) -> None:
    sock = socket_dir / "later.sock"
    address = f"unix:{sock}"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(socket_dir), "TERM": "xterm-256color"}
    terminal = Terminal(socket_dir, f"{sys.executable} -m memactor top --wait {address}", env)
    demo: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: "cannot connect" in terminal.screen(), "the view to say it waits")
        assert not terminal.status.exists()  # still retrying, not failed
        demo = serve_demo(address, env)
        wait_until(lambda: "enrich" in terminal.screen(), "the components to show")
        assert f"memactor (pid {demo.pid} on" in terminal.screen()
        terminal.keys("q")
        assert terminal.exit_status() == "0"
    finally:
        terminal.close()
        if demo is not None:
            demo.terminate()
            demo.wait(timeout=30)
