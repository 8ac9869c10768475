"""``memactor snapshot``: run as a program against a server in this test's process."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import trio

import memactor
from memactor import MemactorError, Snapshot
from memactor.cli import main
from memactor.metrics import diff
from memactor.remote import open_server

LIMIT_S = 60  # generous: a bound on a hang, never a timing assertion


@pytest.fixture
def runtime(socket_dir: Path) -> Path:
    """A private runtime directory."""
    return socket_dir


async def memactor_snapshot(runtime: Path, *args: str, token: str = "") -> tuple[int, str, str]:
    """Run ``memactor snapshot`` in a child process, this test's server still serving."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("MEMACTOR_TOKEN", None)
    if token:
        env["MEMACTOR_TOKEN"] = token
    with trio.fail_after(LIMIT_S):
        done = await trio.run_process(
            [sys.executable, "-m", "memactor.cli", "snapshot", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_it_saves_the_snapshot_of_the_only_server(
    runtime: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    async with memactor.open_system() as system:
        loader = system.reporter("loader")
        for block in range(1, 11):
            loader.alloc(block, 1024)
        async with open_server(system, name="pipeline") as server:
            target = tmp_path / "now.msgpack"
            code, out, err = await memactor_snapshot(runtime, "-o", str(target), "--label", "a")
            assert (code, err) == (0, "")
            assert out == (
                f"saved {target}: snapshot 'a' of pipeline (pid {os.getpid()}) at "
                f"{server.address}: 1 component, 10 live blocks, 10 KiB in use\n"
            )
            own = await system.metrics.snapshot("own")
            with pytest.raises(MemactorError, match=r"^no snapshot labelled 'a'"):
                await system.metrics.diff("a", "own")  # the label is the viewer's own
            assert diff(Snapshot.load(target), own).suspects == ()
    saved = Snapshot.load(target)
    assert (saved.label, saved.totals, saved.components) == ("a", own.totals, own.components)
    assert len(saved.blocks) == 10


async def test_json_without_blocks_over_tcp_with_a_token(runtime: Path, tmp_path: Path) -> None:
    async with memactor.open_system() as system:
        system.reporter("loader").alloc(1, 2048)
        async with open_server(system, ":0", token="s3cret") as server:
            target = tmp_path / "now.data"
            args = (server.address, "-o", str(target), "--no-blocks", "--format", "json")
            code, out, err = await memactor_snapshot(runtime, *args, token="s3cret")
            assert (code, err) == (0, "")
            assert out.endswith(": 1 component, 2 KiB in use\n")
            code, out, err = await memactor_snapshot(runtime, *args, "--token", "wrong")
            assert (code, out) == (2, "")
            assert err == (
                f"memactor snapshot: {server.address} refused the connection: "
                "the token was refused\n"
            )
            code, out, err = await memactor_snapshot(runtime, *args)
            assert code == 2
            assert err.endswith(
                "refused the connection: this server needs a token "
                "(--token-file, MEMACTOR_TOKEN or --token)\n"
            )
    assert target.read_bytes().startswith(b"{")
    assert len(Snapshot.load(target).blocks) == 0


async def test_several_servers_must_be_named(runtime: Path, tmp_path: Path) -> None:
    (runtime / "memactor").mkdir()
    async with (
        memactor.open_system() as system,
        open_server(system, str(runtime / "memactor" / "1.sock")) as one,
        open_server(system, str(runtime / "memactor" / "2.sock")) as two,
    ):
        code, out, err = await memactor_snapshot(runtime, "-o", str(tmp_path / "x"))
    assert (code, out) == (2, "")
    assert err == (
        f"memactor snapshot: 2 memactor servers are running; name one: {one.address}, "
        f"{two.address}\n"
    )
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], r"no memactor server is running \(none in /.*/memactor\); serve one with"),
        (["unix:/nonexistent/app.sock"], r"cannot connect to unix:/nonexistent/app.sock: No such"),
        (["nowhere"], r"'nowhere' is not an address"),
        ([":1", "--timeout", "0"], r"--timeout must be a positive number of seconds, got 0.0"),
    ],
)
def test_user_errors_exit_2_with_a_message(
    runtime: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert main(["snapshot", *args, "-o", str(tmp_path / "x.msgpack")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("memactor snapshot: ")
    assert re.search(message, captured.err)


async def test_an_unwritable_output_is_named(runtime: Path) -> None:
    async with (
        memactor.open_system() as system,
        open_server(system, str(runtime / "app.sock")) as server,
    ):
        args = (server.address, "-o", str(runtime / "missing" / "x.msgpack"))
        code, _, err = await memactor_snapshot(runtime, *args)
    assert code == 2
    target = runtime / "missing" / "x.msgpack"
    assert err == f"memactor snapshot: cannot write {target}: No such file or directory\n"


def test_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["snapshot", "--help"])
    out = capsys.readouterr().out
    assert "Save a snapshot of a running program's memory" in out
    assert "memactor snapshot unix:/run/user/1000/memactor/4242.sock -o before.msgpack" in out


async def test_a_token_file_is_read_and_the_token_never_shown(
    runtime: Path, tmp_path: Path
) -> None:
    secret = "k3y-from-a-file"
    right, wrong = tmp_path / "token", tmp_path / "wrong"
    right.write_text(secret + "\n")
    wrong.write_text("not-" + secret + "\n")
    async with memactor.open_system() as system:
        system.reporter("loader").alloc(1, 2048)
        async with open_server(system, ":0", token=secret) as server:
            target = tmp_path / "now.json"
            args = (server.address, "-o", str(target))
            code, out, err = await memactor_snapshot(runtime, *args, "--token-file", str(right))
            assert (code, err) == (0, "")
            refused = await memactor_snapshot(runtime, *args, "--token-file", str(wrong))
            assert refused[0] == 2
            assert refused[2].endswith("refused the connection: the token was refused\n")
    everything = out + err + refused[1] + refused[2] + target.read_text()
    assert secret not in everything
