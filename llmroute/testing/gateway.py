"""FakeGateway: an OpenAI-compatible chat server on a loopback address, for tests and demos.

It answers ``/v1/chat/completions`` (JSON or SSE) with deterministic replies, plays scripted
``Reply`` values per model in order (errors, delays, drops, cut streams) and records every
request. Standard library only, so it also serves benchmarks and offline tries::

    with FakeGateway() as gw:
        gw.script("gpt-5.4", Reply(status=429, headers={"Retry-After": "1"}), Reply(content="ok"))
        ...  # point a client at gw.base_url
        assert [r.answered_status for r in gw.requests_for("gpt-5.4")] == [429, 200]

``python -m llmroute.testing --port 0`` serves one from the command line (see ``main``).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import ipaddress
import itertools
import json
import logging
import math
import os
import selectors
import signal
import socket
import stat
import sys
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Union

from . import _server as _wire

__all__ = ["FakeGateway", "Reply", "RecordedRequest", "main"]

logger = logging.getLogger(__name__)

#: How long close() waits for the accept loop and for each handler thread to finish.
CLOSE_JOIN_SECONDS = 1.0


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            value >= 0 and math.isfinite(value)):
        raise ValueError("%s must be a finite number >= 0, got %r" % (name, value))
    return float(value)


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted answer. ``status != 2xx`` without ``body``/``json`` sends an OpenAI error.

    ``body`` is sent raw and ``json`` as a whole JSON body; ``delay`` waits before answering
    (``close()`` interrupts it); ``drop`` closes the connection without an answer; ``usage``
    replaces the estimated usage (``False`` omits it); ``tool_calls`` makes the assistant call
    tools; ``stream_chunks`` are the content pieces of a stream; ``cut_after=N`` drops a stream
    after N deltas (a non-streamed body after N bytes); ``chunk_delay`` waits between deltas.
    """

    status: int = 200
    headers: Optional[Mapping[str, str]] = None
    body: Union[str, bytes, None] = None
    content: Optional[str] = None
    delay: float = 0.0
    drop: bool = False
    usage: Union[Mapping[str, Any], bool, None] = None
    tool_calls: Optional[Sequence[Mapping[str, Any]]] = None
    finish_reason: Optional[str] = None
    json: Any = None
    stream_chunks: Optional[Sequence[str]] = None
    cut_after: Optional[int] = None
    chunk_delay: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not (
                100 <= self.status <= 599):
            raise ValueError("Reply.status must be an HTTP status 100-599, got %r" % (self.status,))
        _non_negative("Reply.delay", self.delay)
        _non_negative("Reply.chunk_delay", self.chunk_delay)
        if self.body is not None and not isinstance(self.body, (str, bytes)):
            raise ValueError("Reply.body must be str or bytes, got %r" % type(self.body).__name__)
        if self.body is not None and self.json is not None:
            raise ValueError("Reply takes body or json, not both")
        if self.usage is True or not (self.usage is None or self.usage is False
                                      or isinstance(self.usage, Mapping)):
            raise ValueError("Reply.usage must be a dict, False (omit) or None (estimate)")
        if self.cut_after is not None and (isinstance(self.cut_after, bool) or not isinstance(
                self.cut_after, int) or self.cut_after < 0):
            raise ValueError("Reply.cut_after must be an int >= 0, got %r" % (self.cut_after,))
        if self.tool_calls is not None and not all(isinstance(c, Mapping) for c in self.tool_calls):
            raise ValueError("Reply.tool_calls must be a list of dicts")
        if self.stream_chunks is not None and (isinstance(self.stream_chunks, str) or not all(
                isinstance(c, str) for c in self.stream_chunks)):
            raise ValueError("Reply.stream_chunks must be a list of str")
        if self.headers is not None:
            object.__setattr__(self, "headers", dict(self.headers))


_DEFAULT_REPLY = Reply()


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request as the gateway saw it; ``time`` is ``time.monotonic()`` at arrival."""

    time: float
    method: str
    path: str
    model: Optional[str]
    headers: Dict[str, str]
    json: Any
    body: bytes = b""
    request_id: str = ""
    answered_status: Optional[int] = None
    disconnected: bool = False

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """A request header by case-insensitive name."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    @property
    def stream(self) -> bool:
        """Whether the body asked for an SSE stream."""
        return isinstance(self.json, dict) and bool(self.json.get("stream"))


