"""The blocking client: configuration, the public calls, one pooled ``requests`` transport.

The attempt path itself (send, read the body, map every transport failure to llmroute's own
error, enforce the deadline, retry) lives in ``_transport.Transport``, which this client owns
and which ``chat``, ``stream``, ``chat_json`` and ``run_tools`` all go through. The environment
(proxies, CA bundle) is read once per client and headers are built once, so the per-call cost
stays below a bare ``Session.post``.
"""
from __future__ import annotations

import http.client
import logging
import os
import socket
import threading
import time
import urllib.parse
from typing import (TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, Tuple, Union)

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from ._version import __version__
from ._options import DEFAULT_MAX_OUTPUT_TOKENS, reserved_output_tokens
from ._completion import finish_chat
from ._request import build_payload, check_headers, check_timeout
from . import _watchdog
from ._transport import DEFAULT_MAX_RESPONSE_BYTES, Transport
from .errors import ConfigError, LLMRouteError, redact
from .results import ChatResult
from .retry import RetryPolicy
from .tokens import estimate_tokens

if TYPE_CHECKING:  # imported lazily at run time: tracking, streaming and JSON are optional
    from .catalog import Catalog
    from .costs import CostTracker
    from .stream import ChatStream
    from .structured import JSONResult

__all__ = ["Client", "DEFAULT_MAX_OUTPUT_TOKENS"]

log = logging.getLogger(__name__)

#: (connect, read) seconds: connecting is quick or broken; a long answer takes minutes.
DEFAULT_TIMEOUT = (5.0, 120.0)

Messages = Sequence[Mapping[str, Any]]
Timeout = Union[float, Tuple[float, float]]

# Kept under its old name: other modules of the package import it from here.
_check_timeout = check_timeout


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
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool,
                                                   "https": _WatchedHTTPSPool}


class _WatchedHeaders:
    """A connection whose wait for the status line and headers is bounded by the deadline.

    Each socket read there waits at most the read timeout, but headers trickled a byte at a
    time would take forever: the deadline watchdog shuts the socket down when it passes.
    """

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        pending = _watchdog.answer_deadline()
        sock = getattr(self, "sock", None)
        if pending is None or sock is None:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        fired = []

        def expire() -> None:
            fired.append(True)
            _watchdog.shutdown_socket(sock)

        ticket = _watchdog.watch(pending[0], pending[1], expire)
        failed = False
        try:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        except (OSError, http.client.HTTPException):
            if not fired:
                raise
            failed = True
        finally:
            _watchdog.cancel(ticket)
        if failed:  # outside the except: urllib3 makes this its read timeout, not chained
            raise socket.timeout("the deadline passed while the answer's headers arrived")


class _WatchedHTTPConnection(_WatchedHeaders, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedHeaders, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# urllib3's messages name the pool and connection by class ("HTTPConnectionPool(host=...):
# Read timed out"): the watched ones read as the classes they extend, as users know them.
for _watched, _base in ((_WatchedHTTPConnection, HTTPConnection),
                        (_WatchedHTTPSConnection, HTTPSConnection),
                        (_WatchedHTTPPool, HTTPConnectionPool),
                        (_WatchedHTTPSPool, HTTPSConnectionPool)):
    _watched.__name__ = _base.__name__


def _no_retries() -> Retry:
    # All retrying is the client's own: urllib3 retrying a POST would bill twice silently.
    return Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False)


def _env(*names: str) -> Optional[str]:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _check_api_key(api_key: Any) -> str:
    """The key stripped of surrounding whitespace (a key file's newline); ConfigError if unfit.

    The message never quotes the key.
    """
    if not isinstance(api_key, str):
        raise ConfigError("api_key must be a string, got %s" % type(api_key).__name__)
    key = api_key.strip()
    if not key:
        raise ConfigError("api_key is empty or only whitespace")
    for position, char in enumerate(key):
        if not (" " <= char <= "~" or "\xa0" <= char <= "\xff"):
            raise ConfigError("api_key holds a control or non-Latin-1 character at position %d"
                              " (the key is not shown)" % position)
    return key


