#!/usr/bin/env python3
"""Count the instructions per event of ``Ledger.apply``, compiled and pure Python, under
callgrind: wall clock on a shared machine is noisy, instruction counts are not.

Each mode runs under ``valgrind --tool=callgrind`` twice, applying the first ``--events``
and then three times as many events of one pool-like stream (the stream of the
benchmark, ``bench_ledger.churn_events``, made whole in both runs so that making it
cancels out) in batches of 256; the difference of the two counts over the difference of
the events leaves out the start-up. Prints instructions per event for each mode and
their ratio, and the same for ``list.append`` of the same events as the yardstick.

Run: ``.venv/bin/python scripts/callgrind_ledger.py [--events N]``
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys

import _callgrind as callgrind

MODES = ("append", "python", "compiled")


def run(mode: str, count: int, made: int) -> None:
    """Apply the first *count* of *made* events as *mode* says."""
    from bench_ledger import books_of, churn_events

    from memactor.events import MemoryEvent
    from memactor.metrics import Ledger

    batches = churn_events(made)
    taken = batches[: count // 256]  # churn_events makes whole batches of 256
    if mode == "compiled" and Ledger.implementation != "compiled":
        raise SystemExit("the compiled ledger is not built (or MEMACTOR_PURE_PYTHON is set)")
    method = "apply" if mode == "compiled" else "_apply_python"
    ledger = Ledger()
    apply = getattr(ledger, method)
    out: list[MemoryEvent] = []
    gc.collect()
    gc.freeze()
    if mode == "append":
        append = out.append
        for batch in taken:
            for event in batch:
                append(event)
    else:
        with books_of(method):  # for python: the pure-Python ledger's books, dicts
            for batch in taken:
                apply(batch)


def instructions(mode: str, count: int, made: int) -> int:
    return callgrind.instructions(
        [sys.executable, __file__, "--child", mode, "--events", str(count), "--made", str(made)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=25_600)
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--made", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        run(args.child, args.events, args.made)
        return
    made = 3 * args.events
    # One run outside valgrind first, so that every module's bytecode is cached.
    subprocess.run(
        [sys.executable, __file__, "--child", "python", "--events", "1", "--made", "256"],
        check=True,
    )
    if args.events % 256:
        parser.error("--events must be a multiple of 256 (whole batches)")
    per = {
        mode: (instructions(mode, 3 * args.events, made) - instructions(mode, args.events, made))
        / (2 * args.events)
        for mode in MODES
    }
    print(f"instructions per event (callgrind, {2 * args.events:,} events told apart):")
    print(f"  list.append               {per['append']:8.0f}")
    print(
        f"  Ledger.apply, python      {per['python']:8.0f}  "
        f"({per['append'] / per['python']:.3f} of list.append)"
    )
    print(
        f"  Ledger.apply, compiled    {per['compiled']:8.0f}  "
        f"({per['append'] / per['compiled']:.3f} of list.append, "
        f"{per['python'] / per['compiled']:.2f}x fewer than python)"
    )


if __name__ == "__main__":
    main()
