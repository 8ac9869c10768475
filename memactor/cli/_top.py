"""Watch a running program's memory live, from another terminal.

The program serves its metrics actor (``memactor demo --serve``, or
``memactor.remote.open_server(system)`` in your own code). ADDRESS is where:
unix:/path, a path with a '/', tcp://host:port, host:port or :port. Without one, the only
server running as this user (in its runtime directory) is used, and followed: when
that program restarts (on a new socket) and no other server runs, the view moves to it.
An ADDRESS given must answer at once, unless --wait says to wait for the program to
start there. Once connected, when the connection breaks, the view says so and
reconnects, with backoff, until you quit (q). Keys are those of the live view; ? lists
them. Snapshots (s) are taken in the program, with live blocks.

Exit 2, with a one-line message: no terminal to draw on (use ``memactor snapshot``), no
server found, an ADDRESS that does not answer (without --wait), or a server that refuses
this viewer (token, version).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Final

from ._command import EXIT_USAGE, CommandError
from ._served import add_server_arguments, server_of, token_of

EXAMPLE = "memactor top unix:/run/user/1000/memactor/4242.sock"

PROBE_TIMEOUT_S: Final = 5.0
"""How long an ADDRESS given without --wait may take to answer before top gives up."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    add_server_arguments(parser)
    parser.add_argument(
        "--rate", type=float, default=10.0, metavar="HZ", help="views per second (default: 10)"
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait for a program to serve at ADDRESS, retrying, instead of failing at once",
    )


def run(args: argparse.Namespace) -> int:
    """Open the live view on the server's stream until quit; 2 when there is no terminal,
    no server (or an ADDRESS that does not answer, without --wait), or the server refuses
    this viewer."""
    from ..remote import MAX_RATE_HZ, RemoteError, follow, watch

    token = token_of(args)
    if not (0 < args.rate <= MAX_RATE_HZ and math.isfinite(args.rate)):
        raise CommandError(f"--rate must be above 0 and at most {MAX_RATE_HZ:g}, got {args.rate}")
    if args.wait and not args.address:
        raise CommandError("--wait waits for a program at an ADDRESS; give the address")
    address = server_of(args)
    missing = [
        name
        for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout))
        if not stream.isatty()
    ]
    if missing:
        raise CommandError(
            f"the live view needs a terminal, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not one; "
            f"to save a snapshot instead: memactor snapshot {address} -o FILE"
        )
    if args.address and not args.wait:
        _probe(address, token)

    from ..tui import MemactorApp, Post, RemoteActions  # Textual loads only for the view

    actions = RemoteActions(address, token=token)

    async def feed(post: Post) -> None:
        if args.address:
            await watch(address, post, token=token, rate_hz=args.rate)
        else:  # the only local server: follow its program when it restarts elsewhere
            await follow(address, post, token=token, rate_hz=args.rate, moved=moved)

    def moved(new_address: str) -> None:
        actions.address = new_address

    app = MemactorApp(feed, actions=actions, title="memactor top")
    app.run()
    if isinstance(app.feed_error, RemoteError):
        return EXIT_USAGE
    return app.return_code or 0


def _probe(address: str, token: str | None) -> None:
    """Shake hands with the server at *address* once; a :class:`CommandError` (one line)
    when it does not answer within :data:`PROBE_TIMEOUT_S` or refuses this viewer."""
    import trio

    from ..remote import RefusedError, RemoteError, connect

    async def hello() -> None:
        async with connect(address, token=token, name="memactor top", timeout=PROBE_TIMEOUT_S):
            pass

    try:
        trio.run(hello)
    except RefusedError as error:
        raise CommandError(str(error)) from None
    except (RemoteError, OSError) as error:
        reason = " ".join(str(error).split())  # one line, whatever the error said
        raise CommandError(
            f"{reason}; start the program first, or pass --wait to wait for it"
        ) from None
