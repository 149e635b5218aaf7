"""``OpenAI``: the part of the ``openai`` SDK's client that chat code uses, on ``llmroute.Client``.

``client.chat.completions.create(model=..., messages=..., **params)`` is sent by one shared
``llmroute.Client`` (its pool, retry loop, limiter, tracker), or by a ``Router`` when
``model="auto"``. Answers are built from the server's JSON, so every field it sent survives.
Everything else of the SDK raises ``NotImplementedError`` naming itself.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ..client import DEFAULT_TIMEOUT, Client
from ..errors import ConfigError, LLMRouteError, ToolCallError
from ..retry import RetryPolicy
from .errors import translate
from .models import ChatCompletion
from .streaming import Stream, usage_dict

__all__ = ["OpenAI", "Timeout", "NOT_GIVEN", "NotGiven", "omit", "Omit",
           "DEFAULT_MAX_RETRIES", "DEFAULT_TIMEOUT", "OPENAI_BASE_URL"]

#: As openai's: two more tries after the first.
DEFAULT_MAX_RETRIES = 2
#: openai's default when neither ``base_url`` nor an environment variable names one.
OPENAI_BASE_URL = "https://api.openai.com/v1"
#: The model name that routes through a ``Router`` instead of naming a model.
AUTO_MODEL = "auto"
#: ``create`` keywords that only mean something to the router (with ``model="auto"``).
_ROUTER_OPTIONS = ("task", "priority", "max_cost_usd")
#: ``create`` keywords that steer llmroute's client, never sent in the body.
_CLIENT_OPTIONS = ("deadline", "idempotency_key")

#: Parts of the openai SDK the shim does not provide, by where they hang.
_CLIENT_UNSUPPORTED = frozenset({
    "embeddings", "responses", "with_raw_response", "with_streaming_response", "beta", "files",
    "images", "audio", "moderations", "models", "batches", "fine_tuning", "uploads",
    "vector_stores", "completions", "realtime", "containers", "evals", "webhooks",
    "conversations", "videos", "graders", "skills", "uploads", "auth_headers",
})
_CHAT_UNSUPPORTED = frozenset({"with_raw_response", "with_streaming_response"})
_COMPLETIONS_UNSUPPORTED = frozenset({
    "with_raw_response", "with_streaming_response", "parse", "stream", "retrieve", "update",
    "list", "delete", "messages",
})


#: Marks a ``Timeout`` part that was not given (``None`` means "no limit" there).
_UNSET = object()


class NotGiven:
    """openai's "argument not given" sentinel (distinct from ``None``)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


