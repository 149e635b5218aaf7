"""Response objects with the attribute paths of the ``openai`` SDK's, built from the server's JSON.

Each class declares openai's field names; a field the server did not send reads as ``None`` and a
field openai does not declare (``system_fingerprint`` on an old SDK, a gateway's extras) is kept
as it came. ``model_dump`` follows pydantic's rules as openai uses them: declared fields first,
then extras; ``exclude_none`` drops ``None`` attributes of every object but leaves plain dict
values alone; ``exclude_unset`` (and ``to_dict``) gives back what the server sent.
"""
from __future__ import annotations

import json
from typing import Any, ClassVar, Dict, Iterator, Mapping, Optional, Tuple, Type, Union

__all__ = [
    "BaseModel", "ChatCompletion", "Choice", "ChatCompletionMessage",
    "ChatCompletionMessageToolCall", "ChatCompletionMessageCustomToolCall", "Function",
    "FunctionCall", "CompletionUsage", "CompletionTokensDetails", "PromptTokensDetails",
    "ChatCompletionChunk", "ChunkChoice", "ChoiceDelta", "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
]

# A field's type: None (kept as sent), a model class, or a 1-tuple (cls,) for a list of them.
FieldType = Union[None, Type["BaseModel"], Tuple[Any, ...]]


class BaseModel:
    """An openai-shaped object: attributes for the declared fields, extras kept, dumps as JSON.

    Read-only by convention, like the SDK's: build one with ``construct(data)``.
    """

    #: Declared field names in openai's order, each with its type (see ``FieldType``).
    fields: ClassVar[Dict[str, FieldType]] = {}

    def __init__(self, **data: Any) -> None:
        # The server's fields, built into models where declared; read through __getattr__, so a
        # field named like a method ("to_dict") is still dumped and cannot break the object.
        self._values = {name: _build(self.fields.get(name), value) for name, value in data.items()}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_values":
            raise AttributeError(name)
        values = self._values
        if name in values:
            return values[name]
        if name in self.fields:
            return None
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))

    @classmethod
    def construct(cls, data: Mapping[str, Any]) -> "BaseModel":
        """Build from a JSON object without validating it (as openai does with responses)."""
        return cls(**{str(k): v for k, v in data.items()})

    # Dumps -------------------------------------------------------------------------------------
    def model_dump(self, *, exclude_none: bool = False, exclude_unset: bool = False,
                   **unsupported: Any) -> Dict[str, Any]:
        """A plain dict: declared fields, then extras. Raises ``NotImplementedError`` for
        pydantic options the shim does not have (``include``, ``by_alias``, ``mode``...)."""
        if unsupported:
            names = ", ".join(sorted(unsupported))
            raise NotImplementedError("llmroute.compat model_dump() does not support: %s" % names)
        values = self._values
        out: Dict[str, Any] = {}
        for name in (values if exclude_unset else self._names()):
            value = values.get(name)
            if value is None and exclude_none:
                continue
            out[name] = _dump(value, exclude_none, exclude_unset)
        return out

    def model_dump_json(self, *, indent: Optional[int] = None, exclude_none: bool = False,
                        exclude_unset: bool = False) -> str:
        """``model_dump`` as a JSON string."""
        return json.dumps(self.model_dump(exclude_none=exclude_none, exclude_unset=exclude_unset),
                          indent=indent, ensure_ascii=False)

    def to_dict(self) -> Dict[str, Any]:
        """What the server sent, as openai's ``to_dict()`` (``exclude_unset``)."""
        return self.model_dump(exclude_unset=True)

    def to_json(self, *, indent: Optional[int] = 2) -> str:
        """``to_dict()`` as JSON, as openai's ``to_json()``."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @property
    def model_fields_set(self) -> set:
        """The fields the server sent."""
        return set(self._values)

    def _names(self) -> Iterator[str]:
        """Declared fields in order, then the extras the server sent."""
        yield from self.fields
        yield from (name for name in self._values if name not in self.fields)

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        for name in self._names():
            yield name, self._values.get(name)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.model_dump() == other.model_dump()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable-looking values, as pydantic's

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (k, v) for k, v in self))


def _build(kind: FieldType, value: Any) -> Any:
    if kind is None or value is None:
        return value
    if isinstance(kind, tuple):
        if not isinstance(value, list):
            return value
        return [_build(kind[0], item) for item in value]
    if isinstance(value, Mapping):
        return kind.pick(value).construct(value)
    return value


def _dump(value: Any, exclude_none: bool, exclude_unset: bool) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=exclude_none, exclude_unset=exclude_unset)
    if isinstance(value, list):
        return [_dump(item, exclude_none, exclude_unset) for item in value]
    return value


class _Model(BaseModel):
    """A model that is always itself (no union of shapes to pick from)."""

    @classmethod
    def pick(cls, data: Mapping[str, Any]) -> Type[BaseModel]:
        return cls


# Shared pieces ---------------------------------------------------------------------------------
class Function(_Model):
    """The function a tool call names, with its ``arguments`` as the JSON string received."""

    fields = {"arguments": None, "name": None}


class FunctionCall(_Model):
    """The deprecated single ``function_call`` of a message."""

    fields = {"arguments": None, "name": None}


class _Custom(_Model):
    fields = {"input": None, "name": None}


class ChatCompletionMessageToolCall(_Model):
    """One function tool call: ``.function.name`` and ``.function.arguments``.

    ``pick`` turns a ``{"type": "custom"}`` call into a ``ChatCompletionMessageCustomToolCall``.
    """

    fields = {"id": None, "function": Function, "type": None}

    @classmethod
    def pick(cls, data: Mapping[str, Any]) -> Type[BaseModel]:
        return ChatCompletionMessageCustomToolCall if data.get("type") == "custom" else cls


class ChatCompletionMessageCustomToolCall(_Model):
    """A custom tool call: ``.custom.name`` and ``.custom.input``."""

    fields = {"id": None, "custom": _Custom, "type": None}


class _TopLogprob(_Model):
    fields = {"token": None, "bytes": None, "logprob": None}


class _TokenLogprob(_Model):
    fields = {"token": None, "bytes": None, "logprob": None, "top_logprobs": (_TopLogprob,)}


class _ChoiceLogprobs(_Model):
    fields = {"content": (_TokenLogprob,), "refusal": (_TokenLogprob,)}


class _URLCitation(_Model):
    fields = {"end_index": None, "start_index": None, "title": None, "url": None}


class _Annotation(_Model):
    fields = {"type": None, "url_citation": _URLCitation}


class _Audio(_Model):
    fields = {"id": None, "data": None, "expires_at": None, "transcript": None}


class CompletionTokensDetails(_Model):
    """Breakdown of the completion tokens (``reasoning_tokens``...)."""

    fields = {"accepted_prediction_tokens": None, "audio_tokens": None, "reasoning_tokens": None,
              "rejected_prediction_tokens": None, "text_tokens": None}


class PromptTokensDetails(_Model):
    """Breakdown of the prompt tokens (``cached_tokens``...)."""

    fields = {"audio_tokens": None, "cache_write_tokens": None, "cached_tokens": None,
              "image_tokens": None, "text_tokens": None}


class CompletionUsage(_Model):
    """``prompt_tokens``, ``completion_tokens``, ``total_tokens`` and their details."""

    fields = {"completion_tokens": None, "prompt_tokens": None, "total_tokens": None,
              "completion_tokens_details": CompletionTokensDetails,
              "prompt_tokens_details": PromptTokensDetails}


# A whole completion ----------------------------------------------------------------------------
class ChatCompletionMessage(_Model):
    """The assistant's message: ``content``, ``tool_calls``, ``refusal``..."""

    fields = {"content": None, "refusal": None, "role": None, "annotations": (_Annotation,),
              "audio": _Audio, "function_call": FunctionCall,
              "tool_calls": (ChatCompletionMessageToolCall,)}


