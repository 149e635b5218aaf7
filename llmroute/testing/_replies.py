"""What FakeGateway says: pure functions from a request and a ``Reply`` to response bytes.

Nothing here touches a socket or the gateway's state, so each body can be tested on its own.
``_server.py`` decides which body to send and writes it; ``_instances.py`` builds the JSON a
schema asks for.
"""
from __future__ import annotations

import itertools
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence

from ..tokens import estimate_tokens
from ._instances import instance_for

#: Words of the last user message the default reply quotes: enough to tell calls apart.
QUOTED_WORDS = 8
#: Pieces a tool call's arguments are streamed in, as real gateways split them.
ARGUMENT_PIECES = 3
#: Most choices one request may ask for with ``n`` (OpenAI's own limit).
MAX_CHOICES = 128

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# A word with the whitespace around it: the pieces of a stream join back to the exact text.
_PIECE = re.compile(r"\s*\S+\s*")
_WORD = re.compile(r"\S+")
DONE = b"data: [DONE]\n\n"

# status -> (error type, error code, message); the message may name the {model} and {wait}.
_ERRORS = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Invalid API key provided"),
    403: ("invalid_request_error", "model_not_allowed",
          "You are not allowed to sample from the model `{model}`."),
    404: ("invalid_request_error", "model_not_found",
          "The model `{model}` does not exist or you do not have access to it."),
    405: ("invalid_request_error", "method_not_allowed", "Method not allowed."),
    408: ("timeout", "request_timeout", "Request timed out."),
    409: ("invalid_request_error", "conflict", "Conflicting request; please retry."),
    422: ("invalid_request_error", "unprocessable_entity", "A parameter is invalid."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for `{model}`. Please try again {wait}."),
    500: ("server_error", None,
          "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", "bad_gateway", "Bad gateway: the upstream provider failed."),
    503: ("server_error", "service_unavailable",
          "The engine is currently overloaded, please try again later."),
    504: ("server_error", "gateway_timeout", "Gateway timeout: the upstream did not answer."),
}
# The wait headers a 429's message quotes, in the order clients read them: (name, unit).
_WAIT_HEADERS = (("retry-after-ms", "ms"), ("llm_provider-retry-after-ms", "ms"),
                 ("retry-after", "s"), ("llm_provider-retry-after", "s"))


class Answer(NamedTuple):
    """What a 2xx answer says, decided once and then written as JSON or as SSE events.

    Every one of the ``choices`` choices carries the same content and tool calls.
    """

    content: Optional[str]
    tool_calls: Optional[List[Dict[str, Any]]]
    finish_reason: str
    usage: Optional[Dict[str, Any]]
    pieces: List[str]
    choices: int = 1


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, encoded once per body."""
    return _ENCODE(obj).encode("utf-8")


def wait_hint(headers: Optional[Mapping[str, str]]) -> Optional[str]:
    """The wait a 429's headers announce, as a message says it (``"in 1s"``), or ``None``."""
    lowered = {str(k).lower(): str(v).strip() for k, v in (headers or {}).items()}
    for name, unit in _WAIT_HEADERS:
        value = lowered.get(name)
        if value:
            try:
                number = float(value)
            except ValueError:
                return "after %s" % value  # an HTTP date
            return "in %g%s" % (number, unit)
    return None


def error_body(status: int, message: Optional[str] = None, model: Optional[str] = None,
               headers: Optional[Mapping[str, str]] = None, param: Optional[str] = None) -> bytes:
    """An OpenAI-shaped ``{"error": {...}}`` body fitting the status.

    A 429's default message names the wait its ``headers`` announce (``Retry-After``…).
    """
    kind, code, default = _ERRORS.get(status) or (
        ("server_error", None, "Upstream error.") if status >= 500
        else ("invalid_request_error", None, "Request failed."))
    if message is None:
        message = default.format(model=model or "unknown", wait=wait_hint(headers) or "later")
    return dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def model_object(model: str) -> Dict[str, Any]:
    """One model as ``GET /v1/models`` lists it."""
    return {"id": model, "object": "model", "created": 0, "owned_by": "llmroute-fake"}


