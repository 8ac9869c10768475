#!/usr/bin/env python3
"""Count the instructions of one emit with allocation sites off, on and sampled, under
callgrind: wall clock on a shared machine is noisy, instruction counts are not.

Runs itself under ``valgrind --tool=callgrind`` twice per mode, emitting ``--emits``
and three times as many allocations through a reporter (the difference leaves out the
start-up), with one hash seed, and prints instructions per emit with the ratios against
sites off.

Run: ``.venv/bin/python scripts/callgrind_sites.py [--emits N]``
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
from collections.abc import Callable

from _callgrind import instructions_per_call

SAMPLE_EVERY = 64
MODES = {"off": 0, "on": 1, "sampled": SAMPLE_EVERY}


def emit(mode: str, count: int) -> None:
    """Emit *count* allocations through a reporter with sites as *mode* says."""
    from memactor.events import SiteTable
    from memactor.runtime import MemoryReporter
    from memactor.runtime._inbox import Inbox
    from memactor.runtime._sited import SitedReporter

    every = MODES[mode]
    inbox = Inbox(1)
    reporter = MemoryReporter("pool", inbox, batch_size=256)
    if every > 0:
        reporter = SitedReporter("pool", inbox, batch_size=256)
        reporter.use_sites(SiteTable(every))
    alloc = reporter.alloc
    # Start-up's objects out of the collector's way: a full collection walks them all,
    # and where one falls differs between runs by more than an emit's instructions.
    gc.collect()
    gc.freeze()
    for block in range(count):
        alloc(block, 4096)
        if block % 256 == 255:
            inbox.take_handed_on()


def child_command(mode: str) -> Callable[[int], list[str]]:
    """The command that emits a given number of allocations in *mode*."""
    return lambda count: [sys.executable, __file__, "--child", mode, "--emits", str(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--emits", type=int, default=200_000)
    parser.add_argument("--child", choices=sorted(MODES))
    args = parser.parse_args()
    if args.child:
        emit(args.child, args.emits)
        return
    # One run outside valgrind first, so that every module's bytecode is cached: a
    # compile inside one measured run and not in its pair would count as emits.
    subprocess.run([sys.executable, __file__, "--child", "on", "--emits", "1"], check=True)
    # The difference of two runs leaves out the start-up and the table's set-up.
    per = {mode: instructions_per_call(child_command(mode), args.emits) for mode in MODES}
    print(f"instructions per emit (callgrind, {2 * args.emits:,} emits told apart):")
    print(f"  sites off                 {per['off']:8.0f}")
    print(f"  sites on                  {per['on']:8.0f}  ({per['on'] / per['off']:.2f}x off)")
    print(
        f"  sampled, one in {SAMPLE_EVERY:<3}       {per['sampled']:8.0f}  "
        f"({per['sampled'] / per['off']:.2f}x off)"
    )


if __name__ == "__main__":
    main()
