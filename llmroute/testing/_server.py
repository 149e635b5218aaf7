"""How FakeGateway answers on the wire: the bodies it builds and the handler that writes them.

The body builders are pure functions from a request and a ``Reply`` to bytes; the handler parses
with ``http.server`` and writes hand-built responses, one write per response or SSE event.
``testing.py`` holds the public values and the gateway's state; this module is private to it.
"""
from __future__ import annotations

import itertools
import json
import logging
import re
import select
import socket
import socketserver
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence

from ..tokens import estimate_tokens

logger = logging.getLogger(__name__)

#: Words of the last user message the default reply quotes: enough to tell calls apart.
QUOTED_WORDS = 8
#: Pieces a tool call's arguments are streamed in, as real gateways split them.
ARGUMENT_PIECES = 3

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# A word with the whitespace around it: the pieces of a stream join back to the exact text.
_PIECE = re.compile(r"\s*\S+\s*")
_WORD = re.compile(r"\S+")
_DONE = b"data: [DONE]\n\n"

#: Pending connections the listening socket queues: 32+ clients connecting at once all get in.
LISTEN_BACKLOG = 256

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_ROUTES = {"/v1/chat/completions": "chat", "/chat/completions": "chat",
           "/v1/models": "models", "/models": "models"}
# A non-blocking peek where the platform has one (not Windows: there select() decides first).
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_PEEK_FLAGS = socket.MSG_PEEK | _DONTWAIT

# status -> (error type, error code, message); the message may name the {model}.
_ERRORS = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Invalid API key provided"),
    403: ("invalid_request_error", "model_not_allowed",
          "You are not allowed to sample from the model `{model}`."),
    404: ("invalid_request_error", "model_not_found",
          "The model `{model}` does not exist or you do not have access to it."),
    405: ("invalid_request_error", "method_not_allowed", "Method not allowed."),
    408: ("timeout", "request_timeout", "Request timed out."),
    409: ("invalid_request_error", "conflict", "Conflicting request; please retry."),
    422: ("invalid_request_error", "unprocessable_entity", "A parameter is invalid."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for `{model}`. Please try again in 1s."),
    500: ("server_error", None,
          "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", "bad_gateway", "Bad gateway: the upstream provider failed."),
    503: ("server_error", "service_unavailable",
          "The engine is currently overloaded, please try again later."),
    504: ("server_error", "gateway_timeout", "Gateway timeout: the upstream did not answer."),
}


class Answer(NamedTuple):
    """What a 2xx answer says, decided once and then written as JSON or as SSE events."""

    content: Optional[str]
    tool_calls: Optional[List[Dict[str, Any]]]
    finish_reason: str
    usage: Optional[Dict[str, Any]]
    pieces: List[str]


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, encoded once per body."""
    return _ENCODE(obj).encode("utf-8")


def error_body(status: int, message: Optional[str] = None, model: Optional[str] = None) -> bytes:
    """An OpenAI-shaped ``{"error": {...}}`` body fitting the status."""
    kind, code, default = _ERRORS.get(status) or (
        ("server_error", None, "Upstream error.") if status >= 500
        else ("invalid_request_error", None, "Request failed."))
    text = message if message is not None else default.format(model=model or "unknown")
    return dumps({"error": {"message": text, "type": kind, "code": code}})


def models_body(models: Iterable[str]) -> bytes:
    """The ``GET /v1/models`` list."""
    return dumps({"object": "list", "data": [
        {"id": m, "object": "model", "created": 0, "owned_by": "llmroute-fake"} for m in models]})


def last_user_text(messages: Sequence[Any]) -> str:
    """The text of the last user message (string or content parts), or ``""``."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
            return "" if content is None else str(content)
    return ""


def default_content(model: str, messages: Sequence[Any]) -> str:
    """The deterministic, readable default answer: which model, and what it replies to."""
    words = last_user_text(messages).split()
    quote = " ".join(words[:QUOTED_WORDS]) + ("..." if len(words) > QUOTED_WORDS else "")
    return "[fake:%s] Reply to: %s" % (model, quote or "(no user message)")


def completion_limit(request: Mapping[str, Any]) -> Optional[int]:
    """``max_completion_tokens`` or ``max_tokens`` when a positive integer, else ``None``."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def split_pieces(content: str) -> List[str]:
    """Stream pieces of about a word each, whose concatenation is exactly ``content``."""
    return _PIECE.findall(content) or ([content] if content else [])


def normalize_tool_calls(tool_calls: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Fill in ``id`` and ``type`` and turn dict arguments into the JSON string OpenAI sends."""
    calls = []
    for i, call in enumerate(tool_calls):
        function = dict(call.get("function") or {})
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = _ENCODE(arguments)
        calls.append({"id": call.get("id") or "call_fake_%d" % i,
                      "type": call.get("type") or "function",
                      "function": {"name": str(function.get("name", "")), "arguments": arguments}})
    return calls


