"""FakeGateway's HTTP server: parse with ``http.server``, answer with hand-built bytes.

The handler decides which body of ``_replies`` to send and writes it, one write per response
or SSE event. It reaches the gateway only through a ``Backend`` (the gateway's ``Backstage``):
the scripts, the request log and the settings stay the gateway's.
"""
from __future__ import annotations

import email.utils
import json
import logging
import select
import socket
import socketserver
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Mapping, Optional, Protocol, Tuple

from . import _replies as replies
from ._state import Ticket

logger = logging.getLogger(__name__)

#: Pending connections the listening socket queues: 32+ clients connecting at once all get in.
LISTEN_BACKLOG = 256

_REASONS = {s.value: s.phrase for s in HTTPStatus}
# path -> (route, the one method it takes); /v1/models/{id} is matched by prefix.
_ROUTES = {"/v1/chat/completions": ("chat", "POST"), "/chat/completions": ("chat", "POST"),
           "/v1/models": ("models", "GET"), "/models": ("models", "GET")}
_MODEL_PREFIXES = ("/v1/models/", "/models/")
# A non-blocking peek where the platform has one (not Windows: there select() decides first).
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_PEEK_FLAGS = socket.MSG_PEEK | _DONTWAIT


class Backend(Protocol):
    """What the server needs from the gateway; ``gateway.Backstage`` implements it."""

    closing: threading.Event  # set by close(); every delay waits on it

    def receive(self, method: str, path: str, headers: Dict[str, str], payload: Any,
                raw: bytes, model: Optional[str]) -> Ticket:
        """Log a request (its credentials redacted) and count it in flight."""

    def authorized(self, record: Any) -> bool:
        """Whether the request carries the key the gateway requires (if any)."""

    def next_reply(self, record: Any) -> Any:
        """The ``Reply`` for this request: script, responder or default."""

    def delay_for(self, model: Optional[str], reply: Any) -> float:
        """Seconds to wait before answering."""

    def chunk_delay(self, reply: Any) -> float:
        """Seconds to wait between SSE events."""

    def models(self) -> List[str]:
        """The models ``GET /v1/models`` lists."""

    def answered(self, ticket: Ticket, status: int) -> None:
        """Record the status sent."""

    def lost(self, ticket: Ticket) -> None:
        """Record a client that left before its answer was complete."""

    def finish(self, ticket: Ticket) -> None:
        """Stop counting the request in flight (idempotent)."""


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections so close() can end them at once."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: Any, backend: Backend) -> None:
        self.backend = backend
        self._conn_lock = threading.Lock()  # guards _connections
        self._connections: Dict[socket.socket, threading.Thread] = {}
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[0], self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        request.setblocking(True)
        thread = threading.Thread(target=self.process_request_thread, daemon=True,
                                  args=(request, client_address), name="FakeGateway-conn")
        with self._conn_lock:
            self._connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("fake gateway: connection from %s failed", client_address, exc_info=True)

    def drop_connections(self, timeout: float) -> None:
        """Shut every open connection (waking handlers blocked in reads) and join them."""
        with self._conn_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


class Server6(Server):
    """The same server on an IPv6 loopback address (``::1``)."""

    address_family = socket.AF_INET6


def route_of(path: str) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """``(route, allowed method, model id)`` for a path; ``(None, None, None)`` if unknown."""
    if path in _ROUTES:
        route, method = _ROUTES[path]
        return route, method, None
    for prefix in _MODEL_PREFIXES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return "model", "GET", urllib.parse.unquote(path[len(prefix):])
    return None, None, None


def chat_problem(payload: Any, bad_json: bool, model: Optional[str]) -> Optional[str]:
    """Why a chat request body is unusable (the 400 message), or ``None``."""
    if bad_json or not isinstance(payload, dict):
        return "We could not parse the JSON body of your request."
    if model is None:
        return "you must provide a model parameter"
    messages = payload.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "messages must be a list of message objects"
    if replies.choice_count(payload) is None:
        return "n must be an integer from 1 to %d, got %r" % (replies.MAX_CHOICES,
                                                              payload.get("n"))
    return None