class Choice(_Model):
    """One choice of a completion: ``message`` and ``finish_reason``."""

    fields = {"finish_reason": None, "index": None, "logprobs": _ChoiceLogprobs,
              "message": ChatCompletionMessage}


class ChatCompletion(_Model):
    """``client.chat.completions.create(...)``'s answer. ``.llmroute`` is llmroute's result
    (``ChatResult`` or ``RouteResult``: cost, attempts, latency, routing), not part of dumps."""

    fields = {"id": None, "choices": (Choice,), "created": None, "model": None, "object": None,
              "metadata": None, "moderation": None, "service_tier": None,
              "system_fingerprint": None, "usage": CompletionUsage}
    llmroute: Any = None


# Stream chunks ---------------------------------------------------------------------------------
class ChoiceDeltaToolCallFunction(_Model):
    """A piece of a streamed tool call's function name or arguments."""

    fields = {"arguments": None, "name": None}


class ChoiceDeltaToolCall(_Model):
    """A piece of a streamed tool call, by ``index``."""

    fields = {"index": None, "id": None, "function": ChoiceDeltaToolCallFunction, "type": None}


class ChoiceDelta(_Model):
    """What one chunk adds: ``content``, ``role``, ``tool_calls``..."""

    fields = {"audio": _Audio, "content": None, "function_call": FunctionCall, "refusal": None,
              "role": None, "tool_calls": (ChoiceDeltaToolCall,)}


class ChunkChoice(_Model):
    """One choice of a chunk: its ``delta`` and, on the last, ``finish_reason``."""

    fields = {"delta": ChoiceDelta, "index": None, "finish_reason": None,
              "logprobs": _ChoiceLogprobs}


class ChatCompletionChunk(_Model):
    """One event of ``create(stream=True)``; the usage chunk has ``choices == []``."""

    fields = {"id": None, "choices": (ChunkChoice,), "created": None, "model": None,
              "object": None, "moderation": None, "obfuscation": None, "service_tier": None,
              "system_fingerprint": None, "usage": CompletionUsage}
