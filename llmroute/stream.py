"""Streaming chat completions: server-sent events read as they arrive, over the client's pool.

``client.stream(...)`` runs the client's attempt path up to the 2xx status line, so retries
only happen before the first byte; after that each chunk is read through the same path's
``BodyReader`` (deadline and idle timeout enforced on every read, gzip/deflate decoded), and a
broken stream raises ``StreamInterruptedError`` (``StreamTimeoutError`` when it went silent or
ran past its deadline) with the text that arrived. The rate-limiter slot stays held until the
stream ends, is closed, or is dropped unfinished (a finalizer queues the cleanup; the client
runs it on its next call); its TPM charge is then settled with the reported usage, or with an
estimate of the prompt and the text when none came (a stream cut or closed early was still
generated, and billed).
"""
from __future__ import annotations

import json
import logging
import threading
import weakref
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

from ._completion import finish_chat, rate_limit_of, request_id_of, settle_usage
from ._request import build_payload
from .errors import (APIConnectionError, APITimeoutError, InvalidResponseError, LLMRouteError,
                     StreamInterruptedError, StreamTimeoutError, ToolCallError)
from .results import ChatResult, Usage, parse_gateway_cost, parse_tool_calls, parse_usage

__all__ = ["ChatStream", "open_stream", "sse_data"]

log = logging.getLogger(__name__)

#: Longest SSE line accepted; a longer one is a broken or hostile server, not a token.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: What ``stream_options`` asks by default: a last event with the usage, so the cost is known.
DEFAULT_STREAM_OPTIONS = {"include_usage": True}

_OPEN, _DONE, _CLOSED, _FAILED = "open", "done", "closed", "failed"


#: Streams ask for server-sent events; the caller's extra_headers may override it.
_SSE_HEADERS = {"Accept": "text/event-stream"}


def sse_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """The ``data`` of each server-sent event in a byte stream, as text.

    Lines may end in ``\\n``, ``\\r\\n`` or ``\\r`` and split anywhere between chunks;
    several ``data:`` lines of one event are joined by newlines; comments (``:``) and the
    other fields (``event``, ``id``, ``retry``) are skipped. An event cut off by the end of the
    stream is dropped (the SSE rule), except a bare ``[DONE]``. Raises ``ValueError`` for a
    line longer than ``MAX_LINE_BYTES``.
    """
    pending = bytearray()
    data: List[str] = []
    for chunk in chunks:
        pending += chunk
        lines = pending.splitlines(keepends=True)
        # The last line is incomplete without its end; a lone "\r" may be half of "\r\n".
        tail = lines.pop() if lines and (not lines[-1].endswith((b"\n", b"\r"))
                                         or lines[-1].endswith(b"\r")) else b""
        if len(tail) > MAX_LINE_BYTES:
            raise ValueError("an SSE line is longer than %d bytes" % MAX_LINE_BYTES)
        pending = bytearray(tail)
        for line in lines:
            event = _line(line.rstrip(b"\r\n").decode("utf-8", "replace"), data)
            if event is not None:
                yield event
    if pending:  # the last line, complete if it ends in "\r" (the next byte might have been "\n")
        event = _line(bytes(pending).rstrip(b"\r\n").decode("utf-8", "replace"), data)
        if event is not None:
            yield event
    if data == ["[DONE]"]:
        yield "[DONE]"


def _line(line: str, data: List[str]) -> Optional[str]:
    """Feed one line; return the event's data when the line ends an event."""
    if not line:
        if not data:
            return None
        event = "\n".join(data)
        data.clear()
        return event
    if line.startswith(":"):
        return None
    name, _, value = line.partition(":")
    if name == "data":
        data.append(value[1:] if value.startswith(" ") else value)
    return None


def _chunks(reader: Any) -> Iterator[bytes]:
    """The body's decoded bytes as they arrive; ends at EOF; raises llmroute errors only."""
    while True:
        block = reader.read()
        if not block:
            return
        yield block


