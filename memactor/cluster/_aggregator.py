"""The aggregator: keeps an exact copy of every source's ledger, and serves them merged.

Sources connect and push sequence-numbered updates (see :mod:`._wire`); the aggregator
applies each to that source's :class:`~._delta.LedgerCopy`. A missing sequence number
is a gap: counted, and healed by asking the source for a checkpoint (updates until it
comes are skipped: they build on a state the copy does not have). A source that says
``bye``, whose connection breaks, or that sends nothing for ``heartbeat_timeout_s`` is
marked gone with when and how; so is one that :meth:`Aggregator.mark_gone` names (the
Ray integration does, for dead actors). Its bytes leave the live totals; its row stays.

The cluster's own peaks (the peak of the sum over sources) are sampled each time an
update is applied: exact at that resolution, never above the true peak. Each source's
own peaks are exact: they are its ledger's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hmac
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import trio

from ..metrics import GONE, LIVE, LedgerStats, Snapshot, SourceStats
from ..remote import (
    Connection,
    ProtocolError,
    RefusedError,
    RemoteError,
    Source,
    connect,
    open_server,
    parse_address,
)
from ..remote._address import TcpAddress
from ..remote._server import HANDSHAKE_TIMEOUT_S, listen
from ..remote._wire import (
    HELLO,
    MAX_REQUEST_BYTES,
    PROTOCOL_VERSION,
    REQUEST_LIMITS,
    WELCOME,
    FrameReader,
    Message,
    error_frame,
    pack,
    unpack,
)
from ._delta import UpdateMaker, without_series
from ._merge import Part, merge
from ._record import Record, SourceKey
from ._views import Views
from ._wire import BYE, CHECKPOINT, DEFAULT_UPDATE_HZ, HEARTBEAT_TIMEOUT_S, UPDATE, UPDATE_LIMITS

MAX_SOURCES = 1024
"""How many sources may be connected at once, by default."""
PULL_RETRY_S = 0.1
MAX_PULL_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class AggregatorStatistics:
    """An aggregator's counts at one moment; see :meth:`Aggregator.statistics`."""

    sources_live: int
    sources_gone: int
    updates: int
    """Updates applied, checkpoints included."""
    skipped: int
    """Updates skipped while a source's checkpoint was awaited."""
    gaps: int
    """Missing sequence numbers over all sources."""
    checkpoints: int
    bytes_received: int
    refused: int
    """Sources refused: a bad hello, token or version, or one too many."""


