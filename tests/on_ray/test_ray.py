"""memactor on a real local Ray instance: the aggregator actor, sources in Ray actors."""

from __future__ import annotations

import time
from typing import Any

import pytest

from memactor.metrics import Snapshot

ray = pytest.importorskip("ray")

from cluster.test_processes import in_use_by_process  # noqa: E402

from memactor.ray import get_aggregator  # noqa: E402

from .workers import AsyncWorker, Worker, task  # noqa: E402

pytestmark = pytest.mark.usefixtures("ray_session")


def sources(aggregator: Any) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in ray.get(aggregator.sources.remote())}


def wait_for(condition: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_ray_sources_copies_are_exact_gaps_heal_and_a_killed_one_is_gone() -> None:
    namespace = "test-exact"
    aggregator = get_aggregator(namespace=namespace, prometheus_port=0)
    # Found by name and namespace: the same actor.
    assert get_aggregator(namespace=namespace)._actor_id == aggregator._actor_id
    workers = [Worker.remote(f"w{i}", namespace) for i in range(3)]  # type: ignore[attr-defined]  # made by @ray.remote
    ray.get([w.work.remote(i, 3) for i, w in enumerate(workers)])
    # Prometheus sees each worker under its host and process, with its bytes in use.
    address = ray.get(aggregator.prometheus_address.remote())
    wait_for(
        lambda: (
            in_use_by_process(address)
            == {f"{s['name']}:{s['pid']}": s["bytes_in_use"] for s in sources(aggregator).values()}
        )
    )
    # A lost update: the aggregator asks for a checkpoint and catches up.
    ray.get(workers[0].lose_an_update.remote(10))
    wait_for(lambda: sources(aggregator)["w0"]["checkpoints"] == 2)
    assert sources(aggregator)["w0"]["gaps"] == 1
    # Killing an actor ends its process: its source is gone, its memory leaves the totals.
    killed_pid = ray.get(workers[2].pid.remote())
    ray.kill(workers[2])
    wait_for(lambda: sources(aggregator)["w2"]["state"] == "gone")
    assert sources(aggregator)["w2"]["gone_how"] in ("connection lost", "actor died")
    assert sources(aggregator)["w2"]["pid"] == killed_pid
    # The others finish: a last update, a bye. Their copies equal their ledgers.
    owns = ray.get([w.finish.remote() for w in workers[:2]])
    for i, own in enumerate(owns):
        wait_for(lambda i=i: sources(aggregator)[f"w{i}"]["state"] == "gone")
        assert ray.get(aggregator.copy_of.remote(f"w{i}")) == own
        assert sources(aggregator)[f"w{i}"]["gone_how"] == "closed"
    # A task and an async actor are sources too, for as long as their source is open.
    from_task = ray.get(task.remote("task", namespace, 20))
    from_async = ray.get(AsyncWorker.remote().run.remote("async", namespace, 21))  # type: ignore[attr-defined]  # made by @ray.remote
    for name, own in (("task", from_task), ("async", from_async)):
        wait_for(lambda n=name: sources(aggregator)[n]["state"] == "gone")
        assert ray.get(aggregator.copy_of.remote(name)) == own
    merged = Snapshot.from_msgpack(ray.get(aggregator.snapshot.remote()))
    assert merged.totals.bytes_reserved == 0
    assert merged.totals.peak_bytes_reserved > 0
    assert {s.name for s in merged.sources} == {"w0", "w1", "w2", "task", "async"}
    ray.kill(aggregator)