def plan_answer(reply: Any, request: Mapping[str, Any], model: str) -> Answer:
    """Decide the content, tool calls, finish reason and usage of a 2xx answer.

    ``reply`` is a ``testing.Reply``. Content longer than the request's token limit is cut to
    that many words with ``finish_reason="length"`` and reports exactly the limit as usage.
    """
    messages = request.get("messages") or []
    tool_calls = normalize_tool_calls(reply.tool_calls) if reply.tool_calls else None
    finish = "tool_calls" if tool_calls else "stop"
    if reply.stream_chunks is not None:
        pieces = list(reply.stream_chunks)
        content: Optional[str] = "".join(pieces)
        completion = estimate_tokens(content)
    else:
        content = reply.content
        if content is None and tool_calls is None:
            content = default_content(model, messages)
        completion = estimate_tokens(content or "")
        limit = completion_limit(request)
        if content and limit is not None and completion > limit:
            last = next(itertools.islice(_WORD.finditer(content), limit - 1, None), None)
            content = content[:last.end()] if last is not None else content
            completion, finish = limit, "length"
        pieces = split_pieces(content or "")
    for call in tool_calls or ():
        completion += estimate_tokens(call["function"]["name"])
        completion += estimate_tokens(call["function"]["arguments"])
    if reply.usage is False:
        usage = None
    elif reply.usage is not None:
        usage = dict(reply.usage)
    else:
        prompt = estimate_tokens(messages)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}
    return Answer(content, tool_calls, reply.finish_reason or finish, usage, pieces)


def completion_body(answer: Answer, model: str, completion_id: str, created: int) -> bytes:
    """A whole ``chat.completion`` object."""
    message: Dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    body: Dict[str, Any] = {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason}],
    }
    if answer.usage is not None:
        body["usage"] = answer.usage
    return dumps(body)


class StreamEvents(NamedTuple):
    """SSE events: the role delta, the content/tool deltas (what ``cut_after`` counts), the end."""

    head: bytes
    deltas: List[bytes]
    tail: List[bytes]