def _loopback(host: str) -> str:
    """The host if it is a loopback address; the fake has no auth worth exposing to a network."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError("host must be a loopback address (127.0.0.1, ::1 or localhost), got %r"
                     % (host,))


class FakeGateway:
    """An OpenAI-compatible server on a loopback port, serving on a background thread.

    Use as a context manager, or ``start()`` / ``close()`` (both idempotent). Answers come from
    the model's script, then the any-model script, then ``responder(request)``, then the
    default reply. ``latency`` (or ``model_latency[model]``) and ``chunk_delay`` are added to
    every completion and stream; a Reply's own ``delay``/``chunk_delay`` add to them.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 api_key: Optional[str] = None,
                 model_latency: Optional[Mapping[str, float]] = None, chunk_delay: float = 0.0,
                 responder: Optional[Callable[[RecordedRequest], Optional[Reply]]] = None,
                 models: Sequence[str] = ()) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError("port must be an int 0-65535, got %r" % (port,))
        self.host = _loopback(host)
        self._port = port
        self.latency = _non_negative("latency", latency)
        self.model_latency = {str(m): _non_negative("model_latency[%r]" % m, s)
                              for m, s in (model_latency or {}).items()}
        self.chunk_delay = _non_negative("chunk_delay", chunk_delay)
        self.api_key = api_key
        self.responder = responder
        self._closing = threading.Event()  # set by close(); every delay waits on it
        self._scripts_lock = threading.Lock()  # guards _scripts and _any_script
        self._scripts: Dict[str, Deque[Reply]] = {}
        self._any_script: Deque[Reply] = collections.deque()
        # Guards _records, _generation, _disconnects and _models; waited on by wait_for_*.
        self._records_cond = threading.Condition()
        self._records: List[RecordedRequest] = []
        self._generation = 0
        self._disconnects = 0
        self._declared = list(models)
        self._models: Dict[str, None] = dict.fromkeys(self._declared)
        self._ids = itertools.count(1)
        self._state_lock = threading.Lock()  # guards the start/close transitions
        self._server: Optional[_wire.Server] = None
        self._thread: Optional[threading.Thread] = None
        self._wake: Optional[Any] = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeGateway":
        """Bind the port and serve on a daemon thread; a second call does nothing."""
        with self._state_lock:
            if self._closed:
                raise RuntimeError("this FakeGateway is closed; create a new one")
            if self._server is None:
                cls = _wire.Server6 if ":" in self.host else _wire.Server
                server = cls((self.host, self._port), self)
                server.socket.setblocking(False)
                self._wake = socket.socketpair()
                self._server = server
                self._thread = threading.Thread(target=self._serve, daemon=True,
                                                name="FakeGateway:%d" % self.port)
                self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, drop open connections and wake sleeping handlers; idempotent, prompt."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        self._closing.set()
        if self._server is None:
            return
        try:
            self._wake[1].send(b"x")
        except OSError:
            pass
        self._thread.join(CLOSE_JOIN_SECONDS)
        self._server.server_close()
        self._server.drop_connections(CLOSE_JOIN_SECONDS)
        for sock in self._wake:
            sock.close()

    def __enter__(self) -> "FakeGateway":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _serve(self) -> None:
        """Accept until close(): a selector on the listener and a wake-up socket, no polling."""
        server, wake = self._server, self._wake[0]
        with selectors.DefaultSelector() as selector:
            selector.register(server.socket, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in selector.select():
                    if key.fileobj is wake or self._closing.is_set():
                        return
                    try:
                        request, address = server.get_request()
                    except BlockingIOError:
                        continue
                    except OSError:  # e.g. out of file descriptors: back off instead of spinning
                        logger.debug("fake gateway: accept failed", exc_info=True)
                        self._closing.wait(0.05)
                        continue
                    server.process_request(request, address)

    @property
    def port(self) -> int:
        """The bound port (the free one picked when created with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("FakeGateway is not started: use `with FakeGateway() as gw:`")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` without a path."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d" % (host, self.port)

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``: what an OpenAI-compatible client takes as its base URL."""
        return self.url + "/v1"

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "not started"
        return "FakeGateway(%s, requests=%d)" % (where, len(self._records))

    # -- scripting ---------------------------------------------------------------------------

    def script(self, model: Optional[str], *replies: Union[Reply, str]) -> None:
        """Queue replies for ``model`` (``None``: any model), played first in, first out.

        A ``str`` is shorthand for ``Reply(content=...)``. Raises ``TypeError`` for others.
        """
        queued = []
        for reply in replies:
            if isinstance(reply, str):
                reply = Reply(content=reply)
            if not isinstance(reply, Reply):
                raise TypeError("script() takes Reply or str values, got %r" % (reply,))
            queued.append(reply)
        with self._scripts_lock:
            if model is None:
                self._any_script.extend(queued)
            else:
                self._scripts.setdefault(model, collections.deque()).extend(queued)
        if model is not None:
            with self._records_cond:
                self._models.setdefault(model, None)

    def script_any(self, *replies: Union[Reply, str]) -> None:
        """Queue replies for whichever model is asked next."""
        self.script(None, *replies)

    def pending(self) -> int:
        """How many scripted replies are still queued (all models)."""
        with self._scripts_lock:
            return len(self._any_script) + sum(len(q) for q in self._scripts.values())

    def reset(self) -> None:
        """Forget scripts, records and the disconnect count."""
        with self._scripts_lock:
            self._scripts.clear()
            self._any_script.clear()
        with self._records_cond:
            self._records = []
            self._generation += 1
            self._disconnects = 0
            self._models = dict.fromkeys(self._declared)

    # -- records -----------------------------------------------------------------------------

    @property
    def requests(self) -> List[RecordedRequest]:
        """A copy of every request so far, in arrival order."""
        with self._records_cond:
            return list(self._records)

    def requests_for(self, model: str) -> List[RecordedRequest]:
        """The recorded requests that asked for ``model``."""
        return [r for r in self.requests if r.model == model]

    @property
    def disconnects(self) -> int:
        """How many clients went away before their answer was complete."""
        with self._records_cond:
            return self._disconnects

    def wait_for_disconnect(self, timeout: float = 2.0, count: int = 1) -> bool:
        """Wait until ``count`` disconnects are recorded; ``False`` if ``timeout`` passed first."""
        with self._records_cond:
            return self._records_cond.wait_for(lambda: self._disconnects >= count, timeout)

    def wait_for_requests(self, count: int, timeout: float = 2.0) -> bool:
        """Wait until ``count`` requests have arrived; ``False`` if ``timeout`` passed first."""
        with self._records_cond:
            return self._records_cond.wait_for(lambda: len(self._records) >= count, timeout)

    def models(self) -> List[str]:
        """Declared, scripted and requested models, in the order first seen."""
        with self._records_cond:
            return list(self._models)

    def _record(self, method: str, path: str, headers: Dict[str, str], payload: Any,
                raw: bytes, model: Optional[str]) -> "_Ticket":
        request_id = "req_fake_%06d" % next(self._ids)
        with self._records_cond:
            record = RecordedRequest(time.monotonic(), method, path, model, headers, payload,
                                     raw, request_id)
            self._records.append(record)
            if model is not None:
                self._models.setdefault(model, None)
            self._records_cond.notify_all()
            return _Ticket(record, self._generation, len(self._records) - 1)

    def _update(self, ticket: "_Ticket", **changes: Any) -> None:
        with self._records_cond:
            if ticket.generation != self._generation:
                return  # reset() ran meanwhile: that record is gone
            self._records[ticket.index] = dataclasses.replace(
                self._records[ticket.index], **changes)
            if changes.get("disconnected"):
                self._disconnects += 1
            self._records_cond.notify_all()

    def _next_reply(self, record: RecordedRequest) -> Reply:
        """The model's script, then the any-model script, then the responder, then default."""
        with self._scripts_lock:
            queue = self._scripts.get(record.model or "")
            if queue:
                return queue.popleft()
            if self._any_script:
                return self._any_script.popleft()
        responder = self.responder
        if responder is None:
            return _DEFAULT_REPLY
        try:
            reply = responder(record)
        except Exception as err:  # a test's responder bug becomes a visible 500, not a hang
            logger.debug("fake gateway: responder raised", exc_info=True)
            return Reply(status=500, content="FakeGateway responder raised %r" % (err,))
        if reply is None:
            return _DEFAULT_REPLY
        if not isinstance(reply, Reply):
            return Reply(status=500, content="FakeGateway responder returned %r, expected a Reply "
                                             "or None" % (reply,))
        return reply

    def _delay_for(self, model: Optional[str], reply: Reply) -> float:
        return self.model_latency.get(model or "", self.latency) + reply.delay


class _Ticket:
    """Where a handler's record lives, so it can be updated unless reset() intervened."""

    __slots__ = ("record", "generation", "index")

    def __init__(self, record: RecordedRequest, generation: int, index: int) -> None:
        self.record, self.generation, self.index = record, generation, index


# -- command line ----------------------------------------------------------------------------


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