class Aggregator:
    """A running aggregator; made by :func:`open_aggregator`."""

    def __init__(
        self, address: str, token: str | None, heartbeat_timeout_s: float, max_sources: int
    ) -> None:
        self.address = address
        """Where sources connect (``tcp://127.0.0.1:7071``, the real port when 0 was asked)."""
        self.served_address: str | None = None
        """Where the merged stream is served (``memactor top`` it), if it is."""
        self.prometheus_address: str | None = None
        """``HOST:PORT`` of the Prometheus endpoint ``open_aggregator(prometheus=...)``
        serves, if it does (the real port when 0 was asked for)."""
        self.identity = Source.this_process(name="memactor aggregate", address=address)
        self._token = token.encode() if token is not None else None
        self._heartbeat_timeout_s = heartbeat_timeout_s
        self._records: dict[SourceKey, Record] = {}
        self._changed = trio.lowlevel.ParkingLot()
        self._peak_reserved = 0
        self._peak_in_use = 0
        self._device_peaks: dict[str, tuple[int, int]] = {}
        self._skipped = 0
        self._bytes = 0
        self._refused = 0
        self._connections = 0
        self._max_sources = max_sources
        self._views: Views | None = None

    # -- what it knows -------------------------------------------------------------------

    def statistics(self) -> AggregatorStatistics:
        records = self._records.values()
        return AggregatorStatistics(
            sources_live=sum(r.state == LIVE for r in records),
            sources_gone=sum(r.state == GONE for r in records),
            updates=sum(r.updates for r in records),
            skipped=self._skipped,
            gaps=sum(r.gaps for r in records),
            checkpoints=sum(r.checkpoints for r in records),
            bytes_received=self._bytes,
            refused=self._refused,
        )

    def sources(self) -> tuple[SourceStats, ...]:
        """Every source heard from, live and gone, in the order they first connected."""
        return tuple(r.stats() for r in self._records.values())

    def source(self, name: str, *, pid: int | None = None) -> SourceStats:
        """The source called *name* (and of *pid*, if given); ``KeyError`` naming it and the
        known sources if there is none, or more than one."""
        return self._find(name, pid).stats()

    def copy_of(self, name: str, *, pid: int | None = None, blocks: bool = True) -> Snapshot:
        """The aggregator's copy of one source's ledger as a snapshot: equal, byte for
        byte in msgpack, to the source's own snapshot of update :attr:`SourceStats.seq`
        with the time series left out (see :attr:`ClusterSource.last_snapshot`)."""
        return self._find(name, pid).copy.snapshot(blocks=blocks)

    def _find(self, name: str, pid: int | None) -> Record:
        found = [
            r
            for r in self._records.values()
            if r.identity.name == name and (pid is None or r.identity.pid == pid)
        ]
        if len(found) != 1:
            known = ", ".join(r.prefix.rstrip("/") for r in self._records.values()) or "none"
            what = "no source" if not found else f"{len(found)} sources"
            raise KeyError(
                f"{what} named {name!r}{'' if pid is None else f' with pid {pid}'} (known: {known})"
            )
        return found[0]

    def live_views(self) -> tuple[tuple[SourceStats, Snapshot], ...]:
        """Every live source and its copy's snapshot without blocks, in the order they
        first connected: what the exporters show per source in cluster mode."""
        return tuple(
            (r.stats(), r.copy.snapshot(blocks=False))
            for r in self._records.values()
            if r.state == LIVE
        )

    def snapshot(self, label: str = "", *, blocks: bool = True) -> Snapshot:
        """Every source merged into one snapshot (see :mod:`._merge`)."""
        parts = [
            Part(r.stats(), r.copy.snapshot(blocks=blocks and r.state == LIVE))
            for r in self._records.values()
        ]
        peaks = LedgerStats(0, 0, self._peak_reserved, self._peak_in_use, 0, 0, 0, 0, 0)
        return merge(
            parts,
            label=label,
            wall_time_ns=time.time_ns(),
            monotonic_ns=time.monotonic_ns(),
            peaks=peaks,
            device_peaks=self._device_peaks,
        )

    @property
    def metrics(self) -> Views:
        """What :func:`memactor.remote.open_server` serves: merged snapshots and views."""
        assert self._views is not None
        return self._views

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once *condition* holds, testing it now and after every change (an
        update applied or skipped, a source come or gone). Cancelled, it just stops
        waiting."""
        while not condition():
            await self._changed.park()

    def mark_gone(self, name: str, how: str, *, pid: int | None = None) -> None:
        """Mark a live source gone (its connection is cut); nothing if already gone."""
        self._gone(self._find(name, pid), how)

    def mark_gone_where(self, predicate: Callable[[SourceStats], bool], how: str) -> int:
        """Mark every live source that *predicate* picks gone; return how many."""
        picked = [r for r in self._records.values() if r.state == LIVE and predicate(r.stats())]
        for record in picked:
            self._gone(record, how)
        return len(picked)

    def _gone(self, record: Record, how: str) -> None:
        if record.state == GONE:
            return
        record.state = GONE
        record.gone_wall_ns = time.time_ns()
        record.gone_how = how
        if record.scope is not None:
            record.scope.cancel()
        self._changed.unpark_all()

    # -- updates ---------------------------------------------------------------------------

    def _join(self, identity: Source) -> Record:
        record = self._records.get(
            (identity.host, identity.pid, identity.started_wall_ns, identity.name)
        )
        if record is None:
            record = Record(identity)
            self._records[record.key] = record
        else:
            # Back after a lost connection: its next update shows whether it missed any.
            record.state, record.gone_wall_ns, record.gone_how = LIVE, 0, ""
        self._changed.unpark_all()
        return record

    def _accept(self, record: Record, seq: int, body: dict[str, Any]) -> bool:
        """Apply update *seq*; True when a checkpoint must be asked for (a new gap)."""
        full = body.get("full") is True
        ask = False
        if full:
            record.awaiting_checkpoint = False
        elif seq != record.seq + 1 and not record.awaiting_checkpoint:
            record.gaps += max(seq - record.seq - 1, 1)
            record.awaiting_checkpoint = ask = True
        if record.awaiting_checkpoint:
            self._skipped += 1
            record.seq = seq
            self._changed.unpark_all()
            return ask
        try:
            record.copy.apply(body)
        except KeyError as error:
            raise ProtocolError(f"a damaged update {seq}: missing field {error}") from None
        except (TypeError, ValueError, IndexError) as error:
            raise ProtocolError(f"a damaged update {seq}: {error}") from None
        record.seq = seq
        record.updates += 1
        record.checkpoints += full
        self._sample_peaks()
        self._changed.unpark_all()
        return False

    def _sample_peaks(self) -> None:
        reserved = in_use = 0
        devices: dict[str, list[int]] = {}
        for record in self._records.values():
            if record.state != LIVE:
                continue
            reserved += record.copy.totals.bytes_reserved
            in_use += record.copy.totals.bytes_in_use
            for d in record.copy.devices:
                sums = devices.setdefault(d.device, [0, 0])
                sums[0] += d.bytes_reserved
                sums[1] += d.bytes_in_use
        self._peak_reserved = max(self._peak_reserved, reserved)
        self._peak_in_use = max(self._peak_in_use, in_use)
        for name, (r, u) in devices.items():
            pr, pu = self._device_peaks.get(name, (0, 0))
            self._device_peaks[name] = (max(pr, r), max(pu, u))

    # -- connections -----------------------------------------------------------------------

    async def _accept_sources(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                await trio.sleep(0.05)  # out of file descriptors: wait for some to close
                continue
            if self._connections >= self._max_sources:
                self._refused += 1
                nursery.start_soon(self._turn_away, stream)
                continue
            self._connections += 1
            nursery.start_soon(self._connection, stream)

    async def _turn_away(self, stream: trio.SocketStream) -> None:
        async with stream:
            reason = f"too many sources (the limit is {self._max_sources})"
            with (
                trio.move_on_after(HANDSHAKE_TIMEOUT_S),
                suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await stream.send_all(error_frame("busy", reason))

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            await self._converse(stream)
        finally:
            self._connections -= 1

    async def _converse(self, stream: trio.SocketStream) -> None:
        async with stream:
            # Small frames until the hello is answered: an unknown peer cannot make us
            # hold an update-sized buffer.
            reader = FrameReader(stream, MAX_REQUEST_BYTES)
            try:
                with trio.fail_after(HANDSHAKE_TIMEOUT_S):
                    hello = await reader.receive_message(REQUEST_LIMITS)
                identity = self._check_hello(hello)
            except (ProtocolError, trio.TooSlowError) as error:
                self._refused += 1
                reason = "no hello in time" if isinstance(error, trio.TooSlowError) else str(error)
                code = getattr(error, "code", "timeout")
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(error_frame(code, reason))
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            reader.raise_limit(UPDATE_LIMITS.max_bytes)
            record = self._join(identity)
            record.scope = scope = trio.CancelScope()
            how = "connection lost"
            with scope:
                try:
                    source = dataclasses.asdict(self.identity)
                    welcome = {"version": PROTOCOL_VERSION, "source": source}
                    await stream.send_all(pack(WELCOME, welcome))
                    how = await self._receive_updates(stream, reader, record)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    how = "connection lost"
                except ProtocolError as error:
                    how = f"protocol error: {error}"
            if record.scope is scope:
                record.scope = None
                self._gone(record, how)

    def _check_hello(self, hello: Message | None) -> Source:
        if hello is None or hello.type != HELLO:
            raise ProtocolError("expected a hello frame first")
        if hello.body.get("version") != PROTOCOL_VERSION:
            raise ProtocolError(
                f"protocol version {hello.body.get('version')!r} is not spoken here (this "
                f"aggregator speaks {PROTOCOL_VERSION})",
                code="version",
            )
        if self._token is not None:
            token = hello.body.get("token")
            if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self._token):
                raise ProtocolError("the token was refused", code="token")
        body = hello.body.get("source")
        try:
            assert isinstance(body, dict)
            return Source(
                name=str(body["name"]),
                pid=int(body["pid"]),
                host=str(body["host"]),
                started_wall_ns=int(body["started_wall_ns"]),
                address=str(body.get("address", "")),
            )
        except (AssertionError, KeyError, TypeError, ValueError):
            raise ProtocolError("a source hello without a whole source") from None

    async def _receive_updates(
        self, stream: trio.SocketStream, reader: FrameReader, record: Record
    ) -> str:
        """Apply updates until the source leaves; return how it went."""
        while True:
            with trio.move_on_after(self._heartbeat_timeout_s):
                payload = await reader.receive()
                if payload is None:
                    return "connection lost"
                self._bytes += len(payload) + 4
                message = unpack(payload, limits=UPDATE_LIMITS)
                if message.type == BYE:
                    return "closed"
                if message.type != UPDATE:
                    raise ProtocolError(f"a source sent a {message.type!r} frame")
                seq, body = message.body.get("seq"), message.body.get("body")
                if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(body, dict):
                    raise ProtocolError("an update without a seq or a body")
                if self._accept(record, seq, body):
                    await stream.send_all(pack(CHECKPOINT, {"after": record.seq}))
                continue
            return "missed heartbeats"

    # -- pulling from served processes -------------------------------------------------------

    async def pull(
        self, address: str, *, rate_hz: float = DEFAULT_UPDATE_HZ, token: str | None = None
    ) -> None:
        """Follow a process served by :func:`memactor.remote.open_server` as a source,
        until cancelled: fetch its snapshot (blocks included) *rate_hz* times a second
        and apply the difference. When its connection is lost the source is marked gone
        (``"connection lost"``) and the address is tried again (0.1 s doubling up to 5 s
        between tries); the program served there next (a restart) is a new source.
        Raises :class:`RefusedError` when the server refuses the token or the version.
        """
        backoff_s = PULL_RETRY_S
        while True:
            try:
                async with connect(address, token=token, name="memactor aggregate") as connection:
                    backoff_s = PULL_RETRY_S
                    record = self._join(connection.source)
                    try:
                        await self._follow(connection, record, rate_hz)
                    finally:
                        self._gone(record, "connection lost")
            except RefusedError:
                raise
            except RemoteError:
                pass
            await trio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, MAX_PULL_RETRY_S)

    async def _follow(self, connection: Connection, record: Record, rate_hz: float) -> None:
        maker = UpdateMaker()
        seq = 0
        with contextlib.suppress(RemoteError):
            while True:
                snapshot = without_series(await connection.snapshot("", blocks=True))
                seq += 1
                self._accept(record, seq, maker.update(snapshot))
                await trio.sleep(1.0 / rate_hz)


@asynccontextmanager
async def open_aggregator(
    address: str = "tcp://127.0.0.1:0",
    *,
    serve: str | None = None,
    token: str | None = None,
    heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S,
    max_sources: int = MAX_SOURCES,
    prometheus: str | None = None,
) -> AsyncIterator[Aggregator]:
    """Run an aggregator while the block runs: sources connect at *address* (TCP or a
    Unix socket; port 0 picks one, see :attr:`Aggregator.address`).

    With *serve*, the merged view is also served there with the stream protocol (see
    :func:`memactor.remote.open_server`), so ``memactor top``, ``snapshot``, ``report``,
    ``diff`` and ``check`` work on the cluster. *token*, if given, is asked of sources
    and viewers alike. A source silent for *heartbeat_timeout_s* (default 3 s: thirty
    missed updates at the default rate) is marked gone ``"missed heartbeats"``. At most
    *max_sources* (default :data:`MAX_SOURCES`, 1024) connect at once; one more is told
    ``busy`` and closed (counted in ``refused``).

    With *prometheus* (``HOST:PORT``; port 0 picks one, see
    :attr:`Aggregator.prometheus_address`), every live source's figures are served for
    Prometheus there, labelled ``host`` and ``process`` (``NAME:PID``), a gone source's
    series leaving (see :func:`memactor.exporters.serve_cluster_prometheus`). It needs
    the ``prometheus`` extra: without it, this raises ``ImportError`` naming it.

    Leaving the block (or a cancellation) cuts every source's connection (they see the
    aggregator go and keep trying to connect again) and stops serving; what the
    aggregator knew stays readable (:meth:`Aggregator.sources`, :meth:`~Aggregator.copy_of`,
    :meth:`~Aggregator.snapshot`) but changes no more, and :meth:`~Aggregator.wait_until`
    must not be called then. Like a nursery, errors come out in an ``ExceptionGroup``.
    Raises ``ValueError`` for a bad *heartbeat_timeout_s*, a bad *prometheus* address
    or a source address that is not loopback without a *token*, ``OSError`` when
    *address* (or *prometheus*) cannot be listened on.
    """
    if max_sources < 1:
        raise ValueError(f"max_sources must be at least 1, got {max_sources}")
    if not heartbeat_timeout_s > 0 or not math.isfinite(heartbeat_timeout_s):
        raise ValueError(f"heartbeat_timeout_s must be above 0, got {heartbeat_timeout_s}")
    export = None if prometheus is None else _prometheus_serving(prometheus)
    where = parse_address(address)
    if isinstance(where, TcpAddress) and not where.is_loopback and token is None:
        raise ValueError(f"listening for sources on {where} (not a loopback address) needs a token")
    listener, printable, remove = await listen(where)
    try:
        async with trio.open_nursery() as nursery:
            aggregator = Aggregator(printable, token, heartbeat_timeout_s, max_sources)
            aggregator._views = Views(aggregator, nursery)
            nursery.start_soon(aggregator._accept_sources, listener, nursery)
            async with AsyncExitStack() as serving:
                if serve is not None:
                    server = await serving.enter_async_context(
                        open_server(aggregator, serve, token=token, name="memactor aggregate")
                    )
                    aggregator.served_address = server.address
                if export is not None:
                    exporter = await serving.enter_async_context(export(aggregator))
                    aggregator.prometheus_address = exporter.address
                yield aggregator
            nursery.cancel_scope.cancel()
    finally:
        listener.socket.close()
        remove()


def _prometheus_serving(address: str) -> Callable[[Aggregator], AbstractAsyncContextManager[Any]]:
    """``serve_cluster_prometheus`` at *address*, checked now. The one reach past this
    layer: exporters are an edge (layer 8), loaded only when asked for by name, so that
    an aggregator without the extra never imports them."""
    from ..exporters import parse_listen_address, serve_cluster_prometheus

    parse_listen_address(address)
    return functools.partial(serve_cluster_prometheus, address=address)