class _Ledger:
    """What an open stream owes: its limiter slot and tokens, and its record with the tracker.

    Kept apart from ``ChatStream`` so that a finalizer can hand it to the client's deferred
    queue without keeping the stream alive; it settles exactly once (``end_once``).
    """

    def __init__(self, client: Any, model: str, messages: Sequence[Mapping[str, Any]],
                 exchange: Any) -> None:
        self.model = model
        self.messages = messages
        self.catalog = client.catalog
        self.tracker = client.tracker
        self.reservation = exchange.reservation
        self.reader = exchange.reader
        self.pieces: List[str] = []
        self.tools: Dict[int, Dict[str, Any]] = {}
        self.usage: Optional[Usage] = None
        self.state = _OPEN
        # Guards state, so that the end (settle, release, tracker) is done exactly once.
        self.lock = threading.Lock()
        #: Called once at the end with (result, None) or (None, error): the usage ledger's row.
        self.on_end: Optional[Callable[[Optional[ChatResult], Optional[BaseException]],
                                       None]] = None

    def ended(self, result: Optional[ChatResult], error: Optional[BaseException]) -> None:
        if self.on_end is not None:
            self.on_end(result, error)

    def end_once(self, state: str) -> bool:
        with self.lock:
            if self.state != _OPEN:
                return False
            self.state = state
            return True

    def tool_items(self) -> List[Dict[str, Any]]:
        return [{"id": part["id"], "type": "function",
                 "function": {"name": part["name"], "arguments": "".join(part["arguments"])}}
                for _, part in sorted(self.tools.items())]

    def settle(self, *, finished: bool, failed: bool) -> Any:
        """Square the limiter and the tracker; ``(usage, cost, estimated, tool items)``."""
        items = self.tool_items()
        try:
            usage, cost, estimated = settle_usage(
                model=self.model, messages=self.messages,
                usage=self.usage if finished else None, answer="".join(self.pieces),
                tool_texts=[t for i in items for t in (i["function"]["name"],
                                                       i["function"]["arguments"])],
                reservation=self.reservation, catalog=self.catalog, tracker=self.tracker,
                failed=failed)
        finally:
            if self.reservation is not None:
                self.reservation.release()
        return usage, cost, estimated, items

    def abandon(self) -> None:
        """The stream was dropped unfinished: drop the connection, settle what it was billed."""
        if self.end_once(_CLOSED):
            self.reader.close()
            log.debug("model=%s stream dropped unfinished after %d deltas; slot given back",
                      self.model, len(self.pieces))
            usage, cost, estimated, _ = self.settle(finished=False, failed=False)
            self.ended(ChatResult(content=None, model=self.model, finish_reason=None,
                                  usage=usage, cost_usd=cost, latency_ms=0.0,
                                  cost_estimated=estimated), None)


