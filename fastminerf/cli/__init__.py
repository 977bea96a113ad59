"""``fastminerf`` command line: one thin module per subcommand, over library functions.

Each module in :data:`COMMANDS` defines ``register(subparsers)`` (adds its parser and sets
``func``). Errors meant for users (:class:`fastminerf.errors.FastMinerfError`: bad input,
a missing extra, a diverged run) are printed as one line (``error: <file>: <problem>``)
with their exit code (2 for bad input) and no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import FastMinerfError
from ..ops.cpu import tune_allocator

#: subcommand modules, in the order ``fastminerf --help`` lists them
COMMANDS = [
    "demo",
    "synth",
    "preprocess",
    "train",
    "render",
    "lipsync",
    "lipsync_train",
    "eval",
    "personalize",
    "adapt",
    "codes",
    "preview",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastminerf", description="One hash-grid radiance field for many people.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("PIL").setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        ret = args.func(args)
    except FastMinerfError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(ret or 0)


if __name__ == "__main__":
    sys.exit(main())
