"""Misbehaving HTTP servers on 127.0.0.1 that send exactly the bytes a broken gateway would.

``RawServer(handler)`` accepts connections in a thread, reads one request per connection and
calls ``handler(conn, request, server)``; ``server.requests`` records each request. Handlers
wait with ``server.pause(seconds)``, which returns at once when the server closes, so no test
leaves a thread sleeping behind it.
"""
from __future__ import annotations

import gzip
import json
import socket
import threading
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence


class Request:
    """One request as the server read it: method line, headers (lower-case names), body;
    ``header_lines`` are the header lines as sent (a name sent twice shows twice)."""

    def __init__(self, line: str, headers: Dict[str, str], body: bytes,
                 header_lines: Sequence[str] = ()) -> None:
        self.line = line
        self.headers = headers
        self.body = body
        self.header_lines = list(header_lines)

    def json(self) -> Any:
        return json.loads(self.body)


class RawServer:
    def __init__(self, handler: Callable[[socket.socket, Request, "RawServer"], None]) -> None:
        self.handler = handler
        self.requests: List[Request] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.base_url = "http://127.0.0.1:%d/v1" % self.port
        self._conns: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()  # guards requests, _conns and _threads
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the server is closing; True if it is closing."""
        return self._stop.wait(seconds)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._conns.append(conn)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = _read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            self.handler(conn, request, self)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(2)
        for thread in threads:
            thread.join(2)

    def __enter__(self) -> "RawServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _read_request(conn: socket.socket) -> Optional[Request]:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        block = conn.recv(65536)
        if not block:
            return None
        data += block
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        block = conn.recv(65536)
        if not block:
            break
        body += block
    return Request(lines[0], headers, body, lines[1:])


# What handlers send ----------------------------------------------------------------------------
def completion(content: str = "hello", usage: Any = None, **extra: Any) -> bytes:
    """A chat.completion body; ``usage`` defaults to 10 prompt + 5 completion tokens."""
    body = {"id": "cmpl-1", "object": "chat.completion", "model": "gpt-5.4",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": usage if usage is not None else {"prompt_tokens": 10,
                                                      "completion_tokens": 5,
                                                      "total_tokens": 15}}
    body.update(extra)
    return json.dumps(body).encode()


def head(status: int = 200, headers: Sequence[str] = (), length: Optional[int] = None,
         content_type: str = "application/json") -> bytes:
    lines = ["HTTP/1.1 %d OK" % status, "Content-Type: " + content_type]
    if length is not None:
        lines.append("Content-Length: %d" % length)
    lines.extend(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def respond(conn: socket.socket, body: bytes, status: int = 200,
            headers: Sequence[str] = ()) -> None:
    conn.sendall(head(status, list(headers) + ["Connection: close"], len(body)) + body)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_events(texts: Sequence[str], usage: bool = True) -> List[bytes]:
    """The SSE events of a streamed answer of ``texts``, ending in ``data: [DONE]``."""
    events = []
    for text in texts:
        events.append(b"data: " + json.dumps({"choices": [{"index": 0, "delta": {
            "content": text}, "finish_reason": None}], "model": "gpt-5.4"}).encode() + b"\n\n")
    events.append(b"data: " + json.dumps({"choices": [{"index": 0, "delta": {},
                                                       "finish_reason": "stop"}]}).encode()
                  + b"\n\n")
    if usage:
        events.append(b"data: " + json.dumps({"choices": [], "usage": {
            "prompt_tokens": 10, "completion_tokens": len(texts),
            "total_tokens": 10 + len(texts)}}).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data)


def gzip_stream(events: Sequence[bytes]) -> List[bytes]:
    """Each event compressed and flushed, as a gateway compressing a live stream sends them."""
    compressor = zlib.compressobj(wbits=31)
    out = [compressor.compress(e) + compressor.flush(zlib.Z_SYNC_FLUSH) for e in events]
    out[-1] += compressor.flush()
    return out