class ChatStream:
    """An open streamed completion: iterate it for text deltas, then call ``result()``.

    A context manager: leaving the ``with`` (or ``close()``) before the end drops the
    connection and frees the rate-limiter slot; a stream dropped unfinished does the same once
    it is collected (at the client's next call). ``text`` is the text so far; tool-call deltas
    are assembled into ``result().tool_calls``. A stream belongs to the thread that reads it.
    Raises, while iterating, ``StreamInterruptedError`` (cut, EOF without ``[DONE]``, an error
    event), ``StreamTimeoutError`` (no event for the read timeout, the deadline passing),
    ``InvalidResponseError`` (an event that is not JSON) or ``ToolCallError`` (assembled
    arguments that are not JSON).
    """

    def __init__(self, client: Any, model: str, messages: Sequence[Mapping[str, Any]],
                 exchange: Any, *, on_end: Any = None) -> None:
        self.model = model
        transport = client.transport
        self._clock = transport.clock
        self._redact = transport.redact
        self._exchange = exchange
        self._reader = exchange.reader
        self._ledger = ledger = _Ledger(client, model, messages, exchange)
        ledger.on_end = on_end
        self._pieces = ledger.pieces
        self._attempts = exchange.attempts
        self._started = exchange.started
        self._end = exchange.end
        headers = exchange.lowered_headers
        self.request_id: Optional[str] = request_id_of(headers)
        self._rate_limit = rate_limit_of(exchange)
        self._gateway_cost = parse_gateway_cost(headers)
        self._finish_reason: Optional[str] = None
        self._served_model: Optional[str] = None
        #: Milliseconds from the request to the first text or tool-call delta.
        self.first_token_ms: Optional[float] = None
        self._result: Optional[ChatResult] = None
        self._error: Optional[BaseException] = None
        self._whole: Optional[List[str]] = None
        # Dropped unfinished: the cleanup is queued lock-free (a finalizer may run while this
        # thread holds any lock), and the client runs it at its next call or close.
        self._finalizer = weakref.finalize(self, transport.defer, ledger.abandon)
        self._finalizer.atexit = False
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/json"):
            # A gateway that ignored stream=True: one JSON body, played as a single delta.
            self._whole = self._play_whole(client, messages)
            self._events: Iterator[str] = iter(())
        else:
            self._events = sse_data(_chunks(self._reader))

    # Public ----------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._pieces)

    @property
    def _state(self) -> str:
        return self._ledger.state

    def __iter__(self) -> "ChatStream":
        return self

    def __next__(self) -> str:
        if self._whole is not None:
            if self._whole:
                return self._whole.pop()
            raise StopIteration
        while True:
            if self._state != _OPEN:
                if self._error is not None and self._state == _DONE:
                    raise self._error
                raise StopIteration
            if self._end is not None and self._clock() >= self._end:
                self._fail("stream for model %s passed its deadline" % (self.model,),
                           timed_out=True)
            failure = None
            try:
                data = next(self._events)
            except StopIteration:
                failure = ("stream for model %s ended without [DONE]" % (self.model,), False)
            except ValueError as err:
                failure = ("stream for model %s is not valid SSE: %s" % (self.model, err), False)
            except APIConnectionError as err:
                failure = ("stream for model %s broke: %s" % (self.model, err),
                           isinstance(err, APITimeoutError))
            if failure is not None:
                self._fail(failure[0], timed_out=failure[1])
            self._reader.touch()
            if data == "[DONE]":
                self._complete()
                continue
            text = self._apply(data)
            if text:
                self._pieces.append(text)
                return text

    def result(self) -> ChatResult:
        """The assembled ``ChatResult``; reads the rest of the stream first if it is still open.

        After ``close()`` before the end it is the partial answer: ``finish_reason`` is ``None``
        and the usage is estimated. Re-raises the error that ended the stream, if one did.
        """
        if self._state == _OPEN:
            for _ in self:
                pass
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def close(self) -> None:
        """Drop the connection if the stream is still open, and free the limiter slot."""
        if self._ledger.end_once(_CLOSED):
            self._finalizer.detach()
            self._reader.close()
            log.debug("model=%s stream closed by the caller after %d deltas", self.model,
                      len(self._pieces))
            self._result = self._build(finished=False, failed=False)
            self._ledger.ended(self._result, None)

    def __enter__(self) -> "ChatStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "ChatStream(model=%r, state=%s, chars=%d)" % (self.model, self._state,
                                                             sum(map(len, self._pieces)))

    # Events ------------------------------------------------------------------------------------
    def _apply(self, data: str) -> str:
        """Fold one ``chat.completion.chunk`` into the state; return its text delta."""
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            chunk = _NOT_JSON
        if chunk is _NOT_JSON:
            excerpt = self._redact(data[:200])
            self._fail_with(InvalidResponseError(
                "stream for model %s sent an event that is not JSON: %r" % (self.model, excerpt),
                request_id=self.request_id, body=excerpt,
                attempt_log=self._exchange.attempt_log))
        if not isinstance(chunk, dict):
            return ""
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            self._fail("stream for model %s sent an error: %s"
                       % (self.model, self._redact(str(message)[:200])))
        if chunk.get("usage"):
            usage = parse_usage(chunk["usage"])
            if usage is not None:
                self._ledger.usage = usage
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self._served_model = chunk["model"]
        choice = _first_choice(chunk.get("choices"))
        if choice is None:
            return ""
        if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
            self._finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return ""
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            self._add_tool_delta(call)
        text = delta.get("content")
        if isinstance(text, list):  # content parts, as the OpenAI format allows
            text = "".join(p["text"] for p in text
                           if isinstance(p, dict) and isinstance(p.get("text"), str))
        if isinstance(text, str) and text and self.first_token_ms is None:
            self.first_token_ms = (self._clock() - self._started) * 1000.0
        return text if isinstance(text, str) else ""

    def _add_tool_delta(self, call: Any) -> None:
        if not isinstance(call, dict):
            return
        index = call.get("index", 0)
        index = index if isinstance(index, int) and not isinstance(index, bool) else 0
        part = self._ledger.tools.setdefault(index, {"id": "", "name": "", "arguments": []})
        if self.first_token_ms is None:
            self.first_token_ms = (self._clock() - self._started) * 1000.0
        if call.get("id") and not part["id"]:
            part["id"] = str(call["id"])
        function = call.get("function")
        if not isinstance(function, dict):
            return
        # Names and arguments arrive in pieces that concatenate, as openai-python assembles them.
        if isinstance(function.get("name"), str):
            part["name"] += function["name"]
        if isinstance(function.get("arguments"), str):
            part["arguments"].append(function["arguments"])

    # Endings -----------------------------------------------------------------------------------
    def _complete(self) -> None:
        if not self._ledger.end_once(_DONE):
            return
        self._finalizer.detach()
        latency_ms = (self._clock() - self._started) * 1000.0
        # Finished at [DONE]: the connection goes back to the pool if the body's end is already
        # here, else it is dropped rather than waiting for the server (some never close).
        self._reader.finish_if_buffered()
        try:
            self._result = self._build(finished=True, failed=False, latency_ms=latency_ms)
        except ToolCallError as err:  # assembled arguments that are not JSON: kept for result()
            self._error = err
            self._ledger.ended(None, err)
            raise
        self._ledger.ended(self._result, None)

    def _fail(self, message: str, *, timed_out: bool = False) -> None:
        cls = StreamTimeoutError if timed_out else StreamInterruptedError
        self._fail_with(cls(message, partial_text=self.text,
                            attempt_log=self._exchange.attempt_log))

    def _fail_with(self, error: Exception) -> None:
        if self._ledger.end_once(_FAILED):
            self._finalizer.detach()
            self._reader.close()
            self._build(finished=False, failed=True)
            self._error = error
            self._ledger.ended(None, error)
            log.warning("%s (after %d chars)", error, sum(map(len, self._pieces)))
        elif self._state == _CLOSED:
            raise StopIteration  # closed meanwhile (from a callback): nothing more to read
        raise error

    def _build(self, *, finished: bool, failed: bool,
               latency_ms: Optional[float] = None) -> ChatResult:
        """Settle (see ``_Ledger.settle``) and build the result."""
        if latency_ms is None:
            latency_ms = (self._clock() - self._started) * 1000.0
        usage, cost, estimated, items = self._ledger.settle(finished=finished, failed=failed)
        text = self.text
        tool_calls = parse_tool_calls(items) if finished else ()
        return ChatResult(
            content=text if text or not tool_calls else None,
            model=self._served_model or self.model,
            finish_reason=self._finish_reason if finished else None, usage=usage,
            cost_usd=cost, latency_ms=latency_ms, attempts=self._attempts,
            request_id=self.request_id, tool_calls=tool_calls, rate_limit=self._rate_limit,
            cost_estimated=estimated, attempt_log=self._exchange.attempt_log,
            gateway_cost_usd=self._gateway_cost)

    def _play_whole(self, client: Any, messages: Sequence[Mapping[str, Any]]) -> List[str]:
        exchange = self._exchange
        self._finalizer.detach()
        self._ledger.state = _DONE
        try:
            exchange.body = self._reader.read_all()
            self._result = finish_chat(exchange, self.model, messages, catalog=client.catalog,
                                       tracker=client.tracker, clock=self._clock,
                                       secrets=client.transport.secrets)
        except APIConnectionError as err:
            self._ledger.state = _FAILED
            self._error = err
            if exchange.reservation is not None:
                exchange.reservation.refund()
            if client.tracker is not None:
                client.tracker.add_error(self.model)
            self._ledger.ended(None, err)
            raise
        except Exception as err:  # InvalidResponseError, ToolCallError: kept for result()
            self._ledger.state = _FAILED
            self._error = err
            self._ledger.ended(None, err)
            raise
        finally:
            if exchange.reservation is not None:
                exchange.reservation.release()
        self._ledger.ended(self._result, None)
        self._finish_reason = self._result.finish_reason
        content = self._result.content or ""
        if content:
            self._pieces.append(content)
        return [content] if content else []


