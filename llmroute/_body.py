"""Reading one response body: chunk by chunk, each read bounded by the deadline and idleness.

``BodyReader`` is how the attempt path (``_transport``) and streams read a body: every socket
read waits at most the time left, a watchdog shuts the socket down when the deadline passes
inside a read that http.client or urllib3 loops over, a decoded body over the cap is refused,
and every failure becomes llmroute's own error (``network_error``), never chained.
"""
from __future__ import annotations

import http.client
from typing import Any, Callable, List, Optional, Tuple

import requests
import urllib3

from . import _watchdog
from .errors import (APIConnectionError, APITimeoutError, InvalidResponseError, LLMRouteError,
                     redact)

__all__ = ["BodyReader", "network_error", "socket_of", "NETWORK_ERRORS", "READ_BYTES",
           "DEFAULT_MAX_RESPONSE_BYTES"]

#: Bytes asked of the socket per read; ``read1`` returns as soon as any are there.
READ_BYTES = 64 * 1024
#: The largest decoded 2xx body (and SSE line) read into memory. A chat answer is kilobytes;
#: 32 MiB leaves room for huge tool arguments while a gzip bomb (510 KB -> 512 MiB) is refused.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# What a send or a read can raise once we are on the network.
NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError,
                   http.client.HTTPException, OSError)
# urllib3 errors that prove the request never left: the connection itself failed.
_NOT_SENT = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
             urllib3.exceptions.ProxyError)
def _request_sent(err: BaseException) -> bool:
    """Whether a send error may have reached the server (True unless proven otherwise)."""
    # Not SSLError: requests raises it for TLS failures while reading the answer too.
    if isinstance(err, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return False
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, _NOT_SENT):
            return False
        reason = getattr(err, "reason", None)
        if isinstance(reason, BaseException) and reason is not err:
            if isinstance(reason, _NOT_SENT):
                return False
        if isinstance(err, http.client.InvalidURL):
            return False
        nested = next((a for a in err.args if isinstance(a, BaseException)), None)
        err = nested or err.__cause__ or err.__context__
        seen += 1
    return True


def _is_timeout(err: BaseException) -> bool:
    return isinstance(err, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError))


def network_error(err: BaseException, what: str, secrets: Tuple[str, ...], *,
                   sent: Optional[bool] = None) -> APIConnectionError:
    """The llmroute error for a network failure, its text redacted; never chained."""
    sent = _request_sent(err) if sent is None else sent
    text = redact("%s: %s" % (type(err).__name__, err), secrets)[:300]
    if _is_timeout(err):
        return APITimeoutError("%s timed out (%s)" % (what, text), request_sent=sent)
    if isinstance(err, urllib3.exceptions.DecodeError):
        return APIConnectionError("%s: the body could not be decoded (%s)" % (what, text),
                                  request_sent=True)
    return APIConnectionError("%s failed (%s)" % (what, text), request_sent=sent)


def socket_of(raw: Any) -> Any:
    """The socket under a urllib3 response, to bound each read by the time left (or None)."""
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        # An answer with "Connection: close": http.client dropped the connection's socket and
        # reads through the response's file (a socket.SocketIO) alone.
        sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None),
                       "_sock", None)
    return sock


