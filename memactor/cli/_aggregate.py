"""Merge the memory of several processes into one served view: a cluster.

Each ADDRESS is a program that serves its metrics actor (``open_server(system)``); it
is followed as a source (its snapshot, live blocks included, fetched --rate times a
second, and only the difference applied). Programs that run ``memactor.cluster
.open_source(system, LISTEN)`` push their updates to --listen instead. The merged view
is served at --serve (default: this process's socket in the runtime directory), so
``memactor top``, ``snapshot``, ``report``, ``diff`` and ``check`` work on the cluster:
each component and owner is named ``NAME@HOST:PID/`` then its own name. With
--prometheus, every live source's figures are served for Prometheus there, labelled
``host`` and ``process`` (``NAME:PID``). Runs until interrupted (Ctrl-C); prints where
it listens and serves.
"""

from __future__ import annotations

import argparse
import functools
import math

from ._command import CommandError
from ._served import add_token_arguments, token_of

EXAMPLE = "memactor aggregate unix:/run/user/1000/memactor/4242.sock :7070 --listen :7071"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("addresses", nargs="*", metavar="ADDRESS", help="served programs to follow")
    parser.add_argument(
        "--listen",
        default="tcp://127.0.0.1:0",
        metavar="ADDRESS",
        help="where sources connect to push updates (default: a free port on 127.0.0.1)",
    )
    parser.add_argument(
        "--serve",
        metavar="ADDRESS",
        help="where the merged view is served (default: the runtime directory's socket)",
    )
    parser.add_argument(
        "--rate", type=float, default=10.0, metavar="HZ", help="snapshots a second per ADDRESS"
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=3.0,
        metavar="S",
        help="mark a pushing source gone after S seconds without an update (default: 3)",
    )
    parser.add_argument(
        "--prometheus",
        metavar="HOST:PORT",
        help="also serve every source's figures for Prometheus here, labelled host and process",
    )
    add_token_arguments(parser, "the token of sources, viewers and followed programs")


def run(args: argparse.Namespace) -> int:
    """Aggregate until interrupted."""
    import trio

    from ..remote import RemoteError, parse_address

    token = token_of(args)
    if not (0 < args.rate <= 1000 and math.isfinite(args.rate)):
        raise CommandError(f"--rate must be above 0 and at most 1000, got {args.rate}")
    if not (args.heartbeat_timeout > 0 and math.isfinite(args.heartbeat_timeout)):
        raise CommandError(f"--heartbeat-timeout must be above 0, got {args.heartbeat_timeout}")
    try:
        for address in [*args.addresses, args.listen, *([args.serve] if args.serve else [])]:
            parse_address(address)
    except ValueError as error:
        raise CommandError(str(error)) from None
    if args.prometheus is not None:
        _check_prometheus(args.prometheus)
    try:
        trio.run(_aggregate, args, token)
    except (RemoteError, OSError) as error:
        raise CommandError(str(error)) from None
    except BaseExceptionGroup as group:
        # trio groups what its nurseries saw; a refused token or a port taken is ours
        # to say plainly, anything else (an interrupt) goes on up.
        found, _ = group.split((RemoteError, OSError))
        if found is None:
            raise
        first: BaseException = found
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise CommandError(str(first)) from None
    return 0


async def _aggregate(args: argparse.Namespace, token: str | None) -> None:
    import trio

    from ..cluster import open_aggregator

    async with open_aggregator(
        args.listen,
        serve=args.serve or _default_serve(),
        token=token,
        heartbeat_timeout_s=args.heartbeat_timeout,
        prometheus=args.prometheus,
    ) as aggregator:
        print(f"sources push to {aggregator.address}", flush=True)
        print(f"serving the merged view at {aggregator.served_address}", flush=True)
        if aggregator.prometheus_address is not None:
            print(
                f"Prometheus metrics at http://{aggregator.prometheus_address}/metrics", flush=True
            )
        async with trio.open_nursery() as nursery:
            for address in args.addresses:
                nursery.start_soon(
                    functools.partial(aggregator.pull, address, rate_hz=args.rate, token=token)
                )
            await trio.sleep_forever()


def _check_prometheus(address: str) -> None:
    """Raise :class:`CommandError` for a bad --prometheus address or a missing extra."""
    try:
        from ..exporters import parse_listen_address

        parse_listen_address(address)
    except ImportError as error:
        raise CommandError(f"--prometheus: {error}") from None
    except ValueError as error:
        raise CommandError(f"--prometheus: {error}") from None


def _default_serve() -> str:
    from ..remote._address import default_address

    return str(default_address())
