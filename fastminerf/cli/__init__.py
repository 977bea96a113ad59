"""``fastminerf`` command line: one thin module per subcommand, over library functions.

Each module in :data:`COMMANDS` defines ``register(subparsers)`` (adds its parser and sets
``func``). Bad input surfaces as :class:`fastminerf.errors.InputError` and is printed as
one line (``error: <file>: <problem>``) with exit code 2 and no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import InputError

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
    import logging

    from ..ops.cpu import tune_allocator

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
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(ret or 0)


if __name__ == "__main__":
    sys.exit(main())