def models_body(models: Iterable[str]) -> bytes:
    """The ``GET /v1/models`` list."""
    return dumps({"object": "list", "data": [model_object(m) for m in models]})


def model_body(model: str) -> bytes:
    """The ``GET /v1/models/{id}`` object."""
    return dumps(model_object(model))


def unknown_model_body(model: str) -> bytes:
    """OpenAI's 404 for ``GET /v1/models/{id}`` naming a model it does not serve."""
    return error_body(404, "The model '%s' does not exist" % model, param="model")


def last_user_text(messages: Sequence[Any]) -> str:
    """The text of the last user message (string or content parts), or ``""``."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
            return "" if content is None else str(content)
    return ""


def default_content(model: str, messages: Sequence[Any]) -> str:
    """The deterministic, readable default answer: which model, and what it replies to."""
    words = last_user_text(messages).split()
    quote = " ".join(words[:QUOTED_WORDS]) + ("..." if len(words) > QUOTED_WORDS else "")
    return "[fake:%s] Reply to: %s" % (model, quote or "(no user message)")


def json_content(request: Mapping[str, Any], model: str) -> Optional[str]:
    """The unscripted answer a JSON ``response_format`` asks for, or ``None`` for plain text.

    ``json_object`` gets ``{"reply": <the default answer>}``; ``json_schema`` gets the minimal
    instance of its schema (see ``instance_for``).
    """
    fmt = request.get("response_format")
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_object":
        return json.dumps({"reply": default_content(model, request.get("messages") or [])},
                          ensure_ascii=False)
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            schema = {"type": "object"}
        return json.dumps(instance_for(schema), ensure_ascii=False)
    return None


def forced_tool_call(request: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The tool call ``tool_choice`` demands (``"required"`` or a named function), or ``None``.

    ``"required"`` calls the first tool; the arguments are the minimal instance of its
    ``parameters`` schema.
    """
    choice = request.get("tool_choice")
    tools = [t for t in request.get("tools") or () if isinstance(t, Mapping)
             and isinstance(t.get("function"), Mapping)]
    if choice == "required":
        function = tools[0]["function"] if tools else None
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        function = next((t["function"] for t in tools if t["function"].get("name") == name),
                        {"name": name})
    else:
        return None
    if function is None:
        return None
    parameters = function.get("parameters")
    arguments = instance_for(parameters) if isinstance(parameters, Mapping) else {}
    return {"function": {"name": str(function.get("name") or ""), "arguments": arguments}}


def choice_count(request: Mapping[str, Any]) -> Optional[int]:
    """The request's ``n`` (1 when absent), or ``None`` when it is not an int 1-128."""
    n = request.get("n", 1)
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
        return None
    return n


def completion_limit(request: Mapping[str, Any]) -> Optional[int]:
    """``max_completion_tokens`` or ``max_tokens`` when a positive integer, else ``None``."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def split_pieces(content: str) -> List[str]:
    """Stream pieces of about a word each, whose concatenation is exactly ``content``."""
    return _PIECE.findall(content) or ([content] if content else [])


def normalize_tool_calls(tool_calls: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Fill in ``id`` and ``type`` and turn dict arguments into the JSON string OpenAI sends."""
    calls = []
    for i, call in enumerate(tool_calls):
        function = dict(call.get("function") or {})
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = _ENCODE(arguments)
        calls.append({"id": call.get("id") or "call_fake_%d" % i,
                      "type": call.get("type") or "function",
                      "function": {"name": str(function.get("name", "")), "arguments": arguments}})
    return calls


