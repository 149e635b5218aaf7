"""The one attempt path: send a request, read its body, map every transport failure, retry.

``Transport`` is what ``Client`` owns and what ``chat``, ``stream``, ``chat_json`` and
``run_tools`` all go through. An attempt is over only when its body is read (for a stream, when
its status line is in; each chunk is then read through ``_body.BodyReader``): a 2xx body cut short,
stalled or undecodable is a failed attempt, mapped to llmroute's own error and retried by the
policy's switch for failures after sending. The deadline is enforced while bytes arrive: each
socket read waits at most the time left. Only ``requests``/``urllib3``/``http.client``/socket
errors are caught here, and none of them (nor their text with a secret in it) is chained on the
error raised: ``__cause__`` and ``__context__`` stay empty, so a traceback cannot leak the key.
"""
from __future__ import annotations

import collections
import logging
import os
import time
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple, Union

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import select_proxy

from . import _watchdog
from ._body import (DEFAULT_MAX_RESPONSE_BYTES, NETWORK_ERRORS, BodyReader, network_error)
from ._headers import NOT_PARSED, parse_lowered_rate_limit, parse_retry_after
from ._request import (check_deadline, check_headers, check_timeout, encode_payload,
                       wire_safe)
from .errors import (APIConnectionError, APIStatusError, APITimeoutError, ConfigError,
                     InvalidResponseError, LLMRouteError, redact, status_error)
from .results import Attempt
from .retry import RetryPolicy

__all__ = ["Transport", "Exchange", "BodyReader", "DEFAULT_MAX_RESPONSE_BYTES"]

log = logging.getLogger(__name__)


def _new_key() -> str:
    """A random Idempotency-Key: 128 bits in hex, as uuid4().hex gives, without importing uuid
    (which drags in ``platform`` at import time)."""
    return os.urandom(16).hex()

#: Names the attempt loop sets on every request (never taken twice from the client's headers).
_OWN_HEADERS = frozenset({"idempotency-key", "x-stainless-retry-count", "content-length"})

#: An error body kept for the exception: enough to read, not a whole HTML page.
ERROR_BODY_BYTES = 64 * 1024
# Headers whose value is a credential: given per call, it is redacted like the client's key.
_CREDENTIAL_HEADERS = frozenset(("authorization", "proxy-authorization", "api-key",
                                 "x-api-key"))
# Cleanups of abandoned streams, process-wide: a finalizer may drop a stream whose limiter
# another client shares, so every Transport drains this before reserving. deque.append and
# popleft are atomic without a lock, so a finalizer never takes a lock here.
_DEFERRED: Deque[Callable[[], None]] = collections.deque()

Timeout = Union[float, Tuple[float, float]]

# requests' own HTTPAdapter.send, as imported. A test library (``responses``) replaces it to
# intercept every request: while it is replaced, calls go through ``adapter.send`` again.
_REQUESTS_SEND = HTTPAdapter.__dict__.get("send")
if getattr(_REQUESTS_SEND, "__module__", None) != "requests.adapters":  # patched at our import
    _REQUESTS_SEND = None


# Secrets of a call --------------------------------------------------------------------------
def with_header_secrets(secrets: Tuple[str, ...], headers: Mapping[str, str]
                        ) -> Tuple[str, ...]:
    """``secrets`` plus the credentials among per-call ``headers`` (and their token part)."""
    found = []
    for name, value in headers.items():
        if name.lower() in _CREDENTIAL_HEADERS and value.strip():
            found.append(value)
            scheme, _, token = value.strip().partition(" ")
            if token.strip():
                found.append(token.strip())
    return secrets + tuple(s for s in found if s not in secrets) if found else secrets


