"""The stream server: serves one memory system's metrics actor to many viewers at once.

Views come from one metrics subscription per rate asked for (most viewers ask 10 Hz, so
usually one), are encoded once per tick and the same bytes are offered to every viewer
at that rate. See :mod:`memactor.remote._wire` for the protocol and
:mod:`memactor.remote._peer` for why a slow viewer slows nobody.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import math
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final, Protocol

import trio

from .._errors import MemactorError
from ..metrics import Snapshot
from ._address import Address, TcpAddress, UnixAddress, default_address, is_live, parse_address
from ._errors import ProtocolError, RefusedError, RemoteError
from ._feed import Source
from ._peer import CLOSE_GRACE_S, Counters, Peer, linger
from ._wire import (
    HELLO,
    MAX_RATE_HZ,
    MAX_REQUEST_BYTES,
    PING,
    PONG,
    PROTOCOL_VERSION,
    REQUEST_LIMITS,
    SNAPSHOT,
    SUBSCRIBE,
    WELCOME,
    FrameReader,
    Message,
    error_frame,
    get_field,
    pack,
    rate_allowed,
    with_header,
)

MAX_CONNECTIONS: Final = 64
"""The default cap on open connections (Redis' ``maxclients``); beyond it a new connection
is told ``busy`` and closed at once."""
MAX_HANDSHAKES: Final = 8
"""The default cap on connections that have not yet been welcomed (sshd's
``MaxStartups``): a flood of connections that never say hello holds at most this many
file descriptors, plus the few being turned away."""
HANDSHAKE_TIMEOUT_S: Final = 3.0
"""How long a new connection may take to say hello before it is closed (by default)."""
IDLE_TIMEOUT_S: Final = 30.0
"""How long a welcomed connection may stay silent before it is closed (by default):
:func:`~memactor.remote.connect` pings every ``keepalive_s`` (5 s) while it waits for
views, so only a dead, stuck or misbehaving viewer stays silent this long."""
ACCEPT_BACKOFF_S: Final = 0.05
"""The first pause after a failed accept (out of file descriptors), doubled up to..."""
MAX_ACCEPT_BACKOFF_S: Final = 1.0
"""... this, and back to the first after an accept succeeds."""
TURN_AWAY_GRACE_S: Final = 0.25
"""How long a connection turned away at a cap may take to read its ``busy`` frame."""
RESUBSCRIBE_DELAY_S: Final = 0.1
"""The pause before subscribing again when a subscription ended or could not be made."""
SUBSCRIBE_TIMEOUT_S: Final = 5.0
"""How long a subscription may take to be answered before it is tried again."""
BACKLOG: Final = 64


class ServedMetrics(Protocol):
    """What a server asks of what it serves (a metrics actor, or an aggregator's
    merged view): consistent snapshots, and a channel of views at a rate."""

    async def snapshot(
        self, label: str = "", *, blocks: bool = True, timeout: float | None = None
    ) -> Snapshot: ...

    async def subscribe(
        self, rate_hz: float = ..., *, buffer: int = 1, series: bool = True
    ) -> trio.MemoryReceiveChannel[Snapshot]: ...


class Served(Protocol):
    """A :class:`~memactor.actors.MemorySystem`, or anything with such ``metrics``."""

    @property
    def metrics(self) -> ServedMetrics: ...


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """A server's counts at one moment; see :meth:`Server.statistics`."""

    connections_now: int
    """Connections open now, handshakes in progress included."""
    connections_peak: int
    connections_total: int
    """Connections accepted since the server opened (probes by ``find_servers`` too)."""
    viewers_now: int
    """Connections subscribed to views now."""
    rejected: int
    """Handshakes refused: a missing or wrong token, another version, no hello in time."""
    protocol_errors: int
    """Connections closed for a malformed, oversized or unknown frame."""
    views_sent: int
    """Views handed to their viewer's socket."""
    views_dropped: int
    """Views not sent because their viewer's outbox was full (it read too slowly)."""
    snapshots_sent: int
    bytes_sent: int
    handshakes_now: int = 0
    """Connections open now that have not yet been welcomed (or refused)."""
    handshakes_peak: int = 0
    turned_away: int = 0
    """Connections closed at once, told ``busy``, because a cap was reached (too many
    connections, or too many not yet welcomed)."""
    idle_closed: int = 0
    """Welcomed connections closed because they sent nothing for the idle timeout."""
    accept_failures: int = 0
    """Accepts that failed (out of file descriptors: ``EMFILE``, ``ENFILE``, ...) and were
    retried after a pause; never raised into the program."""


@dataclass(eq=False, slots=True)
class _Rate:
    """The viewers at one rate, fed by one metrics subscription."""

    rate_hz: float
    peers: set[Peer] = field(default_factory=set)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass(frozen=True, slots=True)
class _Limits:
    max_connections: int
    max_handshakes: int
    handshake_timeout_s: float
    idle_timeout_s: float | None

    def check(self) -> None:
        if self.max_connections < 1 or self.max_handshakes < 1:
            raise ValueError("max_connections and max_handshakes must be at least 1")
        if not self.handshake_timeout_s > 0:
            raise ValueError(f"handshake_timeout_s must be above 0, got {self.handshake_timeout_s}")
        if self.idle_timeout_s is not None and not self.idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be above 0 or None, got {self.idle_timeout_s}")


class Server:
    """A running stream server; made by :func:`open_server`."""

    def __init__(
        self,
        system: Served,
        address: str,
        source: Source,
        token: str | None,
        limits: _Limits,
    ) -> None:
        self._metrics = system.metrics
        self.address = address
        """Where it listens, as clients write it: ``unix:/run/user/1000/memactor/4242.sock``
        or ``tcp://127.0.0.1:7070`` (the real port when port 0 was asked)."""
        self.source = source
        """What it tells every viewer about this process."""
        self._token = token.encode() if token is not None else None
        self._limits = limits
        self._counters = Counters()
        self._turning_away = 0
        self._peers: set[Peer] = set()
        self._rates: dict[float, _Rate] = {}
        self._gone = trio.lowlevel.ParkingLot()
        self._nursery: trio.Nursery | None = None

    def statistics(self) -> ServerStatistics:
        """A fresh frozen copy of the server's counts."""
        return ServerStatistics(
            viewers_now=sum(len(rate.peers) for rate in self._rates.values()),
            **dataclasses.asdict(self._counters),
        )

    # -- connections ----------------------------------------------------------------

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        counters = self._counters
        backoff_s = ACCEPT_BACKOFF_S
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                # Out of file descriptors or buffers (EMFILE, ENFILE, ENOBUFS, ENOMEM), or
                # anything else the kernel says: wait for some connections to end. What a
                # connection does never ends the server, let alone the program.
                counters.accept_failures += 1
                await trio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_ACCEPT_BACKOFF_S)
                continue
            backoff_s = ACCEPT_BACKOFF_S
            counters.connections_total += 1
            # Counted here, before the connection's task runs: a burst of accepts sees the
            # caps as they are.
            busy = self._over_a_cap()
            if busy:
                counters.turned_away += 1
                if self._turning_away >= self._limits.max_handshakes:
                    await stream.aclose()  # a flood: no time to say why
                else:
                    self._turning_away += 1
                    nursery.start_soon(self._turn_away, stream, busy)
                continue
            counters.connections_now += 1
            counters.connections_peak = max(counters.connections_peak, counters.connections_now)
            counters.handshakes_now += 1
            counters.handshakes_peak = max(counters.handshakes_peak, counters.handshakes_now)
            nursery.start_soon(self._connection, stream)

    def _over_a_cap(self) -> str:
        """Why a new connection cannot be taken now, or ""."""
        limits, counters = self._limits, self._counters
        if counters.connections_now >= limits.max_connections:
            return f"too many connections (the limit is {limits.max_connections})"
        if counters.handshakes_now >= limits.max_handshakes:
            return (
                f"too many connections waiting to say hello (the limit is {limits.max_handshakes})"
            )
        return ""

    async def _turn_away(self, stream: trio.SocketStream, reason: str) -> None:
        try:
            async with stream:
                frame = error_frame("busy", reason)
                with trio.move_on_after(TURN_AWAY_GRACE_S):
                    await stream.send_all(frame)
                    self._counters.bytes_sent += len(frame)
                await linger(stream, TURN_AWAY_GRACE_S)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._turning_away -= 1

    async def _connection(self, stream: trio.SocketStream) -> None:
        """One accepted connection, already counted in ``connections_now`` and
        ``handshakes_now``."""
        counters = self._counters
        try:
            async with stream:
                reader = FrameReader(stream, MAX_REQUEST_BYTES)
                try:
                    welcomed = await self._handshake(stream, reader)
                finally:
                    counters.handshakes_now -= 1
                if welcomed:
                    await self._converse(Peer(stream, counters), reader)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the viewer went away
        finally:
            counters.connections_now -= 1
            self._gone.unpark_all()

    async def _handshake(self, stream: trio.SocketStream, reader: FrameReader) -> bool:
        """Answer the hello: True once welcomed; False after a refusal (sent, counted)."""
        try:
            with trio.fail_after(self._limits.handshake_timeout_s):
                hello = await reader.receive_message(REQUEST_LIMITS)
            if hello is None:
                return False  # a probe (find_servers), or a viewer that changed its mind
            self._check_hello(hello)
        except trio.TooSlowError:
            self._counters.rejected += 1
            timeout_s = self._limits.handshake_timeout_s
            await self._refuse(stream, "timeout", f"no hello within {timeout_s:g} s")
            return False
        except RefusedError as error:
            self._counters.rejected += 1
            await self._refuse(stream, error.code, str(error))
            return False
        except ProtocolError as error:
            if error.code == "version":
                self._counters.rejected += 1
            else:
                self._counters.protocol_errors += 1
            await self._refuse(stream, error.code, str(error))
            return False
        source = dataclasses.asdict(self.source)
        welcome = pack(WELCOME, {"version": PROTOCOL_VERSION, "source": source})
        self._counters.bytes_sent += len(welcome)
        await stream.send_all(welcome)
        return True

    async def _refuse(self, stream: trio.SocketStream, code: str, reason: str) -> None:
        frame = error_frame(code, reason)
        self._counters.bytes_sent += len(frame)
        with trio.move_on_after(CLOSE_GRACE_S):
            await stream.send_all(frame)
        await linger(stream)

    def _check_hello(self, hello: Message) -> None:
        if hello.type != HELLO:
            raise ProtocolError(f"expected a hello frame first, got a {hello.type!r} frame")
        version = hello.body.get("version")
        if version != PROTOCOL_VERSION or isinstance(version, bool):
            raise RefusedError(
                f"protocol version {version!r} is not spoken here (this server speaks "
                f"{PROTOCOL_VERSION}); use the same memactor version on both sides",
                code="version",
            )
        if self._token is None:
            return
        token = hello.body.get("token")
        if not isinstance(token, str) or not token:
            raise RefusedError(
                "this server needs a token (--token-file, MEMACTOR_TOKEN or --token)", code="token"
            )
        if not hmac.compare_digest(token.encode(), self._token):
            raise RefusedError("the token was refused", code="token")

    async def _converse(self, peer: Peer, reader: FrameReader) -> None:
        self._peers.add(peer)
        failed = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peer.write, nursery.cancel_scope)
                try:
                    spoke = await self._answer(peer, reader)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    peer.close_outbox()  # the viewer went away
                except ProtocolError as error:
                    self._counters.protocol_errors += 1
                    failed = True
                    peer.close_outbox(code=error.code, reason=str(error))
                else:
                    if spoke:
                        peer.close_outbox()
                    else:
                        self._counters.idle_closed += 1
                        failed = True
                        idle_s = self._limits.idle_timeout_s
                        peer.close_outbox(code="idle", reason=f"nothing received for {idle_s:g} s")
                # The writer ends the connection once it has written what is queued.
                nursery.cancel_scope.deadline = trio.current_time() + CLOSE_GRACE_S
        finally:
            self._peers.discard(peer)
            self._unsubscribe(peer)
        if failed:
            await linger(peer.stream)

    async def _answer(self, peer: Peer, reader: FrameReader) -> bool:
        """Answer requests until the viewer closes (True) or sends no whole frame for the
        idle timeout (False: a dead peer, one that no longer reads our replies, or bytes
        trickled); ProtocolError for a bad request."""
        idle_s = self._limits.idle_timeout_s
        with trio.CancelScope() as idle:
            while True:
                if idle_s is not None:
                    idle.deadline = trio.current_time() + idle_s
                request = await reader.receive_message(REQUEST_LIMITS)
                if request is None:
                    return True
                if idle_s is not None:
                    idle.deadline = trio.current_time() + idle_s
                await self._handle(peer, request, idle)
        return False

    async def _handle(self, peer: Peer, request: Message, idle: trio.CancelScope) -> None:
        """Answer one request within *idle*'s deadline (a peer that does not read its
        replies runs into it), the metrics actor's own time excepted; ProtocolError for a
        bad one."""
        if request.type == SUBSCRIBE:
            rate_hz = float(get_field(request, "rate_hz", (int, float)))
            if not rate_allowed(rate_hz):
                raise ProtocolError(f"rate_hz must be above 0 and at most {MAX_RATE_HZ:g}")
            await self._subscribe(peer, rate_hz)
        elif request.type == SNAPSHOT:
            label = get_field(request, "label", str)
            blocks = get_field(request, "blocks", bool)
            left_s = idle.deadline - trio.current_time()
            idle.deadline = math.inf  # a busy metrics actor is not an idle viewer
            try:
                try:
                    # A consistent cut as of the request (the metrics actor takes every
                    # event emitted before it). Taken unlabelled: the label is the
                    # viewer's own, never one of the program's kept snapshots (a viewer
                    # must not evict those).
                    snapshot = await self._metrics.snapshot("", blocks=blocks)
                finally:
                    idle.deadline = trio.current_time() + left_s
            except (MemactorError, trio.BrokenResourceError) as error:
                await peer.send(error_frame("failed", f"no snapshot: {error}"))
                return
            snapshot = dataclasses.replace(snapshot, label=label)
            await peer.send(with_header(snapshot.to_msgpack()), is_snapshot=True)
        elif request.type == PING:
            ping_id = get_field(request, "id", (int, str))
            await peer.send(pack(PONG, {"id": ping_id}))
        else:
            raise ProtocolError(f"an unknown request type {request.type!r}")

    # -- views ----------------------------------------------------------------------

    async def _subscribe(self, peer: Peer, rate_hz: float) -> None:
        self._unsubscribe(peer)
        try:
            first = await self._metrics.snapshot("", blocks=False)
        except (MemactorError, trio.BrokenResourceError) as error:
            await peer.send(error_frame("failed", f"no views: {error}"))
            return
        await peer.restart_views(dataclasses.replace(first, label="live").to_msgpack())
        rate = self._rates.get(rate_hz)
        if rate is None:
            rate = self._rates[rate_hz] = _Rate(rate_hz)
            assert self._nursery is not None
            self._nursery.start_soon(self._pump, rate)
        rate.peers.add(peer)
        peer.rate_hz = rate_hz

    def _unsubscribe(self, peer: Peer) -> None:
        if peer.rate_hz is None:
            return
        rate = self._rates[peer.rate_hz]
        rate.peers.discard(peer)
        peer.rate_hz = None
        if not rate.peers:
            rate.scope.cancel()
            del self._rates[rate.rate_hz]

    async def _pump(self, rate: _Rate) -> None:
        """Feed one rate's viewers until none is left, subscribing again if the
        subscription ends (the metrics actor stopped; a restart keeps it) or cannot be
        made."""
        with rate.scope:
            while True:
                try:
                    # Shielded: a viewer leaving mid-ask must not drop the answered channel
                    # unclosed, or the metrics actor would serve it views for ever.
                    with trio.CancelScope(shield=True), trio.fail_after(SUBSCRIBE_TIMEOUT_S):
                        views = await self._metrics.subscribe(rate.rate_hz, series=False)
                except (MemactorError, trio.BrokenResourceError, trio.TooSlowError):
                    await trio.sleep(RESUBSCRIBE_DELAY_S)
                    continue
                async with views:
                    async for view in views:
                        payload = view.to_msgpack()  # once per tick, for every viewer
                        for peer in rate.peers:
                            peer.offer_view(payload)
                await trio.sleep(RESUBSCRIBE_DELAY_S)

    # -- closing --------------------------------------------------------------------

    async def _close_connections(self) -> None:
        """Say goodbye to every viewer and give them :data:`CLOSE_GRACE_S` to read it."""
        for peer in self._peers:
            peer.close_outbox(code="closing", reason="the server is closing")
        with trio.move_on_after(CLOSE_GRACE_S):
            while self._counters.connections_now:
                await self._gone.park()


