"""The ``llmroute`` command line: argparse, printing and exit codes, nothing else.

One module per command. A command module ``llmroute/cli/<name>.py`` has two functions:
``add_parser(subparsers)`` declares the subcommand (and sets ``func=run`` on it), and
``run(args) -> int`` runs it and returns one of the exit codes of ``_common``: 0 success,
1 work that failed while running, 2 bad usage or input, 130 after Ctrl-C. To add a command,
write its module and add its name to ``COMMANDS``; nothing else changes. Command modules
import what they run (the router, the classifier, a backend) inside ``run``, so ``llmroute
--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn, Optional, Sequence

from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["main", "COMMANDS", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED"]

#: The command modules under ``llmroute.cli``, in the order ``--help`` lists them.
COMMANDS = ("demo", "classify", "batch", "usage", "cost")


class _Parser(argparse.ArgumentParser):
    """Raises ``UsageError`` instead of exiting, so ``main`` returns the code."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("%s: %s" % (self.prog, message))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        print("%s\n(see: llmroute --help)" % err, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help and --version exit through argparse
        return done.code if isinstance(done.code, int) else EXIT_OK
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.func(args)


def build_parser() -> argparse.ArgumentParser:
    """The ``llmroute`` parser with every command of ``COMMANDS`` registered."""
    parser = _Parser(prog="llmroute", description="llmroute: route chat completions through "
                                                  "OpenAI-compatible gateways.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module("%s.%s" % (__name__, name)).add_parser(subparsers)
    return parser
