"""What every ``llmroute`` command shares: the exit codes, the usage error, the error line.

One source for each: a command returns one of the ``EXIT_*`` codes, raises ``UsageError`` for
a problem with how it was called, and reports a problem with ``print_error`` (one line on
stderr, never a traceback).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, TextIO

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "UsageError",
           "print_error", "print_text", "positive_int", "positive_float"]

#: Everything the command was asked to do succeeded.
EXIT_OK = 0
#: The command ran but some of its work failed (a failed item, an unwritable OUTPUT).
EXIT_FAILED = 1
#: Bad usage or input: unknown options, a missing file or key, an OUTPUT that may not be touched.
EXIT_USAGE = 2
#: Stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with how a command was called: reported in one line, exit code 2."""


def print_text(text: str, stream: Optional[TextIO] = None, end: str = "\n") -> None:
    """Write ``text`` to ``stream`` (default stdout) even when its encoding cannot hold every
    character (``PYTHONIOENCODING=ascii``, a legacy console): those are written as
    ``\\xe8``-style escapes instead of raising ``UnicodeEncodeError``."""
    out = stream if stream is not None else sys.stdout
    text += end
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:  # an encoding Python does not know: leave the stream to decide
        pass
    out.write(text)


def print_error(command: str, problem: object, stream: Optional[TextIO] = None) -> None:
    """Write ``<command>: error: <problem>`` as one line to ``stream`` (default stderr)."""
    text = " ".join(str(problem).split()) or type(problem).__name__
    print_text("%s: error: %s" % (command, text), stream if stream is not None else sys.stderr)


def positive_int(text: str) -> int:
    """An argparse type: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % text) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % text)
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive number, got %r" % text) from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("expected a positive number, got %r" % text)
    return value