# The retry loop ------------------------------------------------------------------------------
class Exchange:
    """A 2xx answer: its whole body (``body``), or for a stream its open ``reader``.

    A plain slotted class, not a dataclass: one is built per call, and it is cheaper to import.
    """

    __slots__ = ("status", "headers", "body", "reader", "attempts", "attempt_log",
                 "reservation", "started", "end", "rate_limit", "lowered_headers",
                 "secrets")

    def __init__(self, status: int, headers: Mapping[str, str], body: Optional[bytes],
                 reader: Optional[BodyReader],
                 lowered_headers: Optional[Mapping[str, str]] = None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.reader = reader
        self.attempts = 0
        self.attempt_log: Tuple[Attempt, ...] = ()
        self.reservation: Any = None
        self.started = 0.0
        self.end: Optional[float] = None
        #: The headers' RateLimitInfo when the limiter's parse made it, else ``NOT_PARSED``.
        self.rate_limit: Any = NOT_PARSED
        #: The same headers as a plain dict keyed by lower-case name, for lookups and parses
        #: that need no case folding per read (what requests' CaseInsensitiveDict does).
        self.lowered_headers: Mapping[str, str] = lowered_headers if lowered_headers is not None \
            else {k.lower(): v for k, v in headers.items()}
        #: The call's secrets: the client's, plus credentials given in its extra_headers.
        self.secrets: Tuple[str, ...] = ()


class Transport:
    """Sends chat requests for one ``Client``: the retry loop, the body reads, the error map.

    Public to llmroute's own modules (stream, client), not to users: they go through Client.
    ``defer(fn)`` queues a cleanup without taking a lock (safe from a finalizer) on a
    process-wide queue that every Transport runs at the start of its next call and on ``close``
    (a stream's limiter may be shared with other clients).
    """

    def __init__(self, *, url: str, adapter: Any, proxies: Mapping[str, str], verify: Any,
                 cert: Any, headers: Mapping[str, str], secrets: Tuple[str, ...],
                 timeout: Tuple[float, float], clock: Callable[[], float],
                 sleep: Callable[[float], None], display_url: str,
                 direct: bool = False,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self.url = url
        self.adapter = adapter
        self.proxies = dict(proxies)
        self.verify = verify
        self.cert = cert
        # Names the loop sets itself are left out, so a plain dict never holds one name twice.
        self.headers = {k: v for k, v in headers.items() if k.lower() not in _OWN_HEADERS}
        self.secrets = secrets
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.display_url = display_url
        #: Whether requests may skip ``adapter.send`` for the adapter's urllib3 pool (the
        #: client's own adapter, no proxy): the same request, without requests' per-call work.
        self.direct = direct and select_proxy(url, self.proxies) is None
        # (adapter, pool, path): the pool of the last direct send; a tuple, swapped whole.
        self._direct_pool: Optional[Tuple[Any, Any, str]] = None
        self._default_timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self.max_response_bytes = max_response_bytes

    # Deferred cleanups ---------------------------------------------------------------------
    def defer(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` later, outside any lock (called from finalizers)."""
        _DEFERRED.append(cleanup)

    def run_deferred(self) -> None:
        """Run the queued cleanups (abandoned streams giving back their slots)."""
        deferred = _DEFERRED
        while deferred:
            try:
                cleanup = deferred.popleft()
            except IndexError:
                return
            try:
                cleanup()
            except Exception:  # a cleanup's failure must not fail the caller's new call
                log.exception("cleanup of an abandoned stream failed")

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    # Sending -------------------------------------------------------------------------------
    def exchange(self, model: str, payload: Mapping[str, Any], *, policy: RetryPolicy,
                 limiter: Any, tokens: float, deadline: Optional[float],
                 timeout: Optional[Timeout], idempotency_key: Optional[str],
                 extra_headers: Optional[Mapping[str, str]], stream: bool = False,
                 touch_each_read: bool = True) -> Exchange:
        """Run the retry loop until a 2xx arrives (its body read, unless ``stream``).

        Each attempt takes its own limiter reservation, released during backoff sleeps; the
        reservation of the successful attempt is handed back still held. Raises the typed error
        of the last attempt, with ``attempt_log`` set, or ``ValueError`` for bad arguments.
        """
        if _DEFERRED:
            self.run_deferred()
        deadline = check_deadline(deadline) if deadline is not None else policy.deadline
        connect, read = check_timeout(timeout) if timeout is not None else self.timeout
        if idempotency_key is not None and (not isinstance(idempotency_key, str)
                                            or not idempotency_key
                                            or not wire_safe(idempotency_key)):
            raise ValueError("idempotency_key must be a non-empty printable string")
        headers = dict(self.headers)
        secrets = self.secrets
        if extra_headers:
            checked = check_headers(extra_headers, "extra_headers")
            _merge_headers(headers, checked)
            secrets = with_header_secrets(secrets, checked)
        headers["Idempotency-Key"] = idempotency_key or _new_key()
        body = encode_payload(payload)
        headers["Content-Length"] = str(len(body))
        started = self.clock()
        end = started + deadline if deadline is not None else None
        debug = log.isEnabledFor(logging.DEBUG)
        max_attempts = policy.max_retries + 1
        attempts: List[Attempt] = []
        what = "request to %s for model %s" % (self.display_url, model)
        for number in range(1, max_attempts + 1):
            headers["x-stainless-retry-count"] = str(number - 1)
            reservation = None
            if limiter is not None:
                left = None if end is None else max(end - self.clock(), 0.0)
                reservation = limiter.reserve(tokens, model=model, timeout=left,
                                              max_pause=policy.max_retry_after)
            handed_over = False
            try:
                now = self.clock()
                left = None if end is None else end - now
                if left is not None and left <= 0:
                    error: LLMRouteError = APITimeoutError(
                        "%s: the deadline passed before attempt %d" % (what, number),
                        request_sent=False)
                    attempts.append(Attempt(number, None, type(error).__name__, 0.0,
                                            "deadline passed"))
                    raise _with_log(error, attempts)
                pair = (connect, read) if left is None else (min(connect, left),
                                                             min(read, left))
                if debug:
                    log.debug("POST %s model=%s attempt=%d/%d timeout=(%g, %g)",
                              self.display_url, model, number, max_attempts, pair[0], pair[1])
                outcome = self._attempt(body, headers, pair, end, what, model, policy, limiter,
                                        stream, touch_each_read, secrets)
                if isinstance(outcome, Exchange):
                    attempts.append(Attempt(number, outcome.status, None, 0.0, "success"))
                    outcome.attempts = number
                    outcome.attempt_log = tuple(attempts)
                    outcome.reservation = reservation
                    outcome.started = started
                    outcome.end = end
                    outcome.secrets = secrets
                    handed_over = True
                    return outcome
                error, retryable, hint_headers = outcome
                status = getattr(error, "status_code", None)
                if reservation is not None:
                    reservation.refund()
            finally:
                if reservation is not None and not handed_over:
                    reservation.release()
            label = "HTTP %d" % status if status is not None else type(error).__name__
            if not retryable:
                attempts.append(Attempt(number, status, type(error).__name__, 0.0,
                                        "not retryable"))
                raise _with_log(error, attempts)
            if number == max_attempts:
                attempts.append(Attempt(number, status, type(error).__name__, 0.0,
                                        "no retries left"))
                log.warning("model=%s attempt %d/%d failed (%s); giving up: no retries left",
                            model, number, max_attempts, label)
                raise _with_log(error, attempts)
            backoff = policy.wait(number, hint_headers, now=time.time())
            if backoff.server_asked and backoff.seconds > policy.max_retry_after:
                attempts.append(Attempt(number, status, type(error).__name__, 0.0,
                                        "server asked for %.3gs, over max_retry_after"
                                        % backoff.seconds))
                log.warning("model=%s attempt %d/%d failed (%s); giving up: the server asks for "
                            "%.2fs, over max_retry_after", model, number, max_attempts, label,
                            backoff.seconds)
                raise _with_log(error, attempts)  # carries .retry_after; the caller may move on
            wait = backoff.seconds
            if end is not None and self.clock() + wait >= end:
                attempts.append(Attempt(number, status, type(error).__name__, 0.0,
                                        "deadline leaves less than the wait"))
                log.warning("model=%s attempt %d/%d failed (%s); giving up: the deadline leaves "
                            "less than the %.2fs wait", model, number, max_attempts, label, wait)
                raise _with_log(error, attempts)
            attempts.append(Attempt(number, status, type(error).__name__, wait,
                                    "retrying (server asked)" if backoff.server_asked
                                    else "retrying"))
            log.info("model=%s attempt %d/%d failed (%s); retrying in %.2fs", model, number,
                     max_attempts, label, wait)
            self.sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _attempt(self, body: bytes, headers: Dict[str, str], pair: Tuple[float, float],
                 end: Optional[float], what: str, model: str, policy: RetryPolicy,
                 limiter: Any, stream: bool, touch_each_read: bool,
                 secrets: Tuple[str, ...]) -> Any:
        """One try: an ``Exchange`` for a 2xx, else ``(error, retryable, headers for a wait)``."""
        failure: Optional[LLMRouteError] = None
        response: Optional[requests.Response] = None
        if end is not None:  # for the client's own connections, reading the headers
            _watchdog.expect_answer((end, self.clock))
        try:
            if self.direct and HTTPAdapter.send is _REQUESTS_SEND \
                    and type(self.adapter).send is _REQUESTS_SEND:
                raw = self._send_direct(body, headers, pair)
            else:
                response = self.adapter.send(
                    self._prepare(body, headers), stream=True, timeout=pair,
                    verify=self.verify, cert=self.cert, proxies=self.proxies)
                raw = response.raw
        except (requests.exceptions.InvalidURL, urllib3.exceptions.LocationValueError) as err:
            failure = ConfigError("%s could not be sent: %s (details withheld: they may quote "
                                  "a credential)" % (what, type(err).__name__))
        except requests.exceptions.InvalidHeader as err:
            # The caller's headers were checked before sending: this one is the server's
            # (urllib3 refusing e.g. two conflicting Content-Lengths in the answer).
            failure = network_error(err, what, secrets, sent=True)
        except NETWORK_ERRORS as err:
            failure = network_error(err, what, secrets)
        except (ValueError, TypeError, UnicodeError) as err:
            # http.client refusing a header or URL; its text may quote the header: not shown.
            failure = ConfigError("%s could not be sent: %s (details withheld: they may quote "
                                  "a credential)" % (what, type(err).__name__))
        finally:
            if end is not None:
                _watchdog.expect_answer(None)
        if failure is not None:
            if isinstance(failure, ConfigError):
                return failure, False, None
            assert isinstance(failure, APIConnectionError)
            return failure, policy.retries_transport_error(failure.request_sent), None
        if response is None:
            status = raw.status
            # What requests.Response.headers holds: repeated headers joined by ", ".
            merged = list(raw.headers.itermerged())
            headers_in = CaseInsensitiveDict(merged)
            lowered = {name.lower(): value for name, value in merged}
        else:
            status = response.status_code
            headers_in = response.headers
            lowered = dict(headers_in.lower_items())
        if status < 200 and status != 101:
            # An interim answer (103 Early Hints) that http.client took for the final one:
            # the real answer behind it is lost with this connection. Sent, not answered.
            BodyReader(raw, what=what, idle=pair[1], end=None, clock=self.clock,
                       secrets=secrets, touch_each_read=False).close()
            error = APIConnectionError("%s: the server sent an interim HTTP %d, no final answer"
                                       % (what, status), request_sent=True)
            return error, policy.retries_transport_error(True), None
        rate_limit = NOT_PARSED
        if limiter is not None:
            if _is_rate_limiter(limiter):  # one parse, shared with the result
                rate_limit = parse_lowered_rate_limit(lowered)
                limiter.observe(model, status, headers_in, rate_limit=rate_limit)
            else:
                limiter.observe(model, status, headers_in)
        reader = BodyReader(raw, what=what, idle=pair[1], end=end, clock=self.clock,
                            secrets=secrets, touch_each_read=touch_each_read,
                            max_bytes=self.max_response_bytes, status=status)
        if 200 <= status < 300:
            if stream:
                exchange = Exchange(status, headers_in, None, reader, lowered)
            else:
                try:
                    data = reader.read_all()
                except APIConnectionError as err:
                    return err, policy.retries_transport_error(err.request_sent), None
                except InvalidResponseError as err:  # over max_response_bytes: sent, maybe billed
                    return err, False, None
                exchange = Exchange(status, headers_in, data, None, lowered)
            exchange.rate_limit = rate_limit
            return exchange
        try:
            text = reader.read_all(ERROR_BODY_BYTES).decode("utf-8", "replace")
        except APIConnectionError:
            text = ""  # the status says enough; a broken error body is not worth more
        error = self._status_error(status, headers_in, text, model, secrets)
        return error, policy.is_retryable_status(status, headers_in), headers_in

    def _send_direct(self, body: bytes, headers: Dict[str, str],
                     pair: Tuple[float, float]) -> Any:
        """``HTTPAdapter.send`` for this one URL, without its per-call lookups: the adapter's
        own pool (found once), its retry setting, and requests' mapping of urllib3 errors."""
        cached = self._direct_pool
        if cached is None or cached[0] is not self.adapter or cached[1].pool is None:
            adapter = self.adapter
            request = self._prepare(body, headers)
            try:
                pool = adapter.get_connection_with_tls_context(
                    request, self.verify, proxies=self.proxies, cert=self.cert)
            except urllib3.exceptions.LocationValueError as err:
                raise requests.exceptions.InvalidURL(err, request=request) from None
            adapter.cert_verify(pool, self.url, self.verify, self.cert)
            cached = self._direct_pool = (adapter, pool, request.path_url)
        timeout = self._default_timeout if pair == self.timeout else urllib3.Timeout(
            connect=pair[0], read=pair[1])
        try:
            return cached[1].urlopen(
                "POST", cached[2], body=body, headers=headers, redirect=False,
                assert_same_host=False, preload_content=False, decode_content=False,
                retries=cached[0].max_retries, timeout=timeout, chunked=False)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _as_requests_error(err) from None

    def _status_error(self, status: int, headers: Mapping[str, str], body: str,
                      model: str, secrets: Tuple[str, ...]) -> APIStatusError:
        retry_after = parse_retry_after(headers, now=time.time())
        # A gateway may echo the request's headers back: every value is redacted.
        safe_headers = {k: redact(v, secrets) for k, v in headers.items()
                        if k.lower() != "authorization"}
        request_id = headers.get("x-request-id") or headers.get("request-id")
        return status_error(status, body=body, request_id=request_id, retry_after=retry_after,
                            model=model, headers=safe_headers, secrets=secrets)

    def _prepare(self, body: bytes, headers: Dict[str, str]) -> requests.PreparedRequest:
        prepared = requests.PreparedRequest()
        prepared.method = "POST"
        prepared.url = self.url
        prepared.headers = CaseInsensitiveDict(headers)
        prepared.body = body
        prepared.hooks = {"response": []}  # (PreparedRequest() already has no cookies)
        return prepared


_rate_limiter_class: Any = None  # limits.RateLimiter, imported with the first limiter seen


def _is_rate_limiter(limiter: Any) -> bool:
    """Whether ``limiter`` is llmroute's (its ``observe`` takes the parse made here); a plain
    ``import llmroute`` does not load the limits module."""
    global _rate_limiter_class
    if _rate_limiter_class is None:
        from .limits import RateLimiter
        _rate_limiter_class = RateLimiter
    return isinstance(limiter, _rate_limiter_class)


def _merge_headers(headers: Dict[str, str], extra: Mapping[str, str]) -> None:
    """``headers.update(extra)`` with names matched case-insensitively (as requests does); the
    names the loop sets itself are skipped (its own value always won)."""
    lowered = {name.lower(): name for name in headers}
    for name, value in extra.items():
        if name.lower() in _OWN_HEADERS:
            continue
        old = lowered.get(name.lower())
        if old is not None and old != name:
            del headers[old]
        headers[name] = value
        lowered[name.lower()] = name


def _as_requests_error(err: BaseException) -> BaseException:
    """The requests exception ``HTTPAdapter.send`` raises for a urllib3 error (same mapping)."""
    exc = requests.exceptions
    errors = urllib3.exceptions
    if isinstance(err, errors.MaxRetryError):
        reason = err.reason
        if isinstance(reason, errors.ConnectTimeoutError) \
                and not isinstance(reason, errors.NewConnectionError):
            return exc.ConnectTimeout(err)
        if isinstance(reason, errors.ResponseError):
            return exc.RetryError(err)
        if isinstance(reason, errors.ProxyError):
            return exc.ProxyError(err)
        if isinstance(reason, errors.SSLError):
            return exc.SSLError(err)
        return exc.ConnectionError(err)
    if isinstance(err, (errors.ProtocolError, OSError, errors.ClosedPoolError)):
        return exc.ConnectionError(err)
    if isinstance(err, errors.ProxyError):
        return exc.ProxyError(err)
    if isinstance(err, errors.SSLError):
        return exc.SSLError(err)
    if isinstance(err, errors.ReadTimeoutError):
        return exc.ReadTimeout(err)
    if isinstance(err, errors.InvalidHeader):
        return exc.InvalidHeader(err)
    return err


def _with_log(error: LLMRouteError, attempts: List[Attempt]) -> LLMRouteError:
    """The error with the call's attempt log on it (every llmroute error the loop raises)."""
    error.attempt_log = tuple(attempts)  # type: ignore[attr-defined]
    return error