def plan_answer(reply: Any, request: Mapping[str, Any], model: str) -> Answer:
    """Decide the content, tool calls, finish reason and usage of a 2xx answer.

    ``reply`` is a ``testing.Reply``. Unscripted, the answer follows the request: a forced
    ``tool_choice`` gets a tool call, a JSON ``response_format`` gets JSON, anything else the
    default text. Content longer than the request's token limit is cut to that many words with
    ``finish_reason="length"`` and reports exactly the limit as usage; ``n`` choices bill ``n``
    times the completion.
    """
    messages = request.get("messages") or []
    scripted = reply.content is not None or reply.tool_calls or reply.stream_chunks is not None
    calls = reply.tool_calls
    if not scripted:
        forced = forced_tool_call(request)
        calls = [forced] if forced is not None else None
    tool_calls = normalize_tool_calls(calls) if calls else None
    finish = "tool_calls" if tool_calls else "stop"
    if reply.stream_chunks is not None:
        pieces = list(reply.stream_chunks)
        content: Optional[str] = "".join(pieces)
        completion = estimate_tokens(content)
    else:
        content = reply.content
        if content is None and tool_calls is None:
            content = json_content(request, model) or default_content(model, messages)
        completion = estimate_tokens(content or "")
        limit = completion_limit(request)
        if content and limit is not None and completion > limit:
            last = next(itertools.islice(_WORD.finditer(content), limit - 1, None), None)
            content = content[:last.end()] if last is not None else content
            completion, finish = limit, "length"
        pieces = split_pieces(content or "")
    for call in tool_calls or ():
        completion += estimate_tokens(call["function"]["name"])
        completion += estimate_tokens(call["function"]["arguments"])
    n = choice_count(request) or 1
    if reply.usage is False:
        usage = None
    elif reply.usage is not None:
        usage = dict(reply.usage)
    else:
        prompt = estimate_tokens(messages)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion * n,
                 "total_tokens": prompt + completion * n}
    return Answer(content, tool_calls, reply.finish_reason or finish, usage, pieces, n)


def completion_body(answer: Answer, model: str, completion_id: str, created: int) -> bytes:
    """A whole ``chat.completion`` object with ``answer.choices`` choices."""
    message: Dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    body: Dict[str, Any] = {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": i, "message": message, "logprobs": None,
                     "finish_reason": answer.finish_reason} for i in range(answer.choices)],
    }
    if answer.usage is not None:
        body["usage"] = answer.usage
    return dumps(body)


class StreamEvents(NamedTuple):
    """SSE events: the role deltas, the content/tool deltas (what ``cut_after`` counts), the end."""

    head: bytes
    deltas: List[bytes]
    tail: List[bytes]


def stream_events(answer: Answer, model: str, completion_id: str, created: int,
                  include_usage: bool) -> StreamEvents:
    """The ``chat.completion.chunk`` events of a streamed answer, each a ``data:`` line.

    With ``n`` > 1 the choices' deltas interleave, each chunk naming its choice's ``index``.
    With ``include_usage`` every chunk carries ``"usage": null`` and one last chunk with empty
    ``choices`` carries the usage, as OpenAI sends them.
    """
    base = '{"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s,' % (
        _ENCODE(completion_id), created, _ENCODE(model))
    usage_null = ',"usage":null' if include_usage else ""

    def event(index: int, delta: Dict[str, Any], finish: Optional[str] = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return ("data: %s\"choices\":[%s]%s}\n\n" % (base, _ENCODE(choice), usage_null)).encode(
            "utf-8")

    indexes = range(answer.choices)
    one_choice: List[Dict[str, Any]] = [{"content": piece} for piece in answer.pieces]
    for position, call in enumerate(answer.tool_calls or ()):
        function = call["function"]
        one_choice.append({"tool_calls": [{"index": position, "id": call["id"],
                                           "type": call["type"],
                                           "function": {"name": function["name"],
                                                        "arguments": ""}}]})
        arguments = function["arguments"]
        size = max(1, -(-len(arguments) // ARGUMENT_PIECES))
        for start in range(0, len(arguments), size):
            one_choice.append({"tool_calls": [
                {"index": position, "function": {"arguments": arguments[start:start + size]}}]})
    deltas = [event(i, delta) for delta in one_choice for i in indexes]
    tail = [event(i, {}, answer.finish_reason) for i in indexes]
    if include_usage and answer.usage is not None:
        tail.append(("data: %s\"choices\":[],\"usage\":%s}\n\n" % (
            base, _ENCODE(answer.usage))).encode("utf-8"))
    tail.append(DONE)
    head = b"".join(event(i, {"role": "assistant", "content": ""}) for i in indexes)
    return StreamEvents(head, deltas, tail)
