"""The aggregator as a named, detached Ray actor.

The actor runs :func:`memactor.cluster.open_aggregator` in a trio thread of its own (a
threaded actor: its methods run in Ray's threads and reach trio with
``trio.from_thread``). It listens for sources on its node's address and serves the
merged stream there, both behind a random token that :meth:`AggregatorActor.addresses`
hands to those who can reach the actor. Dead actors are noticed three ways: their
connection breaks (a killed actor's process exits), they miss heartbeats, and Ray's
state API says so (for actors registered with :meth:`AggregatorActor.watch_actor`).
Given a Prometheus port, it also serves every live source's figures for Prometheus on
its node, labelled ``host`` and ``process`` (that endpoint has no token: open the port
to your Prometheus server only).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any, Final

import ray
import trio

from ..cluster import Aggregator, open_aggregator
from ..cluster._wire import HEARTBEAT_TIMEOUT_S
from ..metrics import SourceStats

DEFAULT_NAME: Final = "memactor"
"""The aggregator actor's default name, and its namespace's."""
DEFAULT_NAMESPACE: Final = "memactor"
STATE_POLL_S: Final = 1.0
"""How often the aggregator asks Ray's state API about the actors it watches."""


class AggregatorActor:
    """Keeps every source's ledger and serves the merged view (see :mod:`memactor.cluster`).

    Not made directly: :func:`get_aggregator` makes it, or finds it by name.
    """

    def __init__(
        self,
        *,
        serve_port: int = 0,
        heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S,
        prometheus_port: int | None = None,
    ) -> None:
        host: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]  # untyped in Ray
        self._token = secrets.token_urlsafe(24)
        self._ready = threading.Event()
        self._aggregator: Aggregator | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._watched: dict[str, tuple[str, int]] = {}
        self._failure: BaseException | None = None
        prometheus = None if prometheus_port is None else f"{host}:{prometheus_port}"
        self._thread = threading.Thread(
            target=self._run,
            args=(
                f"tcp://{host}:0",
                f"tcp://{host}:{serve_port}",
                heartbeat_timeout_s,
                prometheus,
            ),
            name="memactor aggregator",
            daemon=True,
        )
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def _run(
        self, listen: str, serve: str, heartbeat_timeout_s: float, prometheus: str | None
    ) -> None:
        async def main() -> None:
            async with open_aggregator(
                listen,
                serve=serve,
                token=self._token,
                heartbeat_timeout_s=heartbeat_timeout_s,
                prometheus=prometheus,
            ) as aggregator:
                self._aggregator = aggregator
                self._trio_token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await self._watch_actors(aggregator)

        try:
            trio.run(main)
        except BaseException as error:  # told to the constructor, or lost with the actor
            self._failure = error
        finally:
            self._ready.set()

    async def _watch_actors(self, aggregator: Aggregator) -> None:
        from ray.util.state import get_actor

        while True:
            await trio.sleep(STATE_POLL_S)
            for actor_id, (name, pid) in list(self._watched.items()):
                try:
                    state = await trio.to_thread.run_sync(get_actor, actor_id)
                except Exception:
                    continue  # no state API here (no dashboard): connections and heartbeats tell
                if state is not None and state.state == "DEAD":
                    del self._watched[actor_id]
                    aggregator.mark_gone_where(_named(name, pid), "actor died")

    def _call(self, function: Any, *args: Any) -> Any:
        return trio.from_thread.run_sync(function, *args, trio_token=self._trio_token)

    # -- the actor's methods ---------------------------------------------------------

    def addresses(self) -> tuple[str, str, str]:
        """``(sources_address, served_address, token)``."""
        assert self._aggregator is not None
        assert self._aggregator.served_address is not None
        return self._aggregator.address, self._aggregator.served_address, self._token

    def prometheus_address(self) -> str | None:
        """``HOST:PORT`` of the Prometheus endpoint, or ``None`` without one."""
        assert self._aggregator is not None
        return self._aggregator.prometheus_address

    def watch_actor(self, actor_id: str, name: str, pid: int) -> None:
        """Mark the source *name* of *pid* gone ``"actor died"`` once Ray says the actor
        *actor_id* is dead."""
        self._watched[actor_id] = (name, pid)

    def sources(self) -> list[dict[str, Any]]:
        """Every source as :class:`~memactor.metrics.SourceStats` fields."""
        import dataclasses

        assert self._aggregator is not None
        stats = self._call(self._aggregator.sources)
        return [dataclasses.asdict(s) for s in stats]

    def copy_of(self, name: str, pid: int | None = None) -> bytes:
        """The aggregator's copy of one source's ledger, as a snapshot's msgpack bytes."""
        assert self._aggregator is not None
        aggregator = self._aggregator
        snapshot = self._call(lambda: aggregator.copy_of(name, pid=pid))
        data: bytes = snapshot.to_msgpack()
        return data

    def snapshot(self, label: str = "", blocks: bool = True) -> bytes:
        """The merged snapshot, as msgpack bytes (:meth:`Snapshot.from_msgpack`)."""
        assert self._aggregator is not None
        aggregator = self._aggregator
        data: bytes = self._call(lambda: aggregator.snapshot(label, blocks=blocks)).to_msgpack()
        return data

    def mark_gone(self, name: str, how: str, pid: int | None = None) -> None:
        assert self._aggregator is not None
        aggregator = self._aggregator
        self._call(lambda: aggregator.mark_gone(name, how, pid=pid))


def _named(name: str, pid: int) -> Callable[[SourceStats], bool]:
    return lambda stats: stats.name == name and stats.pid == pid


def get_aggregator(
    name: str = DEFAULT_NAME,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    serve_port: int = 0,
    heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S,
    prometheus_port: int | None = None,
) -> Any:
    """The aggregator actor called *name* in *namespace*: made (detached, so it outlives
    the driver, on no CPU of its own) unless it runs already, else found. *serve_port*
    is the port of the served stream on its node (0: any; read :meth:`addresses`).
    *prometheus_port*, if given, serves every live source's figures for Prometheus on
    its node, labelled ``host`` and ``process`` (0: any; read
    :meth:`AggregatorActor.prometheus_address`); it needs the ``prometheus`` extra
    there. The options of an aggregator that runs already stand."""
    # A threaded actor: its methods wait on the trio thread, several at a time.
    actor_class = ray.remote(num_cpus=0, max_concurrency=8)(AggregatorActor)  # type: ignore[call-overload]  # Ray's stubs lack actor options
    return actor_class.options(
        name=name, namespace=namespace, lifetime="detached", get_if_exists=True
    ).remote(
        serve_port=serve_port,
        heartbeat_timeout_s=heartbeat_timeout_s,
        prometheus_port=prometheus_port,
    )
