"""The blocking client: one pooled ``requests`` transport, one bounded retry loop, typed errors.

This is the one place where ``requests`` exceptions become llmroute's own. The environment
(proxies, CA bundle) is read once per client, headers are built once, and each attempt goes
straight to the session's adapter, so the per-call cost stays below a bare ``Session.post``.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection
from urllib3.util.retry import Retry

from ._version import __version__
from ._headers import parse_rate_limit_headers, parse_retry_after
from .catalog import Catalog, default_catalog
from .costs import CostTracker
from .errors import (APIConnectionError, APIStatusError, APITimeoutError, ConfigError,
                     InvalidResponseError, LLMRouteError, ToolCallError, redact, status_error)
from .results import ChatResult, Usage, first_choice, parse_tool_calls, parse_usage
from .retry import RetryPolicy
from .tokens import estimate_tokens

if TYPE_CHECKING:  # imported lazily at run time: streaming and JSON are optional paths
    from .stream import ChatStream
    from .structured import JSONResult

__all__ = ["Client", "DEFAULT_MAX_OUTPUT_TOKENS"]

log = logging.getLogger(__name__)

#: Output tokens reserved against TPM when neither the call nor the catalog gives a limit.
DEFAULT_MAX_OUTPUT_TOKENS = 1024
#: (connect, read) seconds: connecting is quick or broken; a long answer takes minutes.
DEFAULT_TIMEOUT = (5.0, 120.0)
#: Options of ``chat`` that steer the client and are never sent in the request body.
_CLIENT_OPTIONS = frozenset({"deadline", "timeout", "idempotency_key", "extra_headers",
                             "ledger_tag", "ledger_task", "ledger_routed_via"})

Messages = Sequence[Mapping[str, Any]]
Timeout = Union[float, Tuple[float, float]]


class _KeepAliveAdapter(HTTPAdapter):
    """An adapter whose pooled sockets use TCP keepalive and whose urllib3 never retries."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        options = list(HTTPConnection.default_socket_options)
        options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        if hasattr(socket, "TCP_KEEPIDLE"):
            # Idle gateways drop silent connections after a few minutes; probe before that.
            options.append((socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60))
            options.append((socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15))
        kwargs["socket_options"] = options
        super().init_poolmanager(*args, **kwargs)


def _no_retries() -> Retry:
    # All retrying is the client's own: urllib3 retrying a POST would bill twice silently.
    return Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False)


def _check_timeout(timeout: Any) -> Tuple[float, float]:
    """A finite (connect, read) pair; ``None`` is refused: a web view must never wait forever."""
    if timeout is None:
        raise ValueError("timeout must be a number or a (connect, read) pair, not None: "
                         "an unbounded wait can hang a web worker")
    pair = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if len(pair) != 2:
        raise ValueError("timeout must be a number or a (connect, read) pair, got %r" % (timeout,))
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                0 < value < float("inf")):
            raise ValueError("timeout values must be positive finite seconds, got %r"
                             % (timeout,))
    return float(pair[0]), float(pair[1])


def _env(*names: str) -> Optional[str]:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


@dataclass
class _Exchange:
    """One successful HTTP exchange of the retry loop, handed to the caller to finish."""

    response: requests.Response
    attempts: int
    reservation: Any
    started: float


def _attach_ledger(ledger: Any) -> Any:
    """The ``Ledger`` for ``Client(ledger=...)`` or ``$LLMROUTE_LEDGER`` (read once, here)."""
    if ledger is None and not os.environ.get("LLMROUTE_LEDGER"):
        return None
    from .ledger import resolve_ledger  # loaded only when a ledger is configured
    return resolve_ledger(ledger)


