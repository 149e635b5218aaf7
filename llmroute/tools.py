"""Tool calling run to the end: call the Python functions the model asks for, until it answers.

``run_tools`` keeps the transcript the way real gateways require: the assistant message with
its ``tool_calls`` (OpenAI wire format), then one ``tool`` message per call with the matching
``tool_call_id``. A tool that raises, or a name the model made up, is reported back to the model
as ``{"error": "ValueError: city not found"}`` instead of crashing the run; arguments that are
not JSON get a repair turn. Calls of one answer run one after another, in order.
"""
from __future__ import annotations

import inspect
import json
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .errors import LLMRouteError, ToolCallError
from .results import ChatResult, ToolCall, Usage

__all__ = ["run_tools", "ToolRun", "ToolInvocation", "ToolLoopError", "tool_schema",
           "DEFAULT_MAX_ROUNDS"]

log = logging.getLogger(__name__)

#: Requests to the model per run by default: four rounds of tools and the answer.
DEFAULT_MAX_ROUNDS = 5
#: Characters of undecodable arguments quoted back to the model in a repair turn.
RAW_EXCERPT_CHARS = 500

# Function names OpenAI accepts for tools.
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
# Annotation names -> JSON types for a derived schema; anything else is described as a string.
_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
               "list": "array", "List": "array", "dict": "object", "Dict": "object"}


class ToolLoopError(LLMRouteError):
    """The model still asked for tools on its last allowed round; ``run`` holds all so far.

    ``run.result`` is that last answer with its unanswered ``tool_calls``; ``run.messages``
    stops before it, so the transcript stays valid to resend.
    """

    def __init__(self, message: str, *, run: "ToolRun") -> None:
        super().__init__(message)
        self.run = run


class ToolInvocation(NamedTuple):
    """One call made for the model: ``result`` is the return value, or the exception raised."""

    name: str
    arguments: Any
    result: Any

    @property
    def failed(self) -> bool:
        """Whether the call failed (the function raised, the tool is unknown, bad arguments)."""
        return isinstance(self.result, BaseException)


@dataclass(frozen=True)
class ToolRun:
    """A finished tool conversation: the final answer and everything that led to it.

    ``rounds`` counts requests to the model (repair turns included). ``usage``/``cost_usd`` sum
    every request, repaired turns included, or are ``None`` when one is unknown.
    """

    result: ChatResult
    messages: List[Mapping[str, Any]]
    rounds: int
    calls: List[ToolInvocation] = field(default_factory=list)
    repairs: int = 0
    usage: Optional[Usage] = None
    cost_usd: Optional[Decimal] = None
    #: True when any request's usage was estimated (the gateway reported none).
    cost_estimated: bool = False


def tool_schema(function: Callable[..., Any], name: Optional[str] = None) -> Dict[str, Any]:
    """A minimal tool definition from a function's signature and docstring.

    Parameters annotated ``str``/``int``/``float``/``bool``/``list``/``dict`` get that JSON
    type, others are described as strings; those without a default are required. Pass
    ``tools=`` yourself for anything richer (enums, nested objects, descriptions per field).
    Raises ``ValueError`` for a name OpenAI would refuse or a positional-only parameter.
    """
    name = name or getattr(function, "__name__", "")
    if not _TOOL_NAME.match(name):
        raise ValueError("tool name %r must be 1-64 letters, digits, '_' or '-'" % (name,))
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise ValueError("tool %r: parameter %r is positional-only, but tools are called "
                             "with keyword arguments" % (name, param.name))
        annotation = param.annotation
        key = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        properties[param.name] = {"type": _JSON_TYPES.get(key.split("[")[0], "string")}
        if param.default is param.empty:
            required.append(param.name)
    doc = (inspect.getdoc(function) or "").split("\n\n")[0].strip()
    spec: Dict[str, Any] = {"name": name, "parameters": {
        "type": "object", "properties": properties, "required": required}}
    if doc:
        spec["description"] = " ".join(doc.split())
    return {"type": "function", "function": spec}


