"""Streaming chat completions: server-sent events read as they arrive, over the client's pool.

``client.stream(...)`` runs the client's retry loop up to the 2xx status line, so retries only
happen before the first byte; after that a broken stream raises ``StreamInterruptedError`` with
the text that arrived. The rate-limiter slot stays held until the stream ends or is closed;
its TPM charge is then settled with the reported usage, or with an estimate of the prompt and
the text when none came (a stream cut or closed early was still generated, and billed).
"""
from __future__ import annotations

import http.client
import json
import logging
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

import requests
import urllib3

from ._headers import parse_rate_limit_headers
from .errors import InvalidResponseError, StreamInterruptedError, ToolCallError, redact
from .results import ChatResult, Usage, parse_tool_calls, parse_usage
from .tokens import estimate_tokens

__all__ = ["ChatStream", "open_stream", "sse_data"]

log = logging.getLogger(__name__)

#: Bytes asked of the socket per read; a read returns as soon as any data is there.
READ_BYTES = 8192
#: Longest SSE line accepted; a longer one is a broken or hostile server, not a token.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: What ``stream_options`` asks by default: a last event with the usage, so the cost is known.
DEFAULT_STREAM_OPTIONS = {"include_usage": True}

# What a read can raise once the status line is in: the stream broke under us.
_BROKEN = (requests.RequestException, urllib3.exceptions.HTTPError,
           http.client.HTTPException, OSError)
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