class Handler(BaseHTTPRequestHandler):
    """Parses with http.server, answers with hand-built bytes: one write per response."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted socket
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: no line per request on stderr."""

    def __getattr__(self, name: str) -> Any:
        # http.server answers a method without a do_<METHOD> with an HTML 501; every method
        # (GET, POST, HEAD, OPTIONS, PROPFIND...) goes through _dispatch instead, which answers
        # JSON with 404 or 405.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def send_error(self, code: int, message: Optional[str] = None,
                   explain: Optional[str] = None) -> None:
        """A request http.server could not parse (bad request line, huge headers): JSON too."""
        self.close_connection = True
        body = replies.error_body(code, message or _REASONS.get(code, "Bad request"))
        head = self._head(code, {}, "", {"Content-Type": "application/json",
                                         "Content-Length": str(len(body))})
        try:
            self.wfile.write(head + (b"" if self.command == "HEAD" else body))
        except OSError:
            pass

    def _dispatch(self) -> None:
        ticket: Optional[Ticket] = None
        try:
            ticket = self._serve()
        finally:
            if ticket is not None:
                self.server.backend.finish(ticket)

    def _serve(self) -> Ticket:
        backend = self.server.backend
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        headers = dict(self.headers.items())
        try:
            raw = self._read_body()
        except ValueError as err:
            self.close_connection = True
            ticket = backend.receive(self.command, path, headers, None, b"", None)
            self._send(ticket, 400, replies.error_body(400, str(err)))
            return ticket
        payload: Any = None
        bad_json = False
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                bad_json = True
        model = payload.get("model") if isinstance(payload, dict) else None
        model = model if isinstance(model, str) and model else None
        ticket = backend.receive(self.command, path, headers, payload, raw, model)
        if not backend.authorized(ticket.record):
            self._send(ticket, 401, replies.error_body(401))
            return ticket
        route, wanted, model_id = route_of(path)
        if route is None:
            message = "Unknown request URL: %s %s" % (self.command, path)
            self._send(ticket, 404, replies.error_body(404, message))
        elif self.command != wanted:
            message = "%s %s is not allowed; use %s" % (self.command, path, wanted)
            self._send(ticket, 405, replies.error_body(405, message), {"Allow": wanted})
        elif route == "models":
            self._send(ticket, 200, replies.models_body(backend.models()))
        elif route == "model":
            if model_id in backend.models():
                self._send(ticket, 200, replies.model_body(model_id))
            else:
                self._send(ticket, 404, replies.unknown_model_body(model_id))
        else:
            problem = chat_problem(payload, bad_json, model)
            if problem is not None:
                self._send(ticket, 400, replies.error_body(400, problem))
            else:
                self._answer(ticket, backend.next_reply(ticket.record), payload, model)
        return ticket

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            if not length.isdigit():
                raise ValueError("invalid Content-Length %r" % length)
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size < 0:
                    raise ValueError("invalid chunk size %d" % size)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        return b""

    def _answer(self, ticket: Ticket, reply: Any, payload: Dict[str, Any], model: str) -> None:
        backend = self.server.backend
        delay = backend.delay_for(model, reply)
        if delay > 0:
            if backend.closing.wait(delay):
                return self._drop()
            if self._client_gone():
                return self._lost(ticket)
        if reply.drop:
            return self._drop()
        headers = reply.headers or {}
        if reply.body is not None or reply.json is not None:
            body = reply.body if reply.json is None else replies.dumps(reply.json)
            data = body.encode("utf-8") if isinstance(body, str) else body
            return self._send(ticket, reply.status, data, headers, reply.cut_after)
        if not 200 <= reply.status < 300:
            body = replies.error_body(reply.status, reply.content, model, headers)
            return self._send(ticket, reply.status, body, headers, reply.cut_after)
        answer = replies.plan_answer(reply, payload, model)
        completion_id = "chatcmpl-" + ticket.record.request_id[4:]
        if payload.get("stream"):
            options = payload.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            events = replies.stream_events(answer, model, completion_id, int(time.time()),
                                           include_usage)
            return self._stream(ticket, reply, events, headers)
        body = replies.completion_body(answer, model, completion_id, int(time.time()))
        self._send(ticket, reply.status, body, headers, reply.cut_after)

    def _head(self, status: int, headers: Mapping[str, str], request_id: str,
              defaults: Mapping[str, str]) -> bytes:
        merged = {k.lower(): (k, v) for k, v in defaults.items()}
        merged["date"] = ("Date", email.utils.formatdate(usegmt=True))
        if request_id:
            merged["x-request-id"] = ("x-request-id", request_id)
        merged.update((k.lower(), (k, str(v))) for k, v in headers.items())
        if self.close_connection:
            merged["connection"] = ("Connection", "close")
        lines = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, ""))]
        lines.extend("%s: %s" % kv for kv in merged.values())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, ticket: Ticket, status: int, body: bytes,
              headers: Optional[Mapping[str, str]] = None, cut_after: Optional[int] = None) -> None:
        """A whole response in one write; ``cut_after`` sends only that many body bytes.

        A HEAD request gets the headers (``Content-Length`` included) and no body.
        """
        backend = self.server.backend
        backend.answered(ticket, status)
        head = self._head(status, headers or {}, ticket.record.request_id, {
            "Content-Type": "application/json", "Content-Length": str(len(body))})
        if self.command == "HEAD":
            body = b""
        # Out of flight before the last byte leaves: a client that sends its next request
        # after reading this answer never finds this one still counted.
        backend.finish(ticket)
        if cut_after is not None:
            self._write(ticket, head + body[:cut_after])
            return self._drop()
        self._write(ticket, head + body)

    def _stream(self, ticket: Ticket, reply: Any, events: replies.StreamEvents,
                headers: Mapping[str, str]) -> None:
        """SSE, one event per write, watching for a client that went away between events."""
        backend = self.server.backend
        chunked = self.request_version != "HTTP/1.0"
        if not chunked:
            self.close_connection = True
        defaults = {"Content-Type": "text/event-stream; charset=utf-8",
                    "Cache-Control": "no-cache"}
        if chunked:
            defaults["Transfer-Encoding"] = "chunked"
        frame = (lambda e: b"%x\r\n%s\r\n" % (len(e), e)) if chunked else (lambda e: e)
        backend.answered(ticket, reply.status)
        head = self._head(reply.status, headers, ticket.record.request_id, defaults)
        if not self._write(ticket, head + frame(events.head)):
            return None
        pause = backend.chunk_delay(reply)
        cut = reply.cut_after
        remaining = events.deltas + events.tail
        for i, event in enumerate(remaining):
            if cut is not None and i >= min(cut, len(events.deltas)):
                return self._drop()
            if pause and backend.closing.wait(pause):
                return self._drop()
            if self._client_gone():
                return self._lost(ticket)
            data = frame(event)
            if i == len(remaining) - 1:  # [DONE] and the end of the chunked body, together
                backend.finish(ticket)  # out of flight before the last byte, as in _send
                data += b"0\r\n\r\n" if chunked else b""
            if not self._write(ticket, data):
                return None
        return None

    def _write(self, ticket: Ticket, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            return True
        except OSError:  # BrokenPipe, ConnectionReset: the client went away
            self._lost(ticket)
            return False

    def _lost(self, ticket: Ticket) -> None:
        """Record a client that left before its answer was complete (unless close() did it)."""
        self.close_connection = True
        if not self.server.backend.closing.is_set():
            self.server.backend.lost(ticket)

    def _client_gone(self) -> bool:
        """Whether the client closed its end (EOF or reset), without blocking or reading."""
        sock = self.connection
        try:
            if not _DONTWAIT and not select.select([sock], [], [], 0)[0]:
                return False
            return sock.recv(1, _PEEK_FLAGS) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _drop(self) -> None:
        """End the connection with no (further) answer: the handler returns and it is closed."""
        self.close_connection = True
