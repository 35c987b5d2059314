"""The ``pairbench`` command: a Ctrl-C while the command line is still loading (its imports build the workloads'
registry) ends in the same one line as one during a run, never a traceback."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from runners.cli import main as run
    except KeyboardInterrupt:
        print("\ninterrupted: 0 records written", file=sys.stderr)
        return 130
    try:
        return run(argv)
    except KeyboardInterrupt:  # between the imports and the command's own handler
        print("\ninterrupted", file=sys.stderr)
        return 130