def _read(response: requests.Response) -> Iterator[bytes]:
    """The body's bytes as they arrive (``read1`` returns whatever the socket has)."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 1.26: chunked bodies still stream chunk by chunk
        yield from response.iter_content(READ_BYTES)
        return
    while True:
        block = read1(READ_BYTES)
        if not block:
            return
        yield block


class ChatStream:
    """An open streamed completion: iterate it for text deltas, then call ``result()``.

    A context manager: leaving the ``with`` (or ``close()``) before the end drops the
    connection and frees the rate-limiter slot. ``text`` is the text so far; tool-call deltas
    are assembled into ``result().tool_calls``. A stream belongs to the thread that reads it.
    Raises, while iterating, ``StreamInterruptedError`` (cut, EOF without ``[DONE]``,
    an error event, the deadline passing), ``InvalidResponseError`` (an event that is not JSON)
    or ``ToolCallError`` (assembled arguments that are not JSON). Always iterate to the end or
    close it: an abandoned stream holds its connection and limiter slot.
    """

    def __init__(self, client: Any, model: str, messages: Sequence[Mapping[str, Any]],
                 exchange: Any, *, deadline: Optional[float] = None,
                 on_end: Optional[Callable[[Optional[ChatResult], Optional[BaseException]],
                                           None]] = None) -> None:
        self.model = model
        self._on_end = on_end  # called once with (result, None) or (None, error): the ledger
        self._client = client
        self._messages = messages
        self._response = exchange.response
        self._reservation = exchange.reservation
        self._attempts = exchange.attempts
        self._started = exchange.started
        headers = self._response.headers
        self.request_id: Optional[str] = headers.get("x-request-id") or headers.get("request-id")
        self._rate_limit = parse_rate_limit_headers(headers)
        deadline = deadline if deadline is not None else client.retry.deadline
        self._end = self._started + deadline if deadline is not None else None
        self._pieces: List[str] = []
        self._tools: Dict[int, Dict[str, Any]] = {}
        self._finish_reason: Optional[str] = None
        self._usage: Optional[Usage] = None
        self._served_model: Optional[str] = None
        #: Milliseconds from the request to the first text or tool-call delta.
        self.first_token_ms: Optional[float] = None
        self._result: Optional[ChatResult] = None
        self._error: Optional[BaseException] = None
        # Guards _state, so that the end (settle, release, tracker) is done exactly once.
        self._lock = threading.Lock()
        self._state = _OPEN
        self._whole: Optional[List[str]] = None
        content_type = headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            # A gateway that ignored stream=True: one JSON body, played as a single delta.
            self._whole = self._play_whole(exchange)
            self._events: Iterator[str] = iter(())
        else:
            self._events = sse_data(_read(self._response))

    # Public ----------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._pieces)

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
            if self._end is not None and self._client._clock() >= self._end:
                self._fail("stream for model %s passed its deadline" % (self.model,))
            try:
                data = next(self._events)
            except StopIteration:
                self._fail("stream for model %s ended without [DONE]" % (self.model,))
            except ValueError as err:
                self._fail("stream for model %s is not valid SSE: %s" % (self.model, err))
            except _BROKEN as err:
                self._fail("stream for model %s broke: %s" % (self.model, err), err)
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
        if self._end_once(_CLOSED):
            self._response.close()
            log.debug("model=%s stream closed by the caller after %d deltas", self.model,
                      len(self._pieces))
            self._result = self._settle(finished=False, failed=False)
            self._ended(self._result, None)

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
        except ValueError:
            excerpt = redact(data[:200], self._client._secrets)
            self._fail_with(InvalidResponseError(
                "stream for model %s sent an event that is not JSON: %r" % (self.model, excerpt),
                request_id=self.request_id, body=excerpt))
        if not isinstance(chunk, dict):
            return ""
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            self._fail("stream for model %s sent an error: %s"
                       % (self.model, redact(str(message)[:200], self._client._secrets)))
        if chunk.get("usage"):
            self._usage = parse_usage(chunk["usage"])
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self._served_model = chunk["model"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return ""
        choice = choices[0]
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
        delta = choice.get("delta") or {}
        for call in delta.get("tool_calls") or ():
            self._add_tool_delta(call)
        text = delta.get("content")
        if isinstance(text, str) and text and self.first_token_ms is None:
            self.first_token_ms = (self._client._clock() - self._started) * 1000.0
        return text if isinstance(text, str) else ""

    def _add_tool_delta(self, call: Any) -> None:
        if not isinstance(call, dict):
            return
        index = call.get("index", 0)
        part = self._tools.setdefault(index if isinstance(index, int) else 0,
                                      {"id": "", "name": "", "arguments": []})
        if self.first_token_ms is None:
            self.first_token_ms = (self._client._clock() - self._started) * 1000.0
        if call.get("id") and not part["id"]:
            part["id"] = str(call["id"])
        function = call.get("function") or {}
        # Names and arguments arrive in pieces that concatenate, as openai-python assembles them.
        if isinstance(function.get("name"), str):
            part["name"] += function["name"]
        if isinstance(function.get("arguments"), str):
            part["arguments"].append(function["arguments"])

    # Endings -----------------------------------------------------------------------------------
    def _end_once(self, state: str) -> bool:
        with self._lock:
            if self._state != _OPEN:
                return False
            self._state = state
            return True

    def _complete(self) -> None:
        if not self._end_once(_DONE):
            return
        latency_ms = (self._client._clock() - self._started) * 1000.0
        try:
            # The terminating chunk follows [DONE]: reading it returns the connection to the pool.
            for _ in self._events:
                break
        except (ValueError,) + _BROKEN:
            pass
        self._response.close()
        try:
            self._result = self._settle(finished=True, failed=False, latency_ms=latency_ms)
        except ToolCallError as err:  # assembled arguments that are not JSON: kept for result()
            self._error = err
            self._ended(None, err)
            raise
        self._ended(self._result, None)

    def _fail(self, message: str, cause: Optional[BaseException] = None) -> None:
        self._fail_with(StreamInterruptedError(message, partial_text=self.text), cause)

    def _fail_with(self, error: Exception, cause: Optional[BaseException] = None) -> None:
        if self._end_once(_FAILED):
            self._response.close()
            self._settle(finished=False, failed=True)
            self._error = error
            self._ended(None, error)
            log.warning("%s (after %d chars)", error, sum(map(len, self._pieces)))
        elif self._state == _CLOSED:
            raise StopIteration  # closed meanwhile (from a callback): nothing more to read
        raise error from cause

    def _ended(self, result: Optional[ChatResult], error: Optional[BaseException]) -> None:
        if self._on_end is not None:
            self._on_end(result, error)

    def _settle(self, *, finished: bool, failed: bool,
                latency_ms: Optional[float] = None) -> ChatResult:
        """Square the limiter and the tracker with the usage, reported or estimated; build."""
        client = self._client
        if latency_ms is None:
            latency_ms = (client._clock() - self._started) * 1000.0
        text = self.text
        items = [{"id": part["id"], "type": "function",
                  "function": {"name": part["name"], "arguments": "".join(part["arguments"])}}
                 for _, part in sorted(self._tools.items())]
        usage = self._usage if finished else None
        estimated = usage is None
        if usage is None:
            prompt = estimate_tokens(self._messages)
            completion = estimate_tokens(text) + sum(
                estimate_tokens(i["function"]["name"]) + estimate_tokens(
                    i["function"]["arguments"]) for i in items)
            usage = Usage(prompt, completion, prompt + completion)
        reservation = self._reservation
        if reservation is not None:
            try:
                reservation.settle(usage.total_tokens)
            finally:
                reservation.release()
        cost = client.catalog.spec(self.model).cost(usage.prompt_tokens, usage.completion_tokens,
                                                    usage.cached_tokens or 0)
        if client.tracker is not None:
            if failed:
                client.tracker.add_error(self.model)
            else:
                client.tracker.add(self.model, prompt_tokens=usage.prompt_tokens,
                                   completion_tokens=usage.completion_tokens, cost_usd=cost)
        tool_calls = parse_tool_calls(items) if finished else ()
        return ChatResult(
            content=text if text or not tool_calls else None,
            model=self._served_model or self.model,
            finish_reason=self._finish_reason if finished else None, usage=usage,
            cost_usd=cost, latency_ms=latency_ms, attempts=self._attempts,
            request_id=self.request_id, tool_calls=tool_calls, rate_limit=self._rate_limit,
            cost_estimated=estimated)

    def _play_whole(self, exchange: Any) -> List[str]:
        try:
            self._result = self._client._finish(self.model, exchange)
        except Exception as err:
            self._error = err
            self._state = _FAILED
            self._ended(None, err)
            raise
        finally:
            if self._reservation is not None:
                self._reservation.release()
        self._state = _DONE
        self._ended(self._result, None)
        self._finish_reason = self._result.finish_reason
        content = self._result.content or ""
        if content:
            self._pieces.append(content)
        return [content] if content else []



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
    payload = client._payload(model, messages, params)
    headers = dict(_SSE_HEADERS, **(extra_headers or {}))
    try:
        exchange = client._send(model, payload, messages, deadline=deadline, timeout=timeout,
                                idempotency_key=idempotency_key, extra_headers=headers,
                                stream=True)
    except Exception as err:
        if client.tracker is not None:
            client.tracker.add_error(model)
        if on_end is not None and not isinstance(err, ValueError):
            on_end(None, err)
        raise
    try:
        return ChatStream(client, model, messages, exchange, deadline=deadline, on_end=on_end)
    except BaseException:
        exchange.response.close()
        if exchange.reservation is not None:
            exchange.reservation.release()
        raise
