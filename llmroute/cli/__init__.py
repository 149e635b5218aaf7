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
import logging
import sys
from typing import Any, NoReturn, Optional, Sequence

from .._version import __version__
from ..errors import LLMRouteError, redact
from ._common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError,
                      print_error)

__all__ = ["main", "COMMANDS", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED"]

#: The command modules under ``llmroute.cli``, in the order ``--help`` lists them.
COMMANDS = ("demo", "classify", "batch", "usage", "cost")


class _Parser(argparse.ArgumentParser):
    """Raises ``UsageError`` instead of exiting, so ``main`` returns the code."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("%s: %s" % (self.prog, message))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Problems are one line on stderr; ``--debug`` adds DEBUG logging and the traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        print("%s (see: %s --help)" % (err, str(err).split(":")[0]), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help and --version exit through argparse
        return done.code if isinstance(done.code, int) else EXIT_OK
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    if debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("llmroute %s: interrupted" % args.command, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `llmroute usage | head`: the reader left; not an error to report
        _silence_stdout()
        return EXIT_OK
    except UsageError as err:
        if debug:
            raise
        print_error("llmroute %s" % args.command, err)
        return EXIT_USAGE
    except (LLMRouteError, OSError, ValueError) as err:
        if debug:
            raise
        print_error("llmroute %s" % args.command, "%s: %s" % (type(err).__name__, err))
        return EXIT_FAILED
    except Exception as err:  # noqa: BLE001 - the program's edge: a bug in a command must
        # still end in one line and an exit code, never a traceback on a user's terminal.
        if debug:
            raise
        print_error("llmroute %s" % args.command, "internal error, %s: %s (run with --debug "
                    "for the traceback)" % (type(err).__name__, redact(str(err))))
        return EXIT_FAILED


def _silence_stdout() -> None:
    """Point stdout at devnull so that flushing it at exit does not raise again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture it)
        pass


def build_parser() -> argparse.ArgumentParser:
    """The ``llmroute`` parser with every command of ``COMMANDS`` registered."""
    parser = _Parser(
        prog="llmroute", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="llmroute: route chat completions through OpenAI-compatible gateways.",
        epilog="examples:\n"
               "  llmroute demo                      the whole job offline, no key needed\n"
               "  llmroute classify \"Solve 2x + 3 = 7\"\n"
               "  llmroute batch in.jsonl -o out.jsonl --workers 16 --resume\n"
               "  llmroute usage --ledger usage.db --by model --chart\n"
               "  llmroute cost --model claude-opus-4.6 --input-tokens 500M --output-tokens 1B\n"
               "\nexit codes: 0 ok, 1 the work failed, 2 bad usage, 130 interrupted.\n"
               "Each command has --help with its own examples.")
    parser.add_argument("--version", action="version", version="llmroute %s" % __version__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="log at DEBUG on stderr and show tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module("%s.%s" % (__name__, name))
        _with_parent(subparsers, common, module.add_parser)
    return parser


def _with_parent(subparsers: Any, common: argparse.ArgumentParser, add_parser: Any) -> None:
    """Call a command's ``add_parser`` so that its parser also takes the common options."""
    original = subparsers.add_parser

    def add_with_common(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("parents", []).append(common)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        return original(name, **kwargs)

    subparsers.add_parser = add_with_common
    try:
        add_parser(subparsers)
    finally:
        subparsers.add_parser = original