@asynccontextmanager
async def open_server(
    system: Served,
    address: str | None = None,
    *,
    token: str | None = None,
    name: str | None = None,
    max_connections: int = MAX_CONNECTIONS,
    max_handshakes: int = MAX_HANDSHAKES,
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
    idle_timeout_s: float | None = IDLE_TIMEOUT_S,
) -> AsyncIterator[Server]:
    """Serve *system*'s metrics actor on *address* while the block runs.

    *address* is any form :func:`parse_address` takes; ``None`` is this process's socket
    in the runtime directory (``$XDG_RUNTIME_DIR/memactor/<pid>.sock``). A Unix socket is
    made with mode 0600 (a stale one left at the path by a dead process is replaced; a
    live one is an error) and removed when the block is left. TCP port 0 picks a free
    port: :attr:`Server.address` shows the real one. Binding TCP to an address that is
    not loopback needs a *token* (else ``ValueError``): every viewer must then send it.
    *name* is the program's name that viewers see (default: its script's name).

    Limits, so that nothing a connection does can harm the program: at most
    *max_connections* connections (default :data:`MAX_CONNECTIONS`, 64) and at most
    *max_handshakes* of them not yet welcomed (default :data:`MAX_HANDSHAKES`, 8); a
    connection beyond either is told ``busy`` in an error frame and closed at once
    (counted in ``turned_away``). A connection that has not said hello within
    *handshake_timeout_s* (3 s) is refused; a welcomed one that sends no whole frame for
    *idle_timeout_s* (30 s; ``None``: never) is closed with the reason ``idle`` (the
    clients of :mod:`memactor.remote` ping while they wait). Running out of file
    descriptors is waited out, 0.05 s doubling up to 1 s, and counted in
    ``accept_failures``; it is never raised. A bad limit raises ``ValueError``.

    Leaving the block stops accepting, tells every viewer that the server is closing,
    gives them :data:`CLOSE_GRACE_S` to read it, then closes every connection. Left by
    a cancellation, the connections are cut at once. Like a nursery, errors come out in
    an ``ExceptionGroup``. A failure to listen (the port is taken) raises ``OSError``
    before the block runs; :class:`RemoteError` if another server serves the socket.
    """
    limits = _Limits(max_connections, max_handshakes, handshake_timeout_s, idle_timeout_s)
    limits.check()
    where = default_address() if address is None else parse_address(address)
    if token is not None and not token:
        raise ValueError("token must not be empty; pass None for no token")
    if isinstance(where, TcpAddress) and not where.is_loopback and token is None:
        raise ValueError(
            f"serving on {where} (not a loopback address) needs a token: anyone who can "
            "reach it could watch this process; give a token (token=..., or --token-file, "
            "$MEMACTOR_TOKEN or --token on the command line), or serve on 127.0.0.1"
        )
    listener, printable, remove = await listen(where)
    try:
        async with trio.open_nursery() as nursery:
            source = Source.this_process(name=name, address=printable)
            server = Server(system, printable, source, token, limits)
            server._nursery = nursery
            accepting = trio.CancelScope()

            async def accept() -> None:
                with accepting:
                    await server._accept(listener, nursery)

            nursery.start_soon(accept)
            try:
                yield server
            finally:
                accepting.cancel()
                try:
                    await server._close_connections()
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        listener.socket.close()
        remove()