class Omit:
    """openai's "leave this parameter out" sentinel."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "omit"


class Timeout:
    """``openai.Timeout`` (httpx's): ``Timeout(10.0)``, ``Timeout(60.0, connect=2.0)``.

    llmroute uses ``connect`` and ``read``; ``write`` and ``pool`` are kept for repr only.
    """

    def __init__(self, timeout: Optional[float] = None, *, connect: Any = _UNSET,
                 read: Any = _UNSET, write: Any = _UNSET,
                 pool: Any = _UNSET) -> None:
        def part(value: Any) -> Optional[float]:
            return timeout if value is _UNSET else value

        self.connect, self.read, self.write, self.pool = (part(connect), part(read),
                                                          part(write), part(pool))

    def __repr__(self) -> str:
        return "Timeout(connect=%r, read=%r, write=%r, pool=%r)" % (
            self.connect, self.read, self.write, self.pool)


NOT_GIVEN = NotGiven()
omit = Omit()
_SENTINELS = (NotGiven, Omit)


def _not_implemented(owner: str, name: str) -> NotImplementedError:
    return NotImplementedError(
        "llmroute.compat does not implement %s.%s: only chat.completions.create is covered; "
        "use the openai SDK for it" % (owner, name))


def _env(*names: str) -> Optional[str]:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _check_max_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("max_retries must be an int >= 0, got %r" % (value,))
    return value


def _timeout(value: Any, default: Tuple[float, float], *, stacklevel: int
             ) -> Optional[Tuple[float, float]]:
    """openai's ``timeout`` as llmroute's ``(connect, read)``: a number is both; an object with
    ``connect``/``read`` (``httpx.Timeout``) gives them; ``None`` (or a ``None`` part) is the
    client's default, with a warning: llmroute never waits forever. Not given: ``None``."""
    if isinstance(value, _SENTINELS):
        return None
    if isinstance(value, bool):
        raise ValueError("timeout must be seconds, a (connect, read) pair or an httpx.Timeout, "
                         "got %r" % (value,))
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    if isinstance(value, tuple):
        return value
    if value is None or (hasattr(value, "connect") and hasattr(value, "read")):
        connect = getattr(value, "connect", None)
        read = getattr(value, "read", None)
        if connect is None or read is None:
            warnings.warn("llmroute.compat: a timeout of None is not unbounded in llmroute; "
                          "using the client's (connect, read) timeout %r seconds instead"
                          % (default,), RuntimeWarning, stacklevel=stacklevel + 1)
        return (default[0] if connect is None else float(connect),
                default[1] if read is None else float(read))
    raise ValueError("timeout must be seconds, a (connect, read) pair or an httpx.Timeout, "
                     "got %r" % (value,))


def _plain(value: Any) -> Any:
    """A message given as an SDK object (``completion.choices[0].message``) as a plain dict."""
    if isinstance(value, Mapping):
        return value
    to_dict = getattr(value, "to_dict", None) or getattr(value, "model_dump", None)
    if to_dict is None:
        raise ValueError("each message must be a dict (or an SDK message object), got %r"
                         % (type(value).__name__,))
    try:
        return to_dict(exclude_unset=True)
    except TypeError:  # our to_dict() takes no options and is already exclude_unset
        return to_dict()


class OpenAI:
    """A synchronous stand-in for ``openai.OpenAI`` backed by ``llmroute.Client``.

    Same constructor (``api_key``, ``base_url``, ``organization``, ``project``, ``timeout``,
    ``max_retries`` default 2, ``default_headers``; ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` then
    ``LLMROUTE_*``), plus llmroute's own: ``client=`` (an existing ``Client``, shared),
    ``limiter=``, ``tracker=``, ``catalog=``, ``retry=`` (a ``RetryPolicy``) and ``router=`` (for
    ``model="auto"``; made from the client on first use when not given). Raises ``ConfigError``
    (also ``ValueError`` and the shim's ``OpenAIError``) for a missing key, ``ValueError`` for
    bad options, ``NotImplementedError`` for ``http_client``/``default_query``.
    """

    def __init__(self, *, api_key: Optional[str] = None, organization: Optional[str] = None,
                 project: Optional[str] = None, base_url: Optional[str] = None,
                 timeout: Any = NOT_GIVEN, max_retries: Any = NOT_GIVEN,
                 default_headers: Optional[Mapping[str, str]] = None,
                 default_query: Optional[Mapping[str, object]] = None, http_client: Any = None,
                 client: Optional[Client] = None, limiter: Any = None, tracker: Any = None,
                 catalog: Any = None, retry: Optional[RetryPolicy] = None,
                 router: Any = None, _twin_of: Optional["OpenAI"] = None) -> None:
        if http_client is not None:
            raise _not_implemented("OpenAI(...)", "http_client: llmroute's pooled session "
                                   "sends every request")
        if default_query:
            raise _not_implemented("OpenAI(...)", "default_query")
        if client is not None:
            given = [name for name, value in (
                ("api_key", api_key), ("base_url", base_url), ("organization", organization),
                ("project", project), ("default_headers", default_headers),
                ("limiter", limiter), ("tracker", tracker), ("catalog", catalog),
                ("retry", retry)) if value is not None]
            given += [name for name, value in (("timeout", timeout), ("max_retries", max_retries))
                      if not isinstance(value, _SENTINELS)]
            if given:
                raise ValueError("OpenAI(client=...) uses that client's settings; do not also "
                                 "pass %s" % ", ".join(given))
            self._client = client
            # A with_options copy keeps the key and headers its original was built from.
            self._twin_settings: Optional[Tuple[str, Dict[str, str]]] = (
                None if _twin_of is None else _twin_of.twin_settings())
        else:
            self._client, self._twin_settings = self._new_client(
                api_key=api_key, base_url=base_url, organization=organization, project=project,
                timeout=timeout, max_retries=max_retries, default_headers=default_headers,
                limiter=limiter, tracker=tracker, catalog=catalog, retry=retry)
        self._owns_client = client is None
        self._router = router
        # Guards _router: it is made once, on the first model="auto" call, for every thread.
        self._router_lock = threading.Lock()
        self.chat = Chat(self)

    @staticmethod
    def _new_client(*, api_key: Optional[str], base_url: Optional[str], organization: Any,
                    project: Any, timeout: Any, max_retries: Any,
                    default_headers: Optional[Mapping[str, str]], limiter: Any, tracker: Any,
                    catalog: Any, retry: Optional[RetryPolicy]
                    ) -> Tuple[Client, Tuple[str, Dict[str, str]]]:
        """The client, and the (key, headers) with_options needs to make a twin of it."""
        api_key = api_key or _env("OPENAI_API_KEY", "LLMROUTE_API_KEY")
        if not api_key:
            raise translate(ConfigError(
                "The api_key client option must be set either by passing api_key to the client "
                "or by setting the OPENAI_API_KEY environment variable"))
        base_url = base_url or _env("OPENAI_BASE_URL", "LLMROUTE_BASE_URL") or OPENAI_BASE_URL
        policy = retry if retry is not None else RetryPolicy(max_retries=DEFAULT_MAX_RETRIES)
        if not isinstance(max_retries, _SENTINELS):
            policy = dataclasses.replace(policy, max_retries=_check_max_retries(max_retries))
        headers: Dict[str, str] = {}
        organization = organization or _env("OPENAI_ORG_ID")
        project = project or _env("OPENAI_PROJECT_ID")
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        headers.update(default_headers or {})
        timeout = _timeout(timeout, DEFAULT_TIMEOUT, stacklevel=3) or DEFAULT_TIMEOUT
        try:
            client = Client(str(base_url), api_key, timeout=timeout, retry=policy,
                            limiter=limiter, catalog=catalog, tracker=tracker,
                            default_headers=headers)
        except ConfigError as err:
            raise translate(err) from None
        return client, (api_key, headers)

    # What openai's client exposes -------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The ``llmroute.Client`` that sends every request."""
        return self._client

    @property
    def base_url(self) -> str:
        return self._client.base_url + "/"

    @property
    def max_retries(self) -> int:
        return self._client.retry.max_retries

    @property
    def timeout(self) -> Tuple[float, float]:
        return self._client.timeout

    @property
    def router(self) -> Any:
        """The ``Router`` behind ``model="auto"`` (made from the client on first use)."""
        with self._router_lock:
            if self._router is None:
                from ..router import Router
                self._router = Router(self._client)
            return self._router

    def with_options(self, *, max_retries: Any = NOT_GIVEN, timeout: Any = NOT_GIVEN
                     ) -> "OpenAI":
        """A copy with another ``max_retries``/``timeout`` sharing this one's connection pool,
        limiter, tracker and router (whose calls keep the router client's settings).

        Raises ``NotImplementedError`` on a shim made with ``client=`` (whose key it never saw).
        """
        if self._twin_settings is None:
            raise _not_implemented("OpenAI(client=...)", "with_options: configure that Client")
        api_key, headers = self._twin_settings
        base = self._client
        retry = base.retry
        if not isinstance(max_retries, _SENTINELS):
            retry = dataclasses.replace(retry, max_retries=_check_max_retries(max_retries))
        new_timeout = _timeout(timeout, base.timeout, stacklevel=2) or base.timeout
        twin = Client(base.base_url, api_key, timeout=new_timeout, retry=retry,
                      limiter=base.limiter, catalog=base.catalog, tracker=base.tracker,
                      default_headers=headers, session=base.session)
        return OpenAI(client=twin, router=self.router,  # one router: one health board
                      _twin_of=self)

    def twin_settings(self) -> Optional[Tuple[str, Dict[str, str]]]:
        """The (api key, headers) this shim built its client from, for ``with_options``;
        ``None`` when it was given ``client=`` (then it has no key of its own to copy)."""
        return self._twin_settings

    copy = with_options

    def close(self) -> None:
        """Close the pooled connections (of a client this shim created)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> "OpenAI":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "llmroute.compat.OpenAI(%r)" % (self._client,)

    def __getattr__(self, name: str) -> Any:
        if name in _CLIENT_UNSUPPORTED:
            raise _not_implemented("client", name)
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))


class Chat:
    """``client.chat``: only ``completions``."""

    def __init__(self, owner: OpenAI) -> None:
        self.completions = Completions(owner)

    def __getattr__(self, name: str) -> Any:
        if name in _CHAT_UNSUPPORTED:
            raise _not_implemented("client.chat", name)
        raise AttributeError("'Chat' object has no attribute %r" % (name,))


class Completions:
    """``client.chat.completions``: ``create``."""

    def __init__(self, owner: OpenAI) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        if name in _COMPLETIONS_UNSUPPORTED:
            raise _not_implemented("client.chat.completions", name)
        raise AttributeError("'Completions' object has no attribute %r" % (name,))

    def create(self, *, model: str, messages: Iterable[Any], stream: Any = NOT_GIVEN,
               stream_options: Any = NOT_GIVEN, timeout: Any = NOT_GIVEN,
               extra_headers: Optional[Mapping[str, str]] = None,
               extra_query: Optional[Mapping[str, object]] = None,
               extra_body: Optional[Mapping[str, object]] = None,
               **params: Any) -> Any:
        """A ``ChatCompletion``, or a ``Stream`` of ``ChatCompletionChunk`` with ``stream=True``.

        ``params`` are the API's (``temperature``, ``tools``, ``response_format``...) and
        llmroute's ``deadline``/``idempotency_key``; with ``model="auto"`` also the router's
        ``task``, ``priority``, ``max_cost_usd``. Raises the shim's exceptions.
        """
        if extra_query:
            raise _not_implemented("chat.completions.create(...)", "extra_query")
        response_format = params.get("response_format")
        if isinstance(response_format, type):
            raise TypeError("response_format takes a dict here; a class is for "
                            "chat.completions.parse(), which llmroute.compat does not implement")
        client = self._owner.client
        body = {k: v for k, v in params.items()
                if k not in _CLIENT_OPTIONS and not isinstance(v, _SENTINELS)}
        body.update(extra_body or {})
        options: Dict[str, Any] = {k: params[k] for k in _CLIENT_OPTIONS
                                   if params.get(k) is not None}
        attempt_timeout = _timeout(timeout, client.timeout, stacklevel=2)
        if attempt_timeout is not None:
            options["timeout"] = attempt_timeout
        if extra_headers:
            options["extra_headers"] = dict(extra_headers)
        routed = model == AUTO_MODEL
        route_options = {k: body.pop(k) for k in _ROUTER_OPTIONS if k in body}
        if route_options and not routed:
            raise ValueError("%s only apply with model=%r, got model=%r"
                             % ("/".join(sorted(route_options)), AUTO_MODEL, model))
        chat_messages = [_plain(m) for m in messages]
        try:
            if stream and not isinstance(stream, _SENTINELS):
                return self._stream(model, chat_messages, body, options, stream_options)
            if not isinstance(stream_options, _SENTINELS):
                body["stream_options"] = stream_options  # sent as openai sends it
            if not isinstance(stream, _SENTINELS):
                body["stream"] = stream  # an explicit False (or None) is sent, as openai does
            if routed:
                result = self._owner.router.complete(chat_messages, **route_options, **body,
                                                     **options)
            else:
                result = client.chat(model, chat_messages, **body, **options)
        except ToolCallError as err:
            if err.result is None:  # pragma: no cover - the client always attaches it
                raise translate(err) from err.__cause__
            result = err.result  # openai hands the arguments over as the string they are
        except LLMRouteError as err:
            raise translate(err) from err.__cause__
        return completion_of(result)

    def _stream(self, model: str, messages: List[Any], body: Dict[str, Any],
                options: Dict[str, Any], stream_options: Any) -> Stream:
        if model == AUTO_MODEL:
            raise _not_implemented("chat.completions.create(model='auto', ...)", "stream=True")
        n = body.get("n")
        if n not in (None, 1):
            raise _not_implemented("chat.completions.create(stream=True, ...)", "n > 1")
        wanted = isinstance(stream_options, Mapping) and bool(stream_options.get("include_usage"))
        # Usage is always asked for (the cost depends on it); it is shown only when asked for.
        asked = dict(stream_options) if isinstance(stream_options, Mapping) else {}
        asked["include_usage"] = True
        chat_stream = self._owner.client.stream(model, messages, stream_options=asked, **body,
                                                **options)
        return Stream(chat_stream, include_usage=wanted)


def completion_of(result: Any) -> ChatCompletion:
    """A ``ChatCompletion`` from an llmroute ``ChatResult``: its ``raw`` JSON when there is
    one, else (a gateway that answered a stream with one JSON body) rebuilt from the fields."""
    raw = result.raw
    if not raw:
        message: Dict[str, Any] = {"role": "assistant", "content": result.content}
        if result.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.raw_arguments}}
                for c in result.tool_calls]
        raw = {"id": "chatcmpl-" + (result.request_id or "llmroute"), "object": "chat.completion",
               "model": result.model, "choices": [{"index": 0, "message": message,
                                                   "finish_reason": result.finish_reason}]}
        if result.usage is not None:
            raw["usage"] = usage_dict(result.usage)
    completion = ChatCompletion.construct(raw)
    completion.llmroute = result
    return completion
