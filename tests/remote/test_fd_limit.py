"""A served program under a low file-descriptor limit, flooded with idle connections.

The program runs in a subprocess that lowers ``RLIMIT_NOFILE`` once it serves; this
test opens 200 connections that say hello and then sit idle, so the server runs out of
file descriptors long before its connection cap. The program must keep running with an
exact ledger, the failed accepts must be counted, and once the peers go its file
descriptors must be back to where they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from memactor.remote import parse_address
from memactor.remote._wire import HELLO, PROTOCOL_VERSION, pack

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counts file descriptors in /proc"
)

LIMIT_S = 120  # generous: a bound on a hang, never a timing assertion
SPARE_FDS = 6
"""File descriptors the program has to spare once it serves: fewer than the server's cap
on connections not yet welcomed (8), so the flood runs it out of descriptors for sure."""
PEERS = 200

PROGRAM = """
# The served program: works, serves, and answers "state" with its state as JSON.
import json, os, resource, sys
import trio
import memactor
from memactor.remote import open_server



def fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # out of file descriptors: listing needs one
        return -1


async def main():
    commands = trio.lowlevel.FdStream(os.dup(0))
    async with memactor.open_system(sample_hz=5) as system:
        loader = system.reporter("loader")
        live = []
        rounds = 0
        still = trio.Lock()  # held while the ledger is checked: no event in between

        async def work():
            nonlocal rounds
            while True:
                async with still:
                    rounds += 1
                    loader.alloc(rounds, 10 + rounds % 7)
                    live.append(rounds)
                    if len(live) > 5:
                        block = live.pop(0)
                        loader.free(block, 10 + block % 7)
                await trio.sleep(0.005)

        async with open_server(system, ":0") as server, trio.open_nursery() as nursery:
            nursery.start_soon(work)
            # A handful of descriptors to spare: fewer than the server's caps allow.
            baseline = fds()
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (baseline + int(sys.argv[1]), hard))
            say = lambda **fields: print(json.dumps(fields), flush=True)
            say(address=server.address, fds=baseline)
            pending = b""
            while True:
                chunk = await commands.receive_some(1024)
                pending += chunk
                if not chunk or b"stop" in pending:
                    break
                while b"\\n" in pending:
                    _, _, pending = pending.partition(b"\\n")
                    async with still:
                        await system.metrics.flush()
                        expected = sum(10 + block % 7 for block in live)
                        exact = system.ledger.statistics().bytes_in_use == expected
                    say(
                        fds=fds(),
                        rounds=rounds,
                        exact=exact,
                        restarts=system.metrics.ref.statistics().restarts,
                        **{k: getattr(server.statistics(), k) for k in (
                            "connections_now", "accept_failures", "turned_away"
                        )},
                    )
            nursery.cancel_scope.cancel()
    print(json.dumps({"done": True}), flush=True)


trio.run(main)
"""


class Program:
    """The served program in its subprocess, asked for its state one line at a time."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._pending = b""

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self._pending:
            chunk = await self.process.stdout.receive_some(4096)
            assert chunk, "the program ended"
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        result: dict[str, Any] = json.loads(line)
        return result

    async def state(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(b"state\n")
        return await self.line()


async def flood(address: str, peers: list[trio.SocketStream]) -> None:
    """Open PEERS connections that say hello and stay idle; those the kernel could not
    even queue give up after a while (a bound, not a measurement)."""
    where = parse_address(address)
    hello = pack(HELLO, {"version": PROTOCOL_VERSION, "client": "idle"})

    async def one() -> None:
        with trio.move_on_after(2):
            stream = await trio.open_tcp_stream(where.host, where.port)  # type: ignore[union-attr]  # TCP here
            peers.append(stream)
            await stream.send_all(hello)

    async with trio.open_nursery() as nursery:
        for _ in range(PEERS):
            nursery.start_soon(one)


async def test_idle_peers_under_a_low_fd_limit_never_harm_the_program() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", PROGRAM, str(SPARE_FDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=root,
        env=env,
    )
    program = Program(process)
    peers: list[trio.SocketStream] = []
    try:
        with trio.fail_after(LIMIT_S):
            started = await program.line()
            baseline = started["fds"]
            assert baseline > 0
            await flood(started["address"], peers)
            assert len(peers) > SPARE_FDS  # queued by the kernel, if not accepted
            flooded = await program.state()
            while flooded["accept_failures"] == 0:
                await trio.sleep(0.05)
                flooded = await program.state()
            later = await program.state()
            while later["rounds"] == flooded["rounds"]:
                await trio.sleep(0.05)
                later = await program.state()
            assert (later["exact"], later["restarts"]) == (True, 0)
            for stream in peers:
                await stream.aclose()
            end = await program.state()
            # Every peer gone, and the program still at work.
            while (end["connections_now"], end["fds"]) != (0, baseline) or (
                end["rounds"] == later["rounds"]
            ):
                await trio.sleep(0.05)
                end = await program.state()
            assert (end["exact"], end["restarts"]) == (True, 0)
            assert process.stdin is not None
            await process.stdin.send_all(b"stop\n")
            assert await program.line() == {"done": True}
            assert await process.wait() == 0
    finally:
        for stream in peers:
            await stream.aclose()
        if process.returncode is None:
            process.kill()
            await process.wait()
    # The count of the baseline included the descriptor that listing /proc/self/fd uses.
    assert flooded["connections_now"] <= SPARE_FDS + 1
