"""Save a snapshot of a running program's memory, taken through its metrics server.

The program serves its metrics actor with ``memactor.remote.open_server(system)``.
ADDRESS is where: unix:/path, a path with a '/', tcp://host:port, host:port or :port.
Without one, the only server running as this user (in its runtime directory) is used.
The snapshot includes every live block unless --no-blocks; --label names it in the
file only (the program's own labelled snapshots are never touched). The file is written
atomically, in msgpack unless --format json or a .json suffix says otherwise.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..events import format_size
from ._command import CommandError
from ._served import add_server_arguments, server_of, token_of

if TYPE_CHECKING:
    from ..metrics import Snapshot
    from ..remote import Source

EXAMPLE = "memactor snapshot unix:/run/user/1000/memactor/4242.sock -o before.msgpack"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    add_server_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    parser.add_argument("--label", default="", help="the snapshot's label, in the file")
    parser.add_argument(
        "--no-blocks", action="store_true", help="leave the live blocks out (a smaller file)"
    )
    parser.add_argument(
        "--format", choices=("msgpack", "json"), help="file format (default: from the suffix)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="give up after S seconds"
    )


def run(args: argparse.Namespace) -> int:
    """Fetch the snapshot and save it; print where."""
    import trio

    from ..remote import RemoteError

    token = token_of(args)
    if not args.timeout > 0:
        raise CommandError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    address = server_of(args)
    try:
        snapshot, source = trio.run(
            _fetch, address, args.label, not args.no_blocks, token, args.timeout
        )
    except RemoteError as error:
        raise CommandError(str(error)) from None
    try:
        path = snapshot.save(args.output, format=args.format)
    except OSError as error:
        raise CommandError(f"cannot write {args.output}: {error.strerror or error}") from None
    print(f"saved {path}: {_describe(snapshot, source, address)}")
    return 0


async def _fetch(
    address: str, label: str, blocks: bool, token: str | None, timeout: float
) -> tuple[Snapshot, Source]:
    import trio

    from ..remote import RemoteError, connect

    with trio.move_on_after(timeout):
        async with connect(address, token=token, name="memactor snapshot", timeout=timeout) as c:
            return await c.snapshot(label, blocks=blocks), c.source
    raise RemoteError(f"no snapshot from {address} within {timeout:g} s")


def _describe(snapshot: Snapshot, source: Source, address: str) -> str:
    from ..metrics import plural

    label = f" {snapshot.label!r}" if snapshot.label else ""
    blocks = f", {plural(len(snapshot.blocks), 'live block')}" if len(snapshot.blocks) else ""
    return (
        f"snapshot{label} of {source.name} (pid {source.pid}) at {address}: "
        f"{plural(len(snapshot.components), 'component')}{blocks}, "
        f"{format_size(snapshot.totals.bytes_in_use)} in use"
    )