async def listen(where: Address) -> tuple[trio.SocketListener, str, Callable[[], None]]:
    """A listening socket, its printable address, and how to clean up after it."""
    if isinstance(where, TcpAddress):
        found = await trio.socket.getaddrinfo(
            where.host, where.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, type_, proto, _, sockaddr = found[0]
        sock = trio.socket.socket(family, type_, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await sock.bind(sockaddr)
            sock.listen(BACKLOG)
        except BaseException:
            sock.close()
            raise
        host, port = sock.getsockname()[:2]
        return trio.SocketListener(sock), str(TcpAddress(host, port)), lambda: None
    path = os.path.abspath(where.path)
    _clear_stale_socket(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            await sock.bind(path)
        except OSError as error:
            raise type(error)(
                error.errno, f"cannot listen on unix:{path}: {error.strerror}"
            ) from None
        # Nobody can connect before listen(): the mode is right before anyone can try.
        os.chmod(path, 0o600)
        ours = os.stat(path)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise

    def remove() -> None:
        with contextlib.suppress(OSError):
            now = os.stat(path)
            if (now.st_dev, now.st_ino) == (ours.st_dev, ours.st_ino):
                os.unlink(path)

    return trio.SocketListener(sock), str(UnixAddress(path)), remove


def _clear_stale_socket(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise RemoteError(f"{path} exists and is not a socket; remove it or serve elsewhere")
    if is_live(path):
        raise RemoteError(f"unix:{path} is already served by a running process")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a process that died
