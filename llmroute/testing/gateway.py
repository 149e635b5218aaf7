"""FakeGateway: an OpenAI-compatible chat server on a loopback address, for tests and demos.

It answers ``/v1/chat/completions`` (JSON or SSE), ``/v1/models`` and ``/v1/models/{id}`` with
deterministic replies that follow the request (``n``, ``tool_choice``, ``response_format``),
plays scripted ``Reply`` values per model in order (errors, delays, drops, cut streams) and
records every request with its credentials redacted. Standard library only, so it also serves
benchmarks and offline tries::

    with FakeGateway() as gw:
        gw.script("gpt-5.4", Reply(status=429, headers={"Retry-After": "1"}), Reply(content="ok"))
        ...  # point a client at gw.base_url
        assert [r.answered_status for r in gw.requests_for("gpt-5.4")] == [429, 200]

``python -m llmroute.testing --port 0`` serves one from the command line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import itertools
import logging
import math
import secrets
import selectors
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import _server
from ._state import Recorder, Script, Ticket

__all__ = ["FakeGateway", "Reply", "RecordedRequest"]

logger = logging.getLogger(__name__)

#: How long close() waits for the accept loop and for each handler thread to finish.
CLOSE_JOIN_SECONDS = 1.0
#: Request headers whose values carry credentials: the log keeps only their scheme.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})
#: What a credential's value becomes in the log (after its scheme, e.g. "Bearer [REDACTED]").
REDACTED = "[REDACTED]"

# Keys the HMAC of a received bearer token: per process, never stored with a record, so a
# record holds nothing from which a key could be read back or checked offline.
_TOKEN_SECRET = secrets.token_bytes(32)


def _token_digest(token: str) -> bytes:
    return hmac.new(_TOKEN_SECRET, token.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def redact(name: str, value: str) -> str:
    """A header value fit for the request log: credentials keep only their scheme."""
    if name.lower() not in CREDENTIAL_HEADERS:
        return value
    scheme, _, token = value.strip().partition(" ")
    return "%s %s" % (scheme, REDACTED) if token.strip() else REDACTED


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
    """One request as the gateway saw it; ``time`` is ``time.monotonic()`` at arrival.

    Credential headers (``Authorization``, ``Proxy-Authorization``, ``api-key``,
    ``x-api-key``) are stored redacted (``"Bearer [REDACTED]"``); ``bearer_matches(key)``
    tells whether a given key was the bearer token sent.
    """

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
    # HMAC of the bearer token sent (None: no bearer token); never shown, never compared.
    _bearer_digest: Optional[bytes] = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def received(cls, method: str, path: str, headers: Mapping[str, str], payload: Any,
                 raw: bytes, model: Optional[str], request_id: str) -> "RecordedRequest":
        """The record of a request just read off the wire: credentials redacted, time now."""
        digest = None
        for name, value in headers.items():
            if name.lower() == "authorization":
                scheme, _, token = value.strip().partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    digest = _token_digest(token.strip())
        redacted = {name: redact(name, value) for name, value in headers.items()}
        return cls(time.monotonic(), method, path, model, redacted, payload, raw, request_id,
                   _bearer_digest=digest)

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """A request header by case-insensitive name (credentials come back redacted)."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    def bearer_matches(self, key: str) -> bool:
        """Whether the request sent ``Authorization: Bearer <key>``; compared in constant time.

        Raises ``ValueError`` if ``key`` is not a string.
        """
        if not isinstance(key, str):
            raise ValueError("key must be a str, got %s" % type(key).__name__)
        if self._bearer_digest is None:
            return False
        return hmac.compare_digest(self._bearer_digest, _token_digest(key.strip()))

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
    every completion and stream; a Reply's own ``delay``/``chunk_delay`` add to them. With
    ``api_key`` set, a request without ``Authorization: Bearer <api_key>`` gets a 401.
    ``in_flight`` and ``max_in_flight`` count the requests being served at once.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 api_key: Optional[str] = None,
                 model_latency: Optional[Mapping[str, float]] = None, chunk_delay: float = 0.0,
                 responder: Optional[Callable[[RecordedRequest], Optional[Reply]]] = None,
                 models: Sequence[str] = ()) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError("port must be an int 0-65535, got %r" % (port,))
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValueError("api_key must be a non-empty str or None, got %s"
                             % ("an empty str" if isinstance(api_key, str)
                                else type(api_key).__name__))
        self.host = _loopback(host)
        self._port = port
        self.latency = _non_negative("latency", latency)
        self.model_latency = {str(m): _non_negative("model_latency[%r]" % m, s)
                              for m, s in (model_latency or {}).items()}
        self.chunk_delay = _non_negative("chunk_delay", chunk_delay)
        self.api_key = api_key
        self.responder = responder
        self._closing = threading.Event()  # set by close(); every delay waits on it
        self._script = Script()
        self._recorder = Recorder(models)
        self._ids = itertools.count(1)
        self._state_lock = threading.Lock()  # guards the start/close transitions
        self._server: Optional[_server.Server] = None
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
                cls = _server.Server6 if ":" in self.host else _server.Server
                server = cls((self.host, self._port), Backstage(self, self._script, self._recorder, self._ids, self._closing))
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
        return "FakeGateway(%s, requests=%d)" % (where, self._recorder.count)

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
        self._script.add(model, queued)
        if model is not None:
            self._recorder.note_model(model)

    def script_any(self, *replies: Union[Reply, str]) -> None:
        """Queue replies for whichever model is asked next."""
        self.script(None, *replies)

    def pending(self) -> int:
        """How many scripted replies are still queued (all models)."""
        return self._script.pending()

    def reset(self) -> None:
        """Forget scripts, records and the disconnect count; restart ``max_in_flight``."""
        self._script.clear()
        self._recorder.reset()

    # -- records -----------------------------------------------------------------------------

    @property
    def requests(self) -> List[RecordedRequest]:
        """A copy of every request so far, in arrival order."""
        return self._recorder.records()

    def requests_for(self, model: str) -> List[RecordedRequest]:
        """The recorded requests that asked for ``model``."""
        return [r for r in self.requests if r.model == model]

    @property
    def disconnects(self) -> int:
        """How many clients went away before their answer was complete."""
        return self._recorder.disconnects

    @property
    def in_flight(self) -> int:
        """Requests being served now: from arrival until just before the answer's last byte
        is sent (or the connection is dropped), delays and streams included."""
        return self._recorder.in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests ``in_flight`` at once since the gateway was created or ``reset()``.

        A client that starts its next request after reading an answer is never counted twice,
        so ``max_in_flight <= N`` proves a client-side concurrency cap of N held.
        """
        return self._recorder.max_in_flight

    def wait_for_disconnect(self, timeout: float = 2.0, count: int = 1) -> bool:
        """Wait until ``count`` disconnects are recorded; ``False`` if ``timeout`` passed first."""
        return self._recorder.wait_for(lambda r: r.disconnects >= count, timeout)

    def wait_for_requests(self, count: int, timeout: float = 2.0) -> bool:
        """Wait until ``count`` requests have arrived; ``False`` if ``timeout`` passed first."""
        return self._recorder.wait_for(lambda r: r.count >= count, timeout)

    def wait_for_in_flight(self, count: int, timeout: float = 2.0) -> bool:
        """Wait until ``count`` requests are being served at once; ``False`` on timeout."""
        return self._recorder.wait_for(lambda r: r.in_flight >= count, timeout)

    def models(self) -> List[str]:
        """Declared, scripted and requested models, in the order first seen."""
        return self._recorder.models()


class Backstage:
    """The gateway as its server sees it: the ``_server.Backend`` interface, nothing more."""

    def __init__(self, gateway: FakeGateway, script: Script, recorder: Recorder,
                 ids: Iterator[int], closing: threading.Event) -> None:
        # The gateway hands over its own parts: settings are read from it (public), state
        # goes through the script and the recorder it owns.
        self._gateway = gateway
        self._script = script
        self._recorder = recorder
        self._ids = ids
        self.closing = closing

    def receive(self, method: str, path: str, headers: Dict[str, str], payload: Any,
                raw: bytes, model: Optional[str]) -> Ticket:
        request_id = "req_fake_%06d" % next(self._ids)
        record = RecordedRequest.received(method, path, headers, payload, raw, model, request_id)
        return self._recorder.add(record)

    def authorized(self, record: RecordedRequest) -> bool:
        key = self._gateway.api_key
        return key is None or record.bearer_matches(key)

    def next_reply(self, record: RecordedRequest) -> Reply:
        """The model's script, then the any-model script, then the responder, then default."""
        reply = self._script.next(record.model)
        if reply is not None:
            return reply
        responder = self._gateway.responder
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

    def delay_for(self, model: Optional[str], reply: Reply) -> float:
        gateway = self._gateway
        return gateway.model_latency.get(model or "", gateway.latency) + reply.delay

    def chunk_delay(self, reply: Reply) -> float:
        return self._gateway.chunk_delay + reply.chunk_delay

    def models(self) -> List[str]:
        return self._gateway.models()

    def answered(self, ticket: Ticket, status: int) -> None:
        self._recorder.update(ticket, answered_status=status)

    def lost(self, ticket: Ticket) -> None:
        self._recorder.update(ticket, disconnected=True)

    def finish(self, ticket: Ticket) -> None:
        self._recorder.finish(ticket)
