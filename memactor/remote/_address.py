"""Where a metrics server listens: address syntax, the runtime directory, finding servers.

Every address a user types goes through :func:`parse_address`:

- ``unix:/path/to.sock`` or a bare path containing ``/`` (``./app.sock``): a Unix socket;
- ``tcp://host:port``, ``host:port`` or ``:port`` (loopback): TCP. An IPv6 host goes in
  brackets (``[::1]:7070``).

A server given no address listens on ``<runtime dir>/<pid>.sock``; :func:`find_servers`
lists the live sockets there, so that ``memactor top`` and ``memactor snapshot`` can
default to the only server running.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._errors import RemoteError

LOOPBACK: Final = "127.0.0.1"
"""The host of ``:port``."""
MAX_UNIX_PATH_BYTES: Final = 107
"""The longest Unix socket path Linux accepts (``sun_path`` is 108 bytes with its NUL)."""
PROBE_TIMEOUT_S: Final = 0.5

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True, slots=True)
class UnixAddress:
    """A Unix socket path."""

    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


@dataclass(frozen=True, slots=True)
class TcpAddress:
    """A TCP host and port (port 0: any free port, for a server)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can reach it (``localhost``, ``127.x``, ``::1``)."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything


Address = UnixAddress | TcpAddress


def parse_address(text: str) -> Address:
    """Parse an address in any of the forms above; ``ValueError`` says what is wrong."""
    given = text.strip()
    if not given:
        raise ValueError("the address is empty: give unix:/path, tcp://host:port or :port")
    if given.startswith("unix:"):
        return _unix(given[len("unix:") :], text)
    scheme = _SCHEME.match(given)
    if scheme:
        if scheme.group(1).lower() != "tcp":
            raise ValueError(
                f"unknown address scheme {scheme.group(1)!r} in {text!r}: use unix: or tcp://"
            )
        return _tcp(given[scheme.end() :], text)
    if "/" in given:
        return _unix(given, text)
    return _tcp(given, text)


def _unix(path: str, text: str) -> UnixAddress:
    if not path:
        raise ValueError(f"no socket path in {text!r}")
    if len(os.fsencode(path)) > MAX_UNIX_PATH_BYTES:
        raise ValueError(
            f"the socket path in {text!r} is longer than {MAX_UNIX_PATH_BYTES} bytes, "
            "the most a Unix socket path may have"
        )
    return UnixAddress(path)


def _tcp(host_port: str, text: str) -> TcpAddress:
    if host_port.startswith("["):
        host, bracket, rest = host_port[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"expected [host]:port in {text!r}")
        port_text = rest[1:]
    else:
        host, colon, port_text = host_port.rpartition(":")
        if not colon:
            raise ValueError(
                f"{text!r} is not an address: use unix:/path, a path with a '/', "
                "tcp://host:port, host:port or :port"
            )
        if ":" in host:
            raise ValueError(f"put the IPv6 host in brackets: [{host}]:{port_text}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"the port in {text!r} must be a number from 0 to 65535")
    return TcpAddress(host or LOOPBACK, int(port_text))


# -- the runtime directory ----------------------------------------------------------------


def runtime_dir() -> Path:
    """Where servers put their default sockets: ``$XDG_RUNTIME_DIR/memactor``, or else
    ``<tmp>/memactor-<uid>``. It may not exist yet."""
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    if base and os.path.isabs(base) and os.path.isdir(base):
        return Path(base) / "memactor"
    return Path(tempfile.gettempdir()) / f"memactor-{os.getuid()}"


def default_address() -> UnixAddress:
    """This process's default socket, ``<runtime dir>/<pid>.sock``; makes the directory
    (mode 0700) if needed and refuses one that another user owns or could swap."""
    directory = runtime_dir()
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RemoteError(
            f"{directory} is not a directory of this user's; remove it or give an address"
        )
    if info.st_mode & 0o077:
        os.chmod(directory, 0o700)
    return _unix(str(directory / f"{os.getpid()}.sock"), str(directory))


def is_live(path: str | os.PathLike[str]) -> bool:
    """Whether something accepts connections on the Unix socket at *path* (a quick probe)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT_S)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def find_servers() -> list[str]:
    """The addresses of the servers listening in :func:`runtime_dir`, in name order.

    Stale sockets (left by a process that died) are skipped, not removed.
    """
    try:
        candidates = sorted(runtime_dir().glob("*.sock"))
    except OSError:
        return []
    return [str(UnixAddress(str(path))) for path in candidates if is_live(path)]


def find_server() -> str:
    """The address of the one server in :func:`runtime_dir`; :class:`RemoteError` saying
    that none runs, or listing them when there are several."""
    found = find_servers()
    if len(found) == 1:
        return found[0]
    if not found:
        raise RemoteError(
            f"no memactor server is running (none in {runtime_dir()}); serve one with "
            "memactor.remote.open_server(system), or give its address"
        )
    raise RemoteError(f"{len(found)} memactor servers are running; name one: " + ", ".join(found))
