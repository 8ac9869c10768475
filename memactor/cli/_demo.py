"""Run a real pipeline and watch its memory: live on a terminal, a report otherwise.

A source produces frames; ``decode`` processes each one chunk by chunk on pooled
buffers (``decode.chunks`` and ``pool``); ``upload`` copies it to the GPU and back
(``gpu``: the host backend on a machine without one); ``enrich`` keeps a small header per
frame for a while; ``sink`` folds each frame into a checksum. With ``--leak``, ``enrich``
keeps one header in ten for ever, and the leak verdicts name it.

On a terminal the live view opens and the pipeline runs until you quit (q), or for
--seconds/--items. With --headless, or without a terminal, it runs for 10 s (or as told)
and prints the snapshot report and the diff between a snapshot after warm-up and one at
the end. --serve also serves the metrics actor, so that ``memactor top`` can watch from
another terminal. --prometheus serves its figures for Prometheus, --jsonl writes them to
a file, a line per tick.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import sole_error
from ._command import CommandError
from ._served import add_token_arguments, token_of

if TYPE_CHECKING:  # trio, NumPy and the actors load in run(), not for --help
    from ..actors import MemorySystem
    from ..metrics import Snapshot
    from ._pipeline_demo import PipelineRun
    from ._signals import StopSignals

EXAMPLE = "memactor demo --headless --seconds 30 --leak"

MAX_SECONDS = 3600.0
"""The longest run the demo accepts: an hour."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--headless", action="store_true", help="print the report instead of the live view"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="how long to run (default: until quit; 10 when headless)",
    )
    parser.add_argument(
        "--items", type=int, default=None, help="how many frames to run (instead of a time)"
    )
    parser.add_argument("--leak", action="store_true", help="make the enrich stage leak")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument(
        "--save", type=Path, metavar="FILE", help="also save the final snapshot to FILE"
    )
    parser.add_argument(
        "--serve",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="serve the metrics actor for memactor top (default: this process's socket)",
    )
    add_token_arguments(parser, "the token viewers must send")
    parser.add_argument(
        "--prometheus",
        metavar="ADDRESS",
        help="serve Prometheus metrics on HOST:PORT (or PORT, on loopback) at /metrics",
    )
    parser.add_argument(
        "--jsonl", type=Path, metavar="FILE", help="write a JSON line per tick to FILE"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo pipeline under the live view, or headless with a report; exit 0 (a
    leak is the point, not a failure), 1 if the pipeline failed, 2 on bad arguments."""
    seconds, items = args.seconds, args.items
    if seconds is not None and not (0 < seconds <= MAX_SECONDS and math.isfinite(seconds)):
        raise CommandError(
            f"--seconds must be above 0 and at most {MAX_SECONDS:g}, got {seconds:g}"
        )
    if items is not None and items < 1:
        raise CommandError(f"--items must be at least 1, got {items}")
    token = token_of(args)
    if args.save is not None:
        _check_writable(args.save)  # before the run, not after it
    if args.serve is not None and args.serve:
        from ..remote import parse_address

        try:
            parse_address(args.serve)
        except ValueError as error:
            raise CommandError(str(error)) from None
    _check_exporters(args)
    live = not args.headless and sys.stdin.isatty() and sys.stdout.isatty()
    if live:
        return _run_live(args, items, seconds, token)
    if seconds is None and items is None:
        seconds = 10.0
    return _run_headless(args, items, seconds, token)


def _run_live(
    args: argparse.Namespace, items: int | None, seconds: float | None, token: str | None
) -> int:
    from ._signals import StoppedBySignal

    saved: list[Path] = []

    async def main(system: MemorySystem) -> None:
        try:
            await _run_demo(system, args, items, seconds, announce=False)
        finally:
            # Also when you quit before the end: the memory as it stood then.
            if args.save:
                saved.append(_save(system.ledger.snapshot("end"), args.save))

    from .. import tui  # Textual loads only for the live view

    serve: str | bool = False if args.serve is None else (args.serve or True)
    name = "memactor demo" + (" --leak" if args.leak else "")
    code = tui.run(main, name=name, serve=serve, token=token)
    for path in saved:
        print(f"snapshot saved to {path}")
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        raise StoppedBySignal(code - 128)
    return code


def _run_headless(
    args: argparse.Namespace, items: int | None, seconds: float | None, token: str | None
) -> int:
    import trio

    from ..metrics import plural, render_diff, render_snapshot
    from ..remote import RemoteError
    from ._signals import StopSignals

    what = plural(items, "frame") if items is not None else f"{seconds:g} s"
    signals = StopSignals()
    with signals.caught():  # before the first line: a reader may signal once it sees it
        print(f"memactor demo: running the pipeline for {what}{' with a leak' * args.leak}")
        sys.stdout.flush()
        try:
            result, end = trio.run(_headless_main, args, items, seconds, token, signals)
        except BaseExceptionGroup as group:
            # The system's nursery wraps what failed in it: a server that could not listen
            # is a usage error (exit 2 with its message), anything else a real failure.
            error = sole_error(group)
            if isinstance(error, CommandError):
                raise error from None
            raise
        except (OSError, RemoteError, ValueError) as error:
            raise CommandError(str(error)) from None
        out = sys.stdout
        if result is not None:
            out.write(f"{plural(result.frames, 'frame')} in {result.elapsed_s:.1f} s\n\n")
            out.write(render_snapshot(result.end))
            out.write("\n")
            out.write(render_diff(result.change))
            end = result.end
        if args.save:
            # Also when stopped by a signal: the memory as it stood then.
            gap = "\n" if result is not None else ""
            out.write(f"{gap}snapshot saved to {_save(end, args.save)}\n")
    signals.raise_if_received()
    return 0


async def _headless_main(
    args: argparse.Namespace,
    items: int | None,
    seconds: float | None,
    token: str | None,
    signals: StopSignals,
) -> tuple[PipelineRun | None, Snapshot]:
    """Run the pipeline (served with --serve) until it ends or a stop signal cancels it;
    return the run (None when stopped) and the snapshot taken once the system closed."""
    import trio

    from ..actors import open_system
    from ..remote import RemoteError, open_server

    stop = trio.CancelScope()
    result: PipelineRun | None = None
    async with trio.open_nursery() as watching:
        await watching.start(signals.watch, stop, watching.cancel_scope)
        async with open_system() as system:
            if args.serve is None:
                with stop:
                    result = await _run_demo(system, args, items, seconds)
            else:
                # The server closes normally after a stop: viewers get a closing frame and
                # the socket file goes.
                async with AsyncExitStack() as serving:
                    try:
                        server = await serving.enter_async_context(
                            open_server(system, args.serve or None, token=token)
                        )
                    except (OSError, RemoteError, ValueError) as error:
                        where = args.serve or "this process's socket"
                        raise CommandError(f"cannot serve on {where}: {error}") from None
                    print(f"serving on {server.address}; watch with: memactor top {server.address}")
                    sys.stdout.flush()
                    with stop:
                        result = await _run_demo(system, args, items, seconds)
        watching.cancel_scope.cancel()
    # The ledger is complete once the system has closed.
    return result, system.ledger.snapshot("end")


async def _run_demo(
    system: MemorySystem,
    args: argparse.Namespace,
    items: int | None,
    seconds: float | None,
    *,
    announce: bool = True,
) -> PipelineRun:
    from ._pipeline_demo import run_demo_in

    async with _exporting(system, args, announce=announce):
        return await run_demo_in(
            system, items=items, seconds=seconds, leak=args.leak, seed=args.seed
        )


def _check_exporters(args: argparse.Namespace) -> None:
    """Refuse a bad --prometheus address or --jsonl file, or a missing extra, up front."""
    if args.prometheus is not None:
        try:
            from ..exporters import parse_listen_address  # the extra loads only when asked

            parse_listen_address(args.prometheus)
        except (ImportError, ValueError) as error:
            raise CommandError(f"--prometheus: {error}") from None
    if args.jsonl is not None:
        _check_writable(args.jsonl)


@asynccontextmanager
async def _exporting(
    system: MemorySystem, args: argparse.Namespace, *, announce: bool
) -> AsyncIterator[None]:
    """The exporters asked for run while the block runs."""
    async with AsyncExitStack() as exporters:
        if args.prometheus is not None:
            from ..exporters import serve_prometheus

            try:
                exporter = await exporters.enter_async_context(
                    serve_prometheus(system, args.prometheus)
                )
            except OSError as error:
                raise CommandError(
                    f"cannot serve Prometheus on {args.prometheus}: {error}"
                ) from None
            if announce:
                print(f"Prometheus metrics at {exporter.url}")
                sys.stdout.flush()
        if args.jsonl is not None:
            from ..exporters import export_jsonl

            try:
                await exporters.enter_async_context(export_jsonl(system, args.jsonl))
            except OSError as error:
                raise CommandError(f"cannot write {args.jsonl}: {error}") from None
        yield


def _check_writable(path: Path) -> None:
    if path.is_dir():
        raise CommandError(f"cannot save to {path}: it is a directory")
    if not path.parent.is_dir():
        raise CommandError(f"cannot save to {path}: no directory {path.parent}")


def _save(snapshot: Snapshot, path: Path) -> Path:
    try:
        return snapshot.save(path)
    except OSError as error:
        raise CommandError(f"cannot save to {path}: {error.strerror or error}") from None