# Reading a body ------------------------------------------------------------------------------
class BodyReader:
    """Reads one response body chunk by chunk, each read bounded by the deadline and idleness.

    ``idle`` seconds is the longest silence allowed since the last ``touch()`` (a stream
    touches on each event, so comment lines do not keep a dead stream alive). ``read()``
    returns decoded bytes, ``b""`` at the end, and raises only ``APIConnectionError`` /
    ``APITimeoutError`` (``request_sent=True``).
    """

    def __init__(self, raw: Any, *, what: str, idle: float,
                 end: Optional[float], clock: Callable[[], float],
                 secrets: Tuple[str, ...], touch_each_read: bool,
                 max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, status: int = 200) -> None:
        self._raw = raw
        self.status = status
        self._read1 = getattr(self._raw, "read1", None)
        self._sock = socket_of(self._raw)
        self._what = what
        self._idle = idle
        self._end = end
        self._clock = clock
        self._secrets = secrets
        self._touch_each_read = touch_each_read
        self._last = clock()
        self._timeout_set = idle  # the socket's timeout as urllib3 left it: the read timeout
        self.max_bytes = max_bytes
        self.closed = False
        headers = getattr(raw, "headers", None)
        # A Content-Encoding (gzip...) means a decoder that may still hold bytes at the end.
        self._encoded = headers is None or bool(headers.get("content-encoding"))
        self._ticket: Optional[int] = None  # the watchdog's, while the deadline is watched
        self._expired = False  # set by the watchdog (its thread) once the deadline passed

    def touch(self) -> None:
        """Progress was made (an event arrived): the idle timer starts again."""
        self._last = self._clock()

    def read(self, amt: int = READ_BYTES) -> bytes:
        now = self._clock()
        wait = self._idle - (now - self._last)
        deadline_bound = False
        if self._end is not None and self._end - now < wait:
            wait, deadline_bound = self._end - now, True
        if wait <= 0:
            self.close()
            raise APITimeoutError(
                "%s: %s" % (self._what, "the deadline passed while the body was arriving"
                            if deadline_bound else "no data for %gs" % (self._idle,)),
                request_sent=True)
        if self._sock is not None and abs(wait - self._timeout_set) > 0.001:
            try:
                self._sock.settimeout(wait)
                self._timeout_set = wait
            except OSError:
                pass  # the socket closed under us: the read below says how
        if self._ticket is None and self._end is not None and self._sock is not None \
                and not self.closed:
            # http.client and urllib3 may loop over many socket reads inside one call (a
            # trickling chunk-size line or gzip header): the watchdog bounds the whole body.
            self._ticket = _watchdog.watch(self._end, self._clock, self._expire)
        error: Optional[LLMRouteError] = None
        try:
            if self._read1 is not None:
                data = self._read1(amt, decode_content=True)
            else:  # urllib3 1.26: no read1; small reads keep the deadline checks frequent
                data = self._raw.read(min(amt, 1024), decode_content=True)
        except NETWORK_ERRORS as err:
            error = network_error(err, self._what, self._secrets, sent=True)
            if isinstance(error, APITimeoutError) and deadline_bound:
                error = APITimeoutError("%s: the deadline passed while the body was arriving"
                                        % (self._what,), request_sent=True)
            data = b""
        except (ValueError, AttributeError, TypeError) as err:
            # http.client and urllib3 raise these on a socket closed or a body mangled mid-read.
            error = APIConnectionError("%s: the body broke off (%s)"
                                       % (self._what, type(err).__name__), request_sent=True)
            data = b""
        if self._expired:
            error = APITimeoutError("%s: the deadline passed while the body was arriving"
                                    % (self._what,), request_sent=True)
        if error is not None:
            self.close()
            raise error
        if self._touch_each_read and data:
            self._last = self._clock()
        return data or b""

    def _expire(self) -> None:
        """The watchdog's callback (its thread): the deadline passed; unblock the read."""
        self._expired = True
        if not self.closed:
            _watchdog.shutdown_socket(self._sock)

    def _unwatch(self) -> bool:
        """Stop watching the deadline; False if the watchdog fired (the socket is spoilt)."""
        ticket, self._ticket = self._ticket, None
        return ticket is None or _watchdog.cancel(ticket)

    def read_all(self, limit: Optional[int] = None) -> bytes:
        """The whole body (or its first ``limit`` bytes); the connection goes back to the pool.

        Without ``limit``, a body over ``max_bytes`` is ``InvalidResponseError``, read no
        further.
        """
        parts: List[bytes] = []
        size = 0
        while limit is None or size < limit:
            block = self.read()
            if limit is None and size + len(block) > self.max_bytes:
                self.close()
                raise InvalidResponseError(
                    "%s: the body is over max_response_bytes (%d bytes decoded); not read "
                    "further" % (self._what, self.max_bytes), status_code=self.status)
            if not block or self._complete():
                if block:
                    parts.append(block)
                if not self._unwatch():
                    self.close()  # the whole body is in, but the socket may be shut down
                    return b"".join(parts)
                self._raw.release_conn()
                self._restore_timeout()
                return b"".join(parts)
            parts.append(block)
            size += len(block)
        self.close()
        return b"".join(parts)[:limit]

    def _complete(self) -> bool:
        """Whether the whole declared body is in and nothing waits to be decoded: the next read
        could only return ``b""`` (urllib3 has closed the body once its length was read)."""
        return not self._encoded and getattr(self._raw, "length_remaining", None) == 0

    def finish_if_buffered(self) -> None:
        """End a body whose last event is in: read the chunked terminator if it has already
        arrived (the connection goes back to the pool), else drop the connection at once.

        Never waits for the network: the buffer is peeked with the socket non-blocking.
        """
        fp = getattr(getattr(self._raw, "_fp", None), "fp", None)
        ahead = b""
        if fp is not None and self._sock is not None and getattr(self._raw, "chunked", False) \
                and hasattr(fp, "peek"):
            try:
                self._sock.settimeout(0)
                try:
                    ahead = fp.peek(8)
                finally:
                    self._sock.settimeout(self._idle)
                    self._timeout_set = self._idle
            except (OSError, ValueError):
                ahead = b""
        if ahead[:5] == b"0\r\n\r\n":
            try:
                if not self.read() and self._unwatch():
                    self._raw.release_conn()
                    self._restore_timeout()
                    self.closed = True
                    return
            except APIConnectionError:
                return  # read() closed it
        self.close()

    def _restore_timeout(self) -> None:
        # A pooled socket keeps its timeout into the next request's send (urllib3 resets it
        # only before reading the answer): give back the read timeout, not a deadline's rest.
        if self._sock is not None and self._timeout_set != self._idle:
            try:
                self._sock.settimeout(self._idle)
            except OSError:
                pass
            self._timeout_set = self._idle

    def close(self) -> None:
        """Drop the connection (a body not read to the end cannot go back to the pool).

        What ``requests.Response.close`` does for a body read from ``raw``: close, release.
        """
        self._unwatch()
        if not self.closed:
            self.closed = True
            try:
                self._raw.close()
                release = getattr(self._raw, "release_conn", None)
                if release is not None:
                    release()
            except NETWORK_ERRORS:
                pass
