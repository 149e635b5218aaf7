"""``create(stream=True)``: an llmroute ``ChatStream`` played as openai ``ChatCompletionChunk``s.

The chunks are rebuilt from what ``ChatStream`` exposes publicly: one chunk per text delta as it
arrives, after a first ``{"role": "assistant", "content": ""}`` chunk; the tool calls, whole, once
the stream has ended; then the ``finish_reason`` chunk and, when ``stream_options`` asked for it
and the server sent it, the usage chunk (``choices == []``). What the server sent besides (the
completion id, ``logprobs``, ``system_fingerprint``) is not exposed by ``ChatStream``: the id is
made up, the rest is absent.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Dict, Iterator, List, Optional

from ..errors import LLMRouteError
from .errors import translate
from .models import ChatCompletionChunk

__all__ = ["Stream", "usage_dict"]


def usage_dict(usage: Any) -> Optional[Dict[str, Any]]:
    """An llmroute ``Usage`` as the ``usage`` object of the OpenAI API."""
    if usage is None:
        return None
    out: Dict[str, Any] = {"completion_tokens": usage.completion_tokens,
                           "prompt_tokens": usage.prompt_tokens,
                           "total_tokens": usage.total_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out


class Stream:
    """Iterate for ``ChatCompletionChunk``s; a context manager that closes the connection.

    ``llmroute`` is the underlying ``ChatStream`` (``.llmroute.result()`` has the cost).
    Errors while reading are the shim's (``APIConnectionError`` for a cut stream...).
    """

    def __init__(self, chat_stream: Any, *, include_usage: bool) -> None:
        self.llmroute = chat_stream
        self.response = None  # no httpx response behind it
        self._include_usage = include_usage
        self._id = "chatcmpl-" + (chat_stream.request_id or uuid.uuid4().hex)
        self._created = int(time.time())
        self._iterator = self._chunks()

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        try:
            return next(self._iterator)
        except LLMRouteError as err:
            raise translate(err) from err.__cause__

    def close(self) -> None:
        """Drop the connection if still open and free the rate-limiter slot."""
        self.llmroute.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Stream(%r)" % (self.llmroute,)

    def _chunk(self, model: str, choices: List[Dict[str, Any]],
               usage: Optional[Dict[str, Any]] = None) -> ChatCompletionChunk:
        data: Dict[str, Any] = {"id": self._id, "choices": choices, "created": self._created,
                                "model": model, "object": "chat.completion.chunk"}
        if usage is not None:
            data["usage"] = usage
        return ChatCompletionChunk.construct(data)

    def _chunks(self) -> Iterator[ChatCompletionChunk]:
        stream = self.llmroute
        model = stream.model
        yield self._chunk(model, [{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        for text in stream:
            yield self._chunk(model, [{"index": 0, "delta": {"content": text}}])
        result = stream.result()
        model = result.model or model
        for index, call in enumerate(result.tool_calls):
            delta = {"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                     "function": {"name": call.name,
                                                  "arguments": call.raw_arguments}}]}
            yield self._chunk(model, [{"index": 0, "delta": delta}])
        yield self._chunk(model, [{"index": 0, "delta": {},
                                   "finish_reason": result.finish_reason}])
        if self._include_usage and not result.cost_estimated and result.usage is not None:
            yield self._chunk(model, [], usage_dict(result.usage))