def _split_credentials(base_url: str) -> Tuple[str, str, Tuple[str, ...]]:
    """``(url to send to, url to show, secrets)``: credentials in the URL are never shown.

    They are not sent either (the API key is the credential): exactly as before.
    """
    try:
        parts = urllib.parse.urlsplit(base_url)
    except ValueError:  # its text quotes the netloc, password included: raised outside
        parts = None
    if parts is None:
        raise ConfigError("base_url is not a valid URL")
    netloc = parts.netloc
    if "@" not in netloc:
        return base_url, base_url, ()
    userinfo, _, host = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    secrets = tuple(s for s in (password, urllib.parse.unquote(password), userinfo) if s)
    scheme, _, path, query, fragment = parts
    shown = urllib.parse.urlunsplit((
        scheme, "%s:[REDACTED]@%s" % (user, host) if password else "[REDACTED]@" + host,
        path, query, fragment))
    sent = urllib.parse.urlunsplit((scheme, host, path, query, fragment))
    return sent, shown, secrets


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
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
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
        api_key = _check_api_key(api_key)
        if not isinstance(base_url, str):
            raise ConfigError("base_url must be a string, got %s" % type(base_url).__name__)
        sent_url, shown_url, url_secrets = _split_credentials(base_url.strip())
        secrets = (api_key,) + url_secrets
        if not sent_url.startswith(("http://", "https://")):
            raise ConfigError("base_url must start with http:// or https://, got %r"
                              % (redact(shown_url, secrets),))
        if isinstance(pool_maxsize, bool) or not isinstance(pool_maxsize, int) \
                or pool_maxsize <= 0:
            raise ValueError("pool_maxsize must be a positive int, got %r" % (pool_maxsize,))
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) \
                or max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be a positive int, got %r"
                             % (max_response_bytes,))
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValueError("retry must be a RetryPolicy, got %s" % type(retry).__name__)
        if not callable(clock) or not callable(sleep):
            raise ValueError("clock and sleep must be callables")
        extra = check_headers(default_headers, "default_headers") if default_headers else {}
        #: The gateway's base URL as shown in logs and errors (credentials redacted).
        self.base_url = shown_url.rstrip("/")
        self._secrets = secrets
        self.timeout = check_timeout(timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        self.limiter = limiter
        if catalog is None:
            # The catalog (its module and its JSON) loads with the first client, not at import.
            from .catalog import default_catalog
            catalog = default_catalog()
        self.catalog = catalog
        self.tracker = tracker
        #: The usage ledger every call is recorded in (``ledger=`` or ``$LLMROUTE_LEDGER``).
        self.ledger = _attach_ledger(ledger)
        self.ledger_tag = ledger_tag
        self._clock = clock
        self._url = sent_url.rstrip("/") + "/chat/completions"
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        # Guards the transport's adapter and pool_maxsize: the pool is swapped whole to grow.
        self._pool_lock = threading.Lock()
        self.pool_maxsize = pool_maxsize
        if self._owns_session:
            self._mount(pool_maxsize)
        # The environment is read once here, not on every call as Session.request does.
        proxies = requests.utils.get_environ_proxies(self._url) if self.session.trust_env \
            else {}
        proxies.update(self.session.proxies or {})
        verify = self.session.verify
        if verify is True and self.session.trust_env:
            verify = _env("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") or True
        inherited = {} if self._owns_session else {
            k: v for k, v in self.session.headers.items() if v is not None}  # None: requests drops
        headers = CaseInsensitiveDict(check_headers(inherited, "session.headers"))
        headers.update({
            "User-Agent": "llmroute/%s python-requests/%s" % (__version__, requests.__version__),
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "Content-Type": "application/json",
            "Authorization": "Bearer " + api_key,
        })
        headers.update(extra)
        self._transport = Transport(
            url=self._url, adapter=self.session.get_adapter(self._url), proxies=proxies,
            verify=verify, cert=self.session.cert, headers=dict(headers), secrets=secrets,
            timeout=self.timeout, clock=clock, sleep=sleep,
            display_url=self.base_url + "/chat/completions", direct=self._owns_session,
            max_response_bytes=max_response_bytes)

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
            self._transport.adapter = self.session.get_adapter(self._url)

    def close(self) -> None:
        """Close the pooled connections (only those of a session the client created)."""
        self._transport.run_deferred()
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Client(base_url=%r, api_key=<hidden>, retry=%r)" % (self.base_url, self.retry)

    @property
    def transport(self) -> Transport:
        """The attempt path every call of this client goes through (for llmroute's modules)."""
        return self._transport

    # Public calls -------------------------------------------------------------------------------
    def chat(self, model: str, messages: Messages, *, deadline: Optional[float] = None,
             timeout: Optional[Timeout] = None, idempotency_key: Optional[str] = None,
             extra_headers: Optional[Mapping[str, str]] = None, ledger_tag: Optional[str] = None,
             ledger_task: Optional[str] = None, ledger_routed_via: Optional[str] = None,
             **params: Any) -> ChatResult:
        """Send one chat completion and return its ``ChatResult``.

        ``params`` are OpenAI parameters sent as they are (``max_tokens``, ``temperature``,
        ``tools``…; NaN or infinity in them is a ``ValueError``). ``deadline`` bounds the whole
        call in seconds, retries, waits and the arrival of the body included. The ``ledger_*``
        options label the call's ledger row and are never sent. Raises an
        ``APIStatusError`` subclass, ``APIConnectionError``/``APITimeoutError``,
        ``InvalidResponseError``, ``RateLimitTimeout`` or ``ValueError`` for bad arguments.
        """
        if self.ledger is None:
            return self._chat(model, messages, deadline, timeout, idempotency_key,
                              extra_headers, params)
        started = self._clock()
        try:
            result = self._chat(model, messages, deadline, timeout, idempotency_key,
                                extra_headers, params)
        except LLMRouteError as err:
            if not isinstance(err, ValueError):
                self.record(model, messages, error=err, started=started, tag=ledger_tag,
                            task=ledger_task, routed_via=ledger_routed_via)
            raise
        self.record(model, messages, result=result, tag=ledger_tag, task=ledger_task,
                    routed_via=ledger_routed_via)
        return result

    def record(self, model: str, messages: Messages, *, result: Optional[ChatResult] = None,
               error: Optional[BaseException] = None, started: Optional[float] = None,
               tag: Optional[str] = None, task: Optional[str] = None,
               routed_via: Optional[str] = None) -> None:
        """Write one call's ledger row (used by streams too); never raises.

        ``started`` (this client's clock) gives a failed call its latency.
        """
        ledger = self.ledger
        if ledger is None:
            return
        latency = None if started is None else (self._clock() - started) * 1000.0
        ledger.record_call(model, result=result, error=error, latency_ms=latency,
                           attempts=len(getattr(error, "attempt_log", ()) or ()) or None,
                           task=task, routed_via=routed_via,
                           tag=tag if tag is not None else self.ledger_tag, messages=messages)

    def _chat(self, model: str, messages: Messages, deadline: Optional[float],
              timeout: Optional[Timeout], idempotency_key: Optional[str],
              extra_headers: Optional[Mapping[str, str]], params: Any) -> ChatResult:
        payload = build_payload(model, messages, params)
        exchange = self.exchange(model, messages, payload, deadline=deadline, timeout=timeout,
                                 idempotency_key=idempotency_key, extra_headers=extra_headers)
        try:
            return finish_chat(exchange, model, messages, catalog=self.catalog,
                               tracker=self.tracker, clock=self._clock, secrets=exchange.secrets)
        finally:
            if exchange.reservation is not None:
                exchange.reservation.release()

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
                            started=None if result is not None else started, tag=ledger_tag,
                            task=ledger_task, routed_via=ledger_routed_via)
        return open_stream(self, model, messages, deadline=deadline, timeout=timeout,
                           idempotency_key=idempotency_key, extra_headers=extra_headers,
                           on_end=on_end, **params)

    def exchange(self, model: str, messages: Messages, payload: Mapping[str, Any], *,
                 deadline: Optional[float] = None, timeout: Optional[Timeout] = None,
                 idempotency_key: Optional[str] = None,
                 extra_headers: Optional[Mapping[str, str]] = None, stream: bool = False
                 ) -> Any:
        """Run the attempt path for a built ``payload``; return the 2xx ``Exchange``.

        For llmroute's own modules (streams): the caller finishes the exchange and releases its
        reservation. Failures are counted with the tracker before they are raised.
        """
        limiter = self.limiter
        tokens = self._reserve_tokens(model, messages, payload) if limiter is not None else 0
        try:
            return self._transport.exchange(
                model, payload, policy=self.retry, limiter=limiter, tokens=tokens,
                deadline=deadline, timeout=timeout, idempotency_key=idempotency_key,
                extra_headers=extra_headers, stream=stream, touch_each_read=not stream)
        except LLMRouteError as err:
            if self.tracker is not None and not isinstance(err, ValueError):
                self.tracker.add_error(model)
            raise

    # Internals ----------------------------------------------------------------------------------
    def _reserve_tokens(self, model: str, messages: Messages, payload: Mapping[str, Any]) -> int:
        """Tokens to reserve against TPM: the prompt estimate plus the most the answer can use."""
        return estimate_tokens(messages) + reserved_output_tokens(self.catalog, model, payload)