def stream_events(answer: Answer, model: str, completion_id: str, created: int,
                  include_usage: bool) -> StreamEvents:
    """The ``chat.completion.chunk`` events of a streamed answer, each a ``data:`` line."""
    base = '{"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s,' % (
        _ENCODE(completion_id), created, _ENCODE(model))

    def event(delta: Dict[str, Any], finish: Optional[str] = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return ("data: %s\"choices\":[%s]}\n\n" % (base, _ENCODE(choice))).encode("utf-8")

    deltas = [event({"content": piece}) for piece in answer.pieces]
    for index, call in enumerate(answer.tool_calls or ()):
        function = call["function"]
        deltas.append(event({"tool_calls": [{"index": index, "id": call["id"], "type": call["type"],
                                             "function": {"name": function["name"],
                                                          "arguments": ""}}]}))
        arguments = function["arguments"]
        size = max(1, -(-len(arguments) // ARGUMENT_PIECES))
        for start in range(0, len(arguments), size):
            deltas.append(event({"tool_calls": [
                {"index": index, "function": {"arguments": arguments[start:start + size]}}]}))
    tail = [event({}, answer.finish_reason)]
    if include_usage and answer.usage is not None:
        tail.append(("data: %s\"choices\":[],\"usage\":%s}\n\n" % (
            base, _ENCODE(answer.usage))).encode("utf-8"))
    tail.append(_DONE)
    return StreamEvents(event({"role": "assistant", "content": ""}), deltas, tail)


# -- the wire -------------------------------------------------------------------------------


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections so close() can end them at once."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: Any, gateway: Any) -> None:
        self.gateway = gateway
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


def chat_problem(payload: Any, bad_json: bool, model: Optional[str]) -> Optional[str]:
    """Why a chat request body is unusable (the 400 message), or ``None``."""
    if bad_json or not isinstance(payload, dict):
        return "We could not parse the JSON body of your request."
    if model is None:
        return "you must provide a model parameter"
    messages = payload.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "messages must be a list of message objects"
    return None


class Handler(BaseHTTPRequestHandler):
    """Parses with http.server, answers with hand-built bytes: one write per response."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted socket
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: no line per request on stderr."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        gw = self.server.gateway
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            raw = self._read_body()
        except ValueError as err:
            self.close_connection = True
            ticket = gw._record(self.command, path, dict(self.headers.items()), None, b"", None)
            return self._send(ticket, 400, error_body(400, str(err)))
        payload: Any = None
        bad_json = False
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                bad_json = True
        model = payload.get("model") if isinstance(payload, dict) else None
        model = model if isinstance(model, str) and model else None
        ticket = gw._record(self.command, path, dict(self.headers.items()), payload, raw, model)
        if gw.api_key is not None and self.headers.get("Authorization") != "Bearer " + gw.api_key:
            return self._send(ticket, 401, error_body(401))
        route = _ROUTES.get(path)
        if route is None:
            message = "Unknown request URL: %s %s" % (self.command, path)
            return self._send(ticket, 404, error_body(404, message))
        wanted = "POST" if route == "chat" else "GET"
        if self.command != wanted:
            message = "%s %s is not allowed; use %s" % (self.command, path, wanted)
            return self._send(ticket, 405, error_body(405, message))
        if route == "models":
            return self._send(ticket, 200, models_body(gw.models()))
        problem = chat_problem(payload, bad_json, model)
        if problem is not None:
            return self._send(ticket, 400, error_body(400, problem))
        self._answer(ticket, gw._next_reply(ticket.record), payload, model)

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

    def _answer(self, ticket: Any, reply: Any, payload: Dict[str, Any], model: str) -> None:
        gw = self.server.gateway
        delay = gw._delay_for(model, reply)
        if delay > 0:
            if gw._closing.wait(delay):
                return self._drop()
            if self._client_gone():
                return self._lost(ticket)
        if reply.drop:
            return self._drop()
        headers = reply.headers or {}
        if reply.body is not None or reply.json is not None:
            body = reply.body if reply.json is None else dumps(reply.json)
            data = body.encode("utf-8") if isinstance(body, str) else body
            return self._send(ticket, reply.status, data, headers, reply.cut_after)
        if not 200 <= reply.status < 300:
            body = error_body(reply.status, reply.content, model)
            return self._send(ticket, reply.status, body, headers, reply.cut_after)
        answer = plan_answer(reply, payload, model)
        completion_id = "chatcmpl-" + ticket.record.request_id[4:]
        if payload.get("stream"):
            options = payload.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            events = stream_events(answer, model, completion_id, int(time.time()),
                                   include_usage)
            return self._stream(ticket, reply, events, headers)
        body = completion_body(answer, model, completion_id, int(time.time()))
        self._send(ticket, reply.status, body, headers, reply.cut_after)

    def _head(self, status: int, headers: Mapping[str, str], request_id: str,
              defaults: Mapping[str, str]) -> bytes:
        merged = {k.lower(): (k, v) for k, v in defaults.items()}
        merged["x-request-id"] = ("x-request-id", request_id)
        merged.update((k.lower(), (k, str(v))) for k, v in headers.items())
        if self.close_connection:
            merged["connection"] = ("Connection", "close")
        lines = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, ""))]
        lines.extend("%s: %s" % kv for kv in merged.values())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, ticket: Any, status: int, body: bytes,
              headers: Optional[Mapping[str, str]] = None, cut_after: Optional[int] = None) -> None:
        """A whole response in one write; ``cut_after`` sends only that many body bytes."""
        self.server.gateway._update(ticket, answered_status=status)
        head = self._head(status, headers or {}, ticket.record.request_id, {
            "Content-Type": "application/json", "Content-Length": str(len(body))})
        if cut_after is not None:
            self._write(ticket, head + body[:cut_after])
            return self._drop()
        self._write(ticket, head + body)

    def _stream(self, ticket: Any, reply: Any, events: StreamEvents,
                headers: Mapping[str, str]) -> None:
        """SSE, one event per write, watching for a client that went away between events."""
        gw = self.server.gateway
        chunked = self.request_version != "HTTP/1.0"
        if not chunked:
            self.close_connection = True
        defaults = {"Content-Type": "text/event-stream; charset=utf-8",
                    "Cache-Control": "no-cache"}
        if chunked:
            defaults["Transfer-Encoding"] = "chunked"
        frame = (lambda e: b"%x\r\n%s\r\n" % (len(e), e)) if chunked else (lambda e: e)
        gw._update(ticket, answered_status=reply.status)
        head = self._head(reply.status, headers, ticket.record.request_id, defaults)
        if not self._write(ticket, head + frame(events.head)):
            return None
        pause = gw.chunk_delay + reply.chunk_delay
        cut = reply.cut_after
        for i, event in enumerate(events.deltas + events.tail):
            if cut is not None and i >= min(cut, len(events.deltas)):
                return self._drop()
            if pause and gw._closing.wait(pause):
                return self._drop()
            if self._client_gone():
                return self._lost(ticket)
            if not self._write(ticket, frame(event)):
                return None
        if chunked:
            self._write(ticket, b"0\r\n\r\n")
        return None

    def _write(self, ticket: Any, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            return True
        except OSError:  # BrokenPipe, ConnectionReset: the client went away
            self._lost(ticket)
            return False

    def _lost(self, ticket: Any) -> None:
        """Record a client that left before its answer was complete (unless close() did it)."""
        self.close_connection = True
        if not self.server.gateway._closing.is_set():
            self.server.gateway._update(ticket, disconnected=True)

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
