"""Serving a Prometheus registry over HTTP, in a thread of its own.

A scrape is answered by a thread, not by trio: building the exposition never delays an
actor for longer than the interpreter's switch interval, and a slow scraper holds only
its own connection. The address is ``HOST:PORT`` (``[::1]:PORT`` for IPv6), ``:PORT`` or
just ``PORT``, which listen on loopback only; port 0 picks a free port.
"""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Final

from prometheus_client import CollectorRegistry, MetricsHandler

DEFAULT_HOST: Final = "127.0.0.1"
POLL_INTERVAL_S: Final = 0.05
"""How often the serving thread checks whether it was asked to stop."""


def parse_listen_address(address: str) -> tuple[str, int]:
    """``(host, port)`` from ``"HOST:PORT"``, ``"[V6]:PORT"``, ``":PORT"`` or ``"PORT"``;
    without a host, loopback. Raises ``ValueError`` naming *address* when it is not one."""
    text = address.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"bad address {address!r}: write an IPv6 host as [HOST]:PORT")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bad address {address!r}: the port must be a number from 0 to 65535")
    return host or DEFAULT_HOST, int(port_text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), MetricsHandler.factory(registry))


class MetricsHttpServer:
    """*registry* served at ``http://ADDRESS/metrics`` (any path answers the same) until
    :meth:`close`. Starting raises :class:`OSError` when the address cannot be bound and
    ``ValueError`` for a malformed one."""

    def __init__(self, registry: CollectorRegistry, address: str) -> None:
        host, port = parse_listen_address(address)
        self._server = _Server(host, port, registry)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_S},
            name="memactor prometheus",
            daemon=True,
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port it listens on (the real one when port 0 was asked for)."""
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        """``HOST:PORT`` as it listens now, IPv6 hosts in brackets."""
        host = self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def close(self) -> None:
        """Stop serving and close the socket; blocks up to :data:`POLL_INTERVAL_S` plus a
        scrape in flight. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