_NOT_JSON = object()


def _first_choice(choices: Any) -> Optional[Dict[str, Any]]:
    """The delta of choice 0 in a chunk; with ``n`` > 1 the other choices' deltas are skipped
    (each chunk names its choice by ``index``), as ``chat`` returns choice 0 too."""
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) in (0, None):
            return choice
    return None


def open_stream(client: Any, model: str, messages: Sequence[Mapping[str, Any]], *,
                deadline: Optional[float] = None, timeout: Any = None,
                idempotency_key: Optional[str] = None,
                extra_headers: Optional[Mapping[str, str]] = None,
                on_end: Any = None, **params: Any) -> ChatStream:
    """Send a streamed completion and return the open ``ChatStream`` (what ``client.stream`` does).

    ``stream_options`` is merged over ``{"include_usage": True}`` (``None`` sends none, for a
    gateway that refuses the option). Raises what ``client.chat`` raises before the first byte.
    """
    params = dict(params, stream=True)
    options = params.pop("stream_options", DEFAULT_STREAM_OPTIONS)
    if options is not None:
        if not isinstance(options, Mapping):
            raise ValueError("stream_options must be a dict or None, got %r" % (options,))
        params["stream_options"] = dict(DEFAULT_STREAM_OPTIONS, **options)
    payload = build_payload(model, messages, params)
    if extra_headers is not None and not isinstance(extra_headers, Mapping):
        raise ValueError("extra_headers must be a dict of header names to strings")
    headers = dict(_SSE_HEADERS, **(extra_headers or {}))
    try:
        exchange = client.exchange(model, messages, payload, deadline=deadline,
                                   timeout=timeout, idempotency_key=idempotency_key,
                                   extra_headers=headers, stream=True)
    except LLMRouteError as err:
        if on_end is not None and not isinstance(err, ValueError):
            on_end(None, err)  # failed before the first byte: still a call for the ledger
        raise
    try:
        return ChatStream(client, model, messages, exchange, on_end=on_end)
    except (InvalidResponseError, ToolCallError, APIConnectionError):
        raise
    except BaseException:
        exchange.reader.close()
        if exchange.reservation is not None:
            exchange.reservation.release()
        raise
