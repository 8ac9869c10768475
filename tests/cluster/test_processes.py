"""A plain multi-process run, no Ray: worker processes are sources of an aggregator
here, and ``memactor aggregate`` merges served processes for ``memactor snapshot``."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import trio
from prometheus_client.parser import text_string_to_metric_families

from memactor.cluster import open_aggregator
from memactor.metrics import Snapshot

from .workers import push_worker

ROOT = Path(__file__).resolve().parents[2]


async def wait_for_file(path: Path) -> None:
    with trio.fail_after(60):
        while not path.exists() or not path.stat().st_size:
            await trio.sleep(0.05)


async def test_worker_processes_copies_are_exact_and_a_killed_one_is_gone(
    tmp_path: Path,
) -> None:
    spawn = multiprocessing.get_context("spawn")
    async with open_aggregator(heartbeat_timeout_s=10) as aggregator:
        outs = [tmp_path / f"w{i}.msgpack" for i in range(3)]
        workers = [
            spawn.Process(
                target=push_worker,
                args=(aggregator.address, f"w{i}", i, str(outs[i]), i == 2),
            )
            for i in range(3)
        ]
        for worker in workers:
            worker.start()
        try:
            for worker in workers[:2]:
                await trio.to_thread.run_sync(worker.join, 60)
                assert worker.exitcode == 0
            await wait_for_file(outs[2])
            # The finished workers said bye after their last update: exact to the byte.
            for i in range(2):
                own = Snapshot.load(outs[i])
                assert aggregator.copy_of(f"w{i}").to_msgpack() == own.to_msgpack()
                assert aggregator.source(f"w{i}").gone_how == "closed"
            assert aggregator.source("w2").state == "live"
            held = aggregator.snapshot()
            assert held.totals.bytes_reserved == aggregator.source("w2").bytes_reserved > 0
            os.kill(workers[2].pid or 0, signal.SIGKILL)
            await aggregator.wait_until(lambda: aggregator.source("w2").state == "gone")
        finally:
            for worker in workers:
                worker.kill()
                await trio.to_thread.run_sync(worker.join, 10)
    assert aggregator.source("w2").gone_how == "connection lost"
    merged = aggregator.snapshot()
    assert merged.totals.bytes_reserved == 0
    assert merged.components == ()
    assert [s.state for s in merged.sources] == ["gone"] * 3
    # History stays: counters of every source, peaks as sampled.
    assert merged.totals.events_applied == sum(s.events_applied for s in merged.sources)
    assert merged.totals.peak_bytes_reserved >= held.totals.bytes_reserved


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def in_use_by_process(address: str) -> dict[str, float]:
    """The bytes in use per ``process`` label that the Prometheus endpoint at *address*
    exposes."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        exposition = reply.read().decode()
    in_use: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "memactor_memory_bytes" and sample.labels["state"] == "in_use":
                process = sample.labels["process"]
                in_use[process] = in_use.get(process, 0) + sample.value
    return in_use


async def test_memactor_aggregate_merges_served_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sockets = [f"unix:{tmp_path}/p{i}.sock" for i in range(2)]
    merged_at = f"unix:{tmp_path}/merged.sock"
    served = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.workers", sockets[i], str(i), f"{tmp_path}/r{i}"],
            cwd=ROOT,
            env=env,
        )
        for i in range(2)
    ]
    aggregate = None
    try:
        for i in range(2):
            await wait_for_file(tmp_path / f"r{i}")
        prometheus = f"127.0.0.1:{free_port()}"
        aggregate = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "memactor",
                "aggregate",
                *sockets,
                "--serve",
                merged_at,
                "--prometheus",
                prometheus,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        out = tmp_path / "cluster.msgpack"
        with trio.fail_after(60):
            while True:
                done = await trio.run_process(
                    [sys.executable, "-m", "memactor", "snapshot", merged_at, "-o", str(out)],
                    env=env,
                    check=False,
                    capture_stdout=True,
                    capture_stderr=True,
                )
                if done.returncode == 0:
                    snapshot = Snapshot.load(out)
                    if len(snapshot.sources) == 2 and all(s.updates for s in snapshot.sources):
                        break
                await trio.sleep(0.2)
        names = {s.name for s in snapshot.sources}
        assert names == {"served-0", "served-1"}
        prefixes = {s.prefix for s in snapshot.sources}
        assert {c.component.split("/")[0] + "/" for c in snapshot.components} == prefixes
        # Each served process holds three leases of 1000 + seed bytes, each in a block of
        # the pool's 1 KiB size class.
        holders = {o.owner.split("/", 1)[1]: o.bytes_in_use for o in snapshot.owners}
        assert holders["holder-0"] == holders["holder-1"] == 3 * 1024
        # The same sources for Prometheus (refreshed once a second): one process label
        # each, with its bytes in use.
        expected = {f"{s.name}:{s.pid}": s.bytes_in_use for s in snapshot.sources}
        with trio.fail_after(30):
            while (
                in_use := await trio.to_thread.run_sync(in_use_by_process, prometheus)
            ).keys() != expected.keys():
                await trio.sleep(0.2)
        assert in_use == expected
        report = await trio.run_process(
            [sys.executable, "-m", "memactor", "report", str(out)],
            env=env,
            capture_stdout=True,
        )
        lines = report.stdout.decode().splitlines()
        for source in snapshot.sources:
            name = source.prefix.rstrip("/")
            assert any(line.startswith(f"source {name}: live, ") for line in lines), lines
            assert any(line.startswith(f"{name}/pool ") for line in lines), lines
    finally:
        for process in [*served, *([aggregate] if aggregate else [])]:
            process.kill()
            process.wait()
