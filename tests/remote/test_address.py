"""Addresses: one parser for every form, the runtime directory, finding live servers."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from memactor.remote import (
    RemoteError,
    TcpAddress,
    UnixAddress,
    find_server,
    find_servers,
    parse_address,
    runtime_dir,
)
from memactor.remote._address import default_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unix:/run/user/1000/memactor/42.sock", UnixAddress("/run/user/1000/memactor/42.sock")),
        ("/tmp/app.sock", UnixAddress("/tmp/app.sock")),
        ("./app.sock", UnixAddress("./app.sock")),
        ("tcp://127.0.0.1:7070", TcpAddress("127.0.0.1", 7070)),
        ("TCP://example.org:1", TcpAddress("example.org", 1)),
        ("localhost:7070", TcpAddress("localhost", 7070)),
        (":7070", TcpAddress("127.0.0.1", 7070)),
        ("tcp://:0", TcpAddress("127.0.0.1", 0)),
        ("[::1]:7070", TcpAddress("::1", 7070)),
        ("tcp://[::]:80", TcpAddress("::", 80)),
        ("  :9  ", TcpAddress("127.0.0.1", 9)),
    ],
)
def test_every_form_parses(text: str, expected: UnixAddress | TcpAddress) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("address", "printed"),
    [
        (UnixAddress("/tmp/a.sock"), "unix:/tmp/a.sock"),
        (TcpAddress("127.0.0.1", 7070), "tcp://127.0.0.1:7070"),
        (TcpAddress("::1", 7070), "tcp://[::1]:7070"),
    ],
)
def test_an_address_prints_as_it_parses(address: UnixAddress | TcpAddress, printed: str) -> None:
    assert str(address) == printed
    assert parse_address(printed) == address


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"^the address is empty: give unix:/path, tcp://host:port or :port$"),
        ("unix:", r"^no socket path in 'unix:'$"),
        ("http://example.org:80", r"^unknown address scheme 'http' in 'http://example.org:80'"),
        ("7070", r"^'7070' is not an address: use unix:/path"),
        ("host:port", r"^the port in 'host:port' must be a number from 0 to 65535$"),
        (":70000", r"^the port in ':70000' must be a number from 0 to 65535$"),
        ("::1:7070", r"^put the IPv6 host in brackets: \[::1\]:7070$"),
        ("[::1]7070", r"^expected \[host\]:port in '\[::1\]7070'$"),
        ("/" + "x" * 120, r"^the socket path in '/x+' is longer than 107 bytes"),
    ],
)
def test_a_bad_address_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_address(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.2", False),
        ("example.org", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert TcpAddress(host, 1).is_loopback is loopback


def test_the_runtime_directory_prefers_xdg(
    socket_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(socket_dir))
    assert runtime_dir() == socket_dir / "memactor"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(socket_dir / "missing"))
    assert runtime_dir().name == f"memactor-{os.getuid()}"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert runtime_dir().name == f"memactor-{os.getuid()}"


def test_the_default_address_is_this_pid_in_a_private_directory(runtime: Path) -> None:
    address = default_address()
    assert address == UnixAddress(str(runtime / f"{os.getpid()}.sock"))
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    runtime.chmod(0o755)  # loosened by someone: tightened again
    default_address()
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700


def test_a_runtime_directory_that_is_not_a_directory_is_refused(runtime: Path) -> None:
    runtime.write_text("not a directory")
    with pytest.raises(RemoteError, match=r"is not a directory of this user's"):
        default_address()


def listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen()
    return sock


def test_find_servers_lists_live_sockets_and_skips_stale_ones(runtime: Path) -> None:
    assert find_servers() == []  # no directory yet
    runtime.mkdir(mode=0o700)
    (runtime / "notes.txt").write_text("not a socket")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(runtime / "1.sock"))
    stale.close()  # bound, never listening: what a dead process leaves
    with listening(runtime / "2.sock"), listening(runtime / "3.sock"):
        assert find_servers() == [f"unix:{runtime / '2.sock'}", f"unix:{runtime / '3.sock'}"]
        with pytest.raises(RemoteError, match=r"^2 memactor servers are running; name one: unix:"):
            find_server()
    with listening(runtime / "4.sock"):
        assert find_server() == f"unix:{runtime / '4.sock'}"
    with pytest.raises(RemoteError, match=r"^no memactor server is running \(none in "):
        find_server()