class Client:
    """A thread-safe client for ``POST {base_url}/chat/completions`` on one gateway.

    Reads ``LLMROUTE_BASE_URL`` / ``LLMROUTE_API_KEY`` (then ``OPENAI_BASE_URL`` /
    ``OPENAI_API_KEY``) when not given. Raises ``ConfigError`` for a missing key or URL and
    ``ValueError`` for bad options. Share one client across threads; close it when done.
    """

    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, *,
                 timeout: Timeout = DEFAULT_TIMEOUT, retry: Optional[RetryPolicy] = None,
                 limiter: Any = None, catalog: Optional[Catalog] = None,
                 tracker: Optional[CostTracker] = None, ledger: Any = None,
                 ledger_tag: Optional[str] = None,
                 session: Optional[requests.Session] = None, pool_maxsize: int = 32,
                 default_headers: Optional[Mapping[str, str]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        base_url = base_url or _env("LLMROUTE_BASE_URL", "OPENAI_BASE_URL")
        api_key = api_key or _env("LLMROUTE_API_KEY", "OPENAI_API_KEY")
        if not base_url:
            raise ConfigError("no base URL: pass base_url= or set LLMROUTE_BASE_URL "
                              "(or OPENAI_BASE_URL), e.g. https://gateway.example/v1")
        if not api_key:
            raise ConfigError("no API key: pass api_key= or set LLMROUTE_API_KEY "
                              "(or OPENAI_API_KEY)")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("base_url must start with http:// or https://, got %r"
                              % (redact(base_url, (api_key,)),))
        if not isinstance(pool_maxsize, int) or pool_maxsize <= 0:
            raise ValueError("pool_maxsize must be a positive int, got %r" % (pool_maxsize,))
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._secrets = (api_key,)
        self.timeout = _check_timeout(timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        self.limiter = limiter
        self.catalog = catalog if catalog is not None else default_catalog()
        self.tracker = tracker
        self.ledger = _attach_ledger(ledger)
        self.ledger_tag = ledger_tag
        self._clock = clock
        self._sleep = sleep
        self._url = self.base_url + "/chat/completions"
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        # Guards _adapter and pool_maxsize: the pool is swapped whole when it must grow.
        self._pool_lock = threading.Lock()
        self.pool_maxsize = pool_maxsize
        if self._owns_session:
            self._mount(pool_maxsize)
        self._adapter = self.session.get_adapter(self._url)
        # The environment is read once here, not on every call as Session.request does.
        self._proxies = requests.utils.get_environ_proxies(self._url) if self.session.trust_env \
            else {}
        self._proxies.update(self.session.proxies or {})
        verify = self.session.verify
        if verify is True and self.session.trust_env:
            verify = _env("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") or True
        self._verify = verify
        self._cert = self.session.cert
        headers = CaseInsensitiveDict(self.session.headers if not self._owns_session else {})
        headers.update({
            "User-Agent": "llmroute/%s python-requests/%s" % (__version__, requests.__version__),
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "Content-Type": "application/json",
            "Authorization": "Bearer " + api_key,
        })
        headers.update(default_headers or {})
        self._headers = dict(headers)

    # Pool ----------------------------------------------------------------------------------------
    def _mount(self, size: int) -> None:
        adapter = _KeepAliveAdapter(pool_connections=4, pool_maxsize=size, max_retries=_no_retries())
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def ensure_pool(self, size: int) -> None:
        """Grow the connection pool to ``size`` so that many threads reuse their connections."""
        with self._pool_lock:
            if size <= self.pool_maxsize or not self._owns_session:
                return
            self.pool_maxsize = size
            self._mount(size)
            # In-flight requests finish on the old adapter; it is collected once they are done.
            self._adapter = self.session.get_adapter(self._url)

    def close(self) -> None:
        """Close the pooled connections (only those of a session the client created)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Client(base_url=%r, api_key=<hidden>, retry=%r)" % (self.base_url, self.retry)

    # Public calls -------------------------------------------------------------------------------
    def chat(self, model: str, messages: Messages, *, deadline: Optional[float] = None,
             timeout: Optional[Timeout] = None, idempotency_key: Optional[str] = None,
             extra_headers: Optional[Mapping[str, str]] = None, ledger_tag: Optional[str] = None,
             ledger_task: Optional[str] = None, ledger_routed_via: Optional[str] = None,
             **params: Any) -> ChatResult:
        """Send one chat completion and return its ``ChatResult``.

        ``params`` are OpenAI parameters sent as they are (``max_tokens``, ``temperature``,
        ``tools``…). ``deadline`` bounds the whole call in seconds, retries and waits included.
        The ``ledger_*`` options label the call's ledger row and are never sent.
        Raises an ``APIStatusError`` subclass, ``APIConnectionError``/``APITimeoutError``,
        ``InvalidResponseError``, ``RateLimitTimeout`` or ``ValueError`` for bad arguments.
        """
        started = self._clock()
        try:
            result = self._chat(model, messages, deadline, timeout, idempotency_key,
                                extra_headers, params)
        except LLMRouteError as err:
            if self.ledger is not None and not isinstance(err, ValueError):
                self.record(model, messages, error=err, started=started, tag=ledger_tag,
                            task=ledger_task, routed_via=ledger_routed_via)
            raise
        if self.ledger is not None:
            self.record(model, messages, result=result, tag=ledger_tag, task=ledger_task,
                        routed_via=ledger_routed_via)
        return result

    def _chat(self, model: str, messages: Messages, deadline: Optional[float],
              timeout: Optional[Timeout], idempotency_key: Optional[str],
              extra_headers: Optional[Mapping[str, str]], params: Dict[str, Any]) -> ChatResult:
        payload = self._payload(model, messages, params)
        try:
            exchange = self._send(model, payload, messages, deadline=deadline, timeout=timeout,
                                  idempotency_key=idempotency_key, extra_headers=extra_headers)
        except Exception:
            if self.tracker is not None:
                self.tracker.add_error(model)
            raise
        try:
            return self._finish(model, exchange)
        finally:
            if exchange.reservation is not None:
                exchange.reservation.release()

    def record(self, model: str, messages: Messages, *, result: Optional[ChatResult] = None,
               error: Optional[BaseException] = None, started: Optional[float] = None,
               tag: Optional[str] = None, task: Optional[str] = None,
               routed_via: Optional[str] = None) -> None:
        """Write one call's ledger row (for llmroute's own modules: streams); never raises."""
        ledger = self.ledger
        if ledger is None:
            return
        latency = None if started is None else (self._clock() - started) * 1000.0
        ledger.record_call(model, result=result, error=error, latency_ms=latency,
                           attempts=getattr(error, "attempts", None), task=task,
                           routed_via=routed_via, tag=tag if tag is not None else self.ledger_tag,
                           messages=messages)

    def chat_json(self, model: str, messages: Messages, *,
                  schema: Optional[Mapping[str, Any]] = None, max_repairs: int = 2,
                  **params: Any) -> "JSONResult":
        """``chat`` for a JSON answer, parsed, checked and repaired: ``structured.chat_json``."""
        from .structured import chat_json
        return chat_json(self, model, messages, schema=schema, max_repairs=max_repairs, **params)

    def stream(self, model: str, messages: Messages, *, deadline: Optional[float] = None,
               timeout: Optional[Timeout] = None, idempotency_key: Optional[str] = None,
               extra_headers: Optional[Mapping[str, str]] = None,
               ledger_tag: Optional[str] = None, ledger_task: Optional[str] = None,
               ledger_routed_via: Optional[str] = None, **params: Any) -> "ChatStream":
        """``chat`` as a ``ChatStream`` of text deltas (see ``llmroute.stream``); its ledger
        row is written when the stream ends."""
        from .stream import open_stream
        on_end = None
        if self.ledger is not None:
            started = self._clock()

            def on_end(result: Optional[ChatResult], error: Optional[BaseException]) -> None:
                self.record(model, messages, result=result, error=error,
                            started=started if result is None else None, tag=ledger_tag,
                            task=ledger_task, routed_via=ledger_routed_via)
        return open_stream(self, model, messages, deadline=deadline, timeout=timeout,
                           idempotency_key=idempotency_key, extra_headers=extra_headers,
                           on_end=on_end, **params)

    # Internals shared with streaming and structured output ----------------------------------
    def _payload(self, model: str, messages: Messages, params: Mapping[str, Any]
                 ) -> Dict[str, Any]:
        if not isinstance(model, str) or not model:
            raise ValueError("model must be a non-empty string, got %r" % (model,))
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) \
                or not messages:
            raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
        for message in messages:
            if not isinstance(message, Mapping) or "role" not in message:
                raise ValueError("each message must be a dict with a 'role', got %r"
                                 % (type(message).__name__,))
        payload = {"model": model, "messages": list(messages)}
        payload.update(params)
        return payload

    def _reserve_tokens(self, model: str, messages: Messages, payload: Mapping[str, Any]) -> int:
        """Tokens to reserve against TPM: the prompt estimate plus the most the answer can use."""
        out = payload.get("max_completion_tokens") or payload.get("max_tokens")
        if not out:
            spec = self.catalog.get(model)
            out = (spec.max_output_tokens if spec is not None else None) \
                or DEFAULT_MAX_OUTPUT_TOKENS
        return estimate_tokens(messages) + int(out)

    def _attempt_timeout(self, timeout: Optional[Timeout], end: Optional[float]
                         ) -> Tuple[float, float]:
        connect, read = _check_timeout(timeout) if timeout is not None else self.timeout
        if end is not None:
            left = max(end - self._clock(), 0.001)
            connect, read = min(connect, left), min(read, left)
        return connect, read

    def _prepare(self, body: bytes, headers: Dict[str, str]) -> requests.PreparedRequest:
        prepared = requests.PreparedRequest()
        prepared.method = "POST"
        prepared.url = self._url
        prepared.headers = CaseInsensitiveDict(headers)
        prepared.headers["Content-Length"] = str(len(body))
        prepared.body = body
        prepared.hooks = {"response": []}
        prepared._cookies = None
        return prepared

    def _send(self, model: str, payload: Mapping[str, Any], messages: Messages, *,
              deadline: Optional[float], timeout: Optional[Timeout],
              idempotency_key: Optional[str], extra_headers: Optional[Mapping[str, str]],
              stream: bool = False) -> _Exchange:
        """Run the retry loop until a 2xx arrives; the caller finishes and releases it.

        Each attempt takes its own limiter reservation, released during backoff sleeps; the
        reservation of the successful attempt is handed back still held.
        """
        policy = self.retry
        if deadline is None:
            deadline = policy.deadline
        elif not 0 < deadline < float("inf"):
            raise ValueError("deadline must be a positive number of seconds, got %r" % (deadline,))
        if timeout is not None:
            _check_timeout(timeout)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = self._headers
        key = idempotency_key or uuid.uuid4().hex
        headers = dict(headers)
        headers["Idempotency-Key"] = key
        if extra_headers:
            headers.update(extra_headers)
        limiter = self.limiter
        tokens = self._reserve_tokens(model, messages, payload) if limiter is not None else 0
        started = self._clock()
        end = started + deadline if deadline is not None else None
        debug = log.isEnabledFor(logging.DEBUG)
        last_error: Optional[Exception] = None
        max_attempts = policy.max_retries + 1
        for attempt in range(1, max_attempts + 1):
            reservation = None
            if limiter is not None:
                left = None if end is None else end - self._clock()
                reservation = limiter.reserve(tokens, model=model, timeout=left,
                                              max_pause=policy.max_retry_after)
            handed_over = False
            try:
                connect, read = self._attempt_timeout(timeout, end)
                if debug:
                    log.debug("POST %s model=%s attempt=%d/%d timeout=(%g, %g)", self._url,
                              model, attempt, max_attempts, connect, read)
                try:
                    response = self._adapter.send(
                        self._prepare(body, headers), stream=stream, timeout=(connect, read),
                        verify=self._verify, cert=self._cert, proxies=self._proxies)
                except (requests.Timeout, requests.ConnectionError,
                        requests.exceptions.ChunkedEncodingError) as err:
                    if reservation is not None:
                        reservation.refund()
                    last_error = self._transport_error(err, model)
                    if not policy.retry_connection_errors or attempt == max_attempts:
                        raise last_error from err
                    wait = policy.backoff(attempt)
                    reason = type(last_error).__name__
                    status = None
                else:
                    status = response.status_code
                    if limiter is not None:
                        limiter.observe(model, status, response.headers)
                    if 200 <= status < 300:
                        handed_over = True
                        return _Exchange(response, attempt, reservation, started)
                    if reservation is not None:
                        reservation.refund()
                    error = self._status_error(response, model)
                    response.close()
                    if attempt == max_attempts or not policy.is_retryable_status(
                            status, response.headers):
                        raise error
                    backoff = policy.wait(attempt, response.headers, now=time.time())
                    if backoff.server_asked and backoff.seconds > policy.max_retry_after:
                        raise error  # carries .retry_after; the caller may move on at once
                    wait, reason, last_error = backoff.seconds, "HTTP %d" % status, error
            finally:
                if reservation is not None and not handed_over:
                    reservation.release()
            if end is not None and self._clock() + wait >= end:
                log.warning("model=%s attempt %d/%d failed (%s); no retry: the deadline leaves "
                            "less than the %.2fs wait", model, attempt, max_attempts, reason, wait)
                raise last_error
            log.warning("model=%s attempt %d/%d failed (%s); retrying in %.2fs", model, attempt,
                        max_attempts, reason, wait)
            self._sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _transport_error(self, err: Exception, model: str) -> APIConnectionError:
        text = redact(str(err), self._secrets)
        if isinstance(err, requests.Timeout):
            return APITimeoutError("request to %s for model %s timed out: %s"
                                   % (self._url, model, text))
        return APIConnectionError("request to %s for model %s failed: %s"
                                  % (self._url, model, text))

    def _status_error(self, response: requests.Response, model: str) -> APIStatusError:
        headers = response.headers
        try:
            body = response.text
        except (requests.RequestException, ValueError):
            body = ""
        retry_after = parse_retry_after(headers, now=time.time())
        safe_headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        return status_error(response.status_code, body=body, request_id=_request_id(headers),
                            retry_after=retry_after, model=model, headers=safe_headers,
                            secrets=self._secrets)

    def _finish(self, model: str, exchange: _Exchange) -> ChatResult:
        """Parse a 2xx exchange into a ``ChatResult``; settle the limiter and the tracker."""
        response = exchange.response
        request_id = _request_id(response.headers)
        reservation = exchange.reservation
        try:
            data = json.loads(response.content)
        except ValueError:
            if reservation is not None:
                reservation.refund()
            excerpt = redact(response.content[:200].decode("utf-8", "replace"), self._secrets)
            raise InvalidResponseError(
                "model %s answered HTTP %d with a body that is not JSON: %r"
                % (model, response.status_code, excerpt), status_code=response.status_code,
                request_id=request_id, body=excerpt) from None
        try:
            choice = first_choice(data, request_id, self._secrets)
        except InvalidResponseError:
            if reservation is not None:
                reservation.refund()
            raise
        usage = parse_usage(data.get("usage"))
        if reservation is not None:
            if usage is not None:
                reservation.settle(usage.total_tokens)
            else:
                reservation.refund()
        latency_ms = (self._clock() - exchange.started) * 1000.0
        message = choice.get("message") or {}
        cost = None
        if usage is not None:
            cost = self.catalog.spec(model).cost(usage.prompt_tokens, usage.completion_tokens,
                                                 usage.cached_tokens or 0)
        if self.tracker is not None:
            self.tracker.add(model, prompt_tokens=usage.prompt_tokens if usage else 0,
                             completion_tokens=usage.completion_tokens if usage else 0,
                             cost_usd=cost)
        try:
            tool_calls = parse_tool_calls(message.get("tool_calls"))
        except ToolCallError as err:
            # The call was billed: keep its result (usage, cost) on the error for the caller.
            err.result = ChatResult(
                content=message.get("content"), model=data.get("model") or model,
                finish_reason=choice.get("finish_reason"), usage=usage, cost_usd=cost,
                latency_ms=latency_ms, attempts=exchange.attempts, request_id=request_id,
                raw=data)
            raise
        return ChatResult(
            content=message.get("content"), model=data.get("model") or model,
            finish_reason=choice.get("finish_reason"), usage=usage, cost_usd=cost,
            latency_ms=latency_ms, attempts=exchange.attempts, request_id=request_id,
            tool_calls=tool_calls, rate_limit=parse_rate_limit_headers(response.headers),
            raw=data)


def _request_id(headers: Mapping[str, str]) -> Optional[str]:
    return headers.get("x-request-id") or headers.get("request-id")
