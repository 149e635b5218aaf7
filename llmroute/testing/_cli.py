"""``python -m llmroute.testing``: serve a FakeGateway until SIGTERM/SIGINT or stdin closes."""
from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import threading
from typing import Any, Optional, Sequence

from .gateway import FakeGateway

__all__ = ["main"]


class _Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave the serving wait."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop()


def _watch_stdin(stop: threading.Event) -> None:
    """Stop when stdin closes, if stdin is a pipe or terminal (a /dev/null stdin is ignored)."""
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)):
        return

    def read_until_eof() -> None:
        # os.read, not sys.stdin: a daemon thread blocked inside sys.stdin's buffer lock makes
        # the interpreter abort at exit ("could not acquire lock ... at interpreter shutdown").
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=read_until_eof, daemon=True, name="FakeGateway-stdin").start()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Serve a FakeGateway until SIGTERM/SIGINT or stdin closes; print its base URL first."""
    parser = argparse.ArgumentParser(
        prog="python -m llmroute.testing",
        description="Serve a fake OpenAI-compatible gateway on a loopback address. The first "
                    "line of stdout is its base URL; it stops on SIGTERM, SIGINT or when a "
                    "piped stdin closes.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between SSE events")
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    args = parser.parse_args(argv)
    try:
        gateway = FakeGateway(host=args.host, port=args.port, latency=args.latency,
                              chunk_delay=args.chunk_delay, api_key=args.api_key).start()
    except (ValueError, OSError) as err:
        parser.error(str(err))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(gateway.base_url, flush=True)
        _watch_stdin(stop)
        stop.wait()
    except _Stop:
        pass
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        gateway.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
