"""Watch a running program's memory live, from another terminal.

The program serves its metrics actor (``memactor demo --serve``, or
``memactor.remote.open_server(system)`` in your own code). ADDRESS is where:
unix:/path, a path with a '/', tcp://host:port, host:port or :port. Without one, the only
server running as this user (in its runtime directory) is used, and followed: when
that program restarts (on a new socket) and no other server runs, the view moves to it.
When the connection breaks, the view says so and reconnects, with backoff, until you
quit (q). Keys are those of the live view; ? lists them. Snapshots (s) are taken in the
program, with live blocks.
"""

from __future__ import annotations

import argparse
import math

from ..remote import MAX_RATE_HZ, RemoteError, follow, watch
from ._command import EXIT_USAGE, CommandError
from ._served import add_server_arguments, server_of, token_of

NAME = "top"
HELP = "watch a running program's memory live, from another terminal"
EXAMPLE = "memactor top unix:/run/user/1000/memactor/4242.sock"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    add_server_arguments(parser)
    parser.add_argument(
        "--rate", type=float, default=10.0, metavar="HZ", help="views per second (default: 10)"
    )


def run(args: argparse.Namespace) -> int:
    """Open the live view on the server's stream until quit; 2 when the server refuses
    this viewer (token, version) or the address is bad."""
    token = token_of(args)
    if not (0 < args.rate <= MAX_RATE_HZ and math.isfinite(args.rate)):
        raise CommandError(f"--rate must be above 0 and at most {MAX_RATE_HZ:g}, got {args.rate}")
    address = server_of(args)

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