def _check(model: Any, messages: Any, functions: Any, tools: Any, max_rounds: Any,
           max_repairs: Any) -> None:
    """Refuse bad arguments before any (billed) request is sent."""
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a non-empty string, got %r" % (model,))
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages \
            or not all(isinstance(m, Mapping) and "role" in m for m in messages):
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    if tools is not None and (isinstance(tools, (str, bytes, Mapping))
                              or not isinstance(tools, Sequence)
                              or not all(isinstance(t, Mapping) for t in tools)):
        raise ValueError("tools must be a list of tool definitions (dicts) or None")
    if not isinstance(functions, Mapping) or not functions:
        raise ValueError("functions must be a non-empty dict of {name: callable}")
    for name, function in functions.items():
        if not isinstance(name, str) or not callable(function):
            raise ValueError("functions[%r] must map a name to a callable" % (name,))
    for label, value, low in (("max_rounds", max_rounds, 1), ("max_repairs", max_repairs, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError("%s must be an int >= %d, got %r" % (label, low, value))


def _assistant_message(result: ChatResult) -> Dict[str, Any]:
    """The answer as the assistant message to send back, ``tool_calls`` in wire format."""
    return {"role": "assistant", "content": result.content, "tool_calls": [
        {"id": call.id, "type": "function",
         "function": {"name": call.name,
                      "arguments": call.raw_arguments or json.dumps(call.arguments)}}
        for call in result.tool_calls]}


def _content(value: Any) -> str:
    """A tool result as message content: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _invoke(functions: Mapping[str, Callable[..., Any]], call: ToolCall) -> Tuple[Any, str]:
    """Run one call; return its outcome (value or exception) and the ``tool`` message text."""
    function = functions.get(call.name)
    if function is None:
        error: BaseException = LookupError("unknown tool %r; the tools are: %s"
                                           % (call.name, ", ".join(sorted(functions))))
        return error, json.dumps({"error": str(error)}, ensure_ascii=False)
    if not isinstance(call.arguments, dict):
        error = TypeError("arguments must be a JSON object, got %s"
                          % type(call.arguments).__name__)
        return error, json.dumps({"error": "TypeError: %s" % (error,)}, ensure_ascii=False)
    try:
        value = function(**call.arguments)
    except Exception as err:  # the contract: a tool's failure goes to the model, not up the stack
        log.info("tool %s (%s) raised %s: %s", call.name, call.id, type(err).__name__, err)
        return err, json.dumps({"error": "%s: %s" % (type(err).__name__, err)},
                               ensure_ascii=False)
    return value, _content(value)


def _repair_text(err: ToolCallError) -> str:
    raw = err.raw if len(err.raw) <= RAW_EXCERPT_CHARS else err.raw[:RAW_EXCERPT_CHARS] + "..."
    return ("Your tool call was not run: the %s. You sent: %s\n"
            "Call the tool %r again with its arguments as one valid JSON object."
            % (err, raw, err.name))


def _totals(turns: Sequence[ChatResult], unknown: bool
            ) -> Tuple[Optional[Usage], Optional[Decimal]]:
    if unknown or any(t.usage is None for t in turns):
        usage = None
    else:
        usage = sum((t.usage for t in turns), Usage())
    if unknown or any(t.cost_usd is None for t in turns):
        return usage, None
    return usage, sum((t.cost_usd for t in turns), Decimal(0))


def run_tools(client: Any, model: str, messages: Sequence[Mapping[str, Any]],
              functions: Mapping[str, Callable[..., Any]], *,
              tools: Optional[Sequence[Mapping[str, Any]]] = None,
              max_rounds: int = DEFAULT_MAX_ROUNDS, max_repairs: int = 1,
              **params: Any) -> ToolRun:
    """Chat with tools until the model answers without calling any; return the ``ToolRun``.

    ``functions`` maps tool names to callables, called with the decoded arguments as keyword
    arguments. ``tools`` defaults to ``tool_schema`` of each function. ``max_rounds`` bounds
    the requests to the model; ``max_repairs`` the repair turns for arguments that are not
    JSON, over the whole run. ``tool_choice`` (in ``params``) applies until the first tools
    have run, then the model chooses freely: a forced choice would otherwise loop forever.
    Raises ``ToolLoopError`` when the last allowed round still calls tools, ``ToolCallError``
    when repairs run out, ``ValueError`` for bad arguments and whatever ``client.chat`` raises.
    """
    _check(model, messages, functions, tools, max_rounds, max_repairs)
    if tools is None:
        tools = [tool_schema(function, name) for name, function in functions.items()]
    transcript: List[Mapping[str, Any]] = list(messages)
    calls: List[ToolInvocation] = []
    turns: List[ChatResult] = []
    repairs = 0
    for round_ in range(1, max_rounds + 1):
        request = dict(params)
        if tools:  # OpenAI refuses an empty list: no tools means no "tools" key
            request["tools"] = list(tools)
        if calls:
            request.pop("tool_choice", None)
        try:
            result = client.chat(model, transcript, **request)
        except ToolCallError as err:
            if repairs >= max_repairs or round_ == max_rounds:
                raise
            repairs += 1
            if err.result is not None:  # the bad turn was billed: count it in the totals
                turns.append(err.result)
            log.info("model=%s sent arguments for tool %s that are not JSON; repair %d/%d",
                     model, err.name, repairs, max_repairs)
            transcript.append({"role": "user", "content": _repair_text(err)})
            continue
        turns.append(result)
        if not result.tool_calls:
            transcript.append({"role": "assistant", "content": result.content})
            usage, cost = _totals(turns, False)
            return ToolRun(result, transcript, round_, calls, repairs, usage, cost,
                           any(t.cost_estimated for t in turns))
        if round_ == max_rounds:
            usage, cost = _totals(turns, False)
            raise ToolLoopError(
                "model %s still called tools (%s) after %d rounds; raise max_rounds or check "
                "for a loop" % (model, ", ".join(c.name for c in result.tool_calls), round_),
                run=ToolRun(result, transcript, round_, calls, repairs, usage, cost))
        transcript.append(_assistant_message(result))
        for call in result.tool_calls:
            outcome, content = _invoke(functions, call)
            calls.append(ToolInvocation(call.name, call.arguments, outcome))
            transcript.append({"role": "tool", "tool_call_id": call.id, "content": content})
    raise AssertionError("unreachable: the last round returns or raises")  # pragma: no cover
