"""JSON answers you can use: ask for JSON, parse it strictly, and let the model repair its errors.

Only one thing is forgiven without asking: a single code fence around the reply (```json … ```),
which is stripped losslessly. Anything else that does not parse (prose around the object,
trailing commas, truncation at ``max_tokens``) or breaks the schema is not guessed at: the
error, with its position or its paths, is shown to the model in a short repair turn, at most
``max_repairs`` times, then ``StructuredOutputError`` is raised.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._candidates import mentions_json
from .errors import StructuredOutputError
from .results import ChatResult, Usage
from .schema import check_schema, validate

__all__ = ["JSONResult", "chat_json", "complete_json", "parse_reply", "strip_fence",
           "response_format_for", "DEFAULT_MAX_REPAIRS"]

log = logging.getLogger(__name__)

#: Repair turns by default: models that fail twice in a row rarely succeed on a third try.
DEFAULT_MAX_REPAIRS = 2
#: Schema errors listed in one repair turn; more would bury the first ones.
MAX_LISTED_ERRORS = 10
#: The task a routed JSON request is sent as (see ``complete_json``).
EXTRACTION_TASK = "extraction"

# One fence around the whole reply: ``` plus an optional info string, a newline, the body, ```.
_FENCE = re.compile(r"\A\s*```[ \t]*[A-Za-z0-9_+.-]*[ \t]*\r?\n(.*?)(?:\r?\n)?[ \t]*```\s*\Z",
                    re.DOTALL)
# A fence line inside the body means two blocks, not one: then nothing is stripped.
_INNER_FENCE = re.compile(r"\n[ \t]*```")


@dataclass(frozen=True)
class JSONResult:
    """Parsed JSON and what it took: ``usage``/``cost_usd``/``latency_ms`` sum every turn.

    ``usage`` and ``cost_usd`` are ``None`` when any turn's is unknown (a partial sum would
    understate the spend). ``errors`` holds one entry per turn that had to be repaired.
    """

    data: Any
    content: str
    repairs: int
    model: str
    usage: Optional[Usage]
    cost_usd: Optional[Decimal]
    attempts: int
    latency_ms: float
    errors: Tuple[str, ...] = ()
    turns: Tuple[ChatResult, ...] = field(default=(), repr=False)
    #: True when any turn's usage was estimated (the gateway reported none).
    cost_estimated: bool = False


def strip_fence(text: str) -> str:
    """The body of a single code fence wrapping the whole text, else the text unchanged."""
    match = _FENCE.match(text)
    if match is None or _INNER_FENCE.search(match.group(1)):
        return text
    return match.group(1)


def _no_constant(name: str) -> Any:
    raise ValueError("%s is not valid JSON" % (name,))


def parse_reply(text: Optional[str]) -> Any:
    """Decode a reply as JSON after ``strip_fence``; ``ValueError`` says where it breaks.

    The message reads like ``Expecting ',' delimiter at line 3 column 5 (char 42)``.
    ``NaN`` and ``Infinity``, which Python's json accepts, are refused: they are not JSON.
    """
    body = strip_fence(text or "")
    try:
        return json.loads(body, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ValueError("%s at line %d column %d (char %d)"
                         % (err.msg, err.lineno, err.colno, err.pos)) from None


def response_format_for(spec: Any, schema: Optional[Mapping[str, Any]]
                        ) -> Optional[Dict[str, Any]]:
    """The ``response_format`` a model takes: its schema mode when it has one, else JSON mode.

    ``strict`` is off: OpenAI's strict mode rejects schemas that do not list every property
    as required, which most schemas of this subset do not. ``None`` when the catalog says the
    model has neither mode (the instruction in the prompt then carries the request).
    """
    if schema is not None and spec is not None and spec.supports("json_schema"):
        return {"type": "json_schema",
                "json_schema": {"name": "response", "schema": dict(schema), "strict": False}}
    if (spec is None or spec.supports("json_object")) and _allows_object(schema):
        return {"type": "json_object"}
    return None


def _allows_object(schema: Optional[Mapping[str, Any]]) -> bool:
    """Whether JSON mode fits: it forces an object, so a schema for an array rules it out."""
    kinds = (schema or {}).get("type", "object")
    return "object" in (kinds if isinstance(kinds, list) else [kinds])


def _noun(schema: Optional[Mapping[str, Any]]) -> str:
    return "JSON array" if schema is not None and schema.get("type") == "array" else "JSON object"


def _with_instruction(messages: Sequence[Mapping[str, Any]], schema: Optional[Mapping[str, Any]],
                      response_format: Optional[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """The messages, plus a system line asking for JSON when the request needs one.

    It is added when the schema is not sent natively (the model must read it somewhere) or when
    JSON mode is on and no message says "JSON" (OpenAI refuses JSON mode without that word).
    """
    kind = (response_format or {}).get("type")
    native = kind == "json_schema"
    mentions = mentions_json(messages)
    if native or (schema is None and kind == "json_object" and mentions):
        return list(messages)
    text = "Reply with only a %s, without prose or code fences." % _noun(schema)
    if schema is not None:
        text += " It must match this JSON Schema: " + json.dumps(
            schema, ensure_ascii=False, separators=(",", ":"))
    at = 0
    while at < len(messages) and messages[at].get("role") == "system":
        at += 1
    return list(messages[:at]) + [{"role": "system", "content": text}] + list(messages[at:])


def _judge(result: ChatResult, schema: Optional[Mapping[str, Any]]
           ) -> Tuple[Any, Optional[str], str]:
    """``(data, None, "")`` for a good reply, else ``(None, error, repair message)``."""
    noun = _noun(schema)
    try:
        data = parse_reply(result.content)
    except ValueError as err:
        if result.finish_reason == "length":
            return (None, "truncated at max_tokens (finish_reason 'length'): %s" % (err,),
                    "Your previous reply was cut off at max_tokens, so it is not complete JSON "
                    "(%s). Reply with only the complete %s, shorter if need be." % (err, noun))
        return (None, "not valid JSON: %s" % (err,),
                "Your previous reply was not valid JSON: %s. Reply with only the corrected %s."
                % (err, noun))
    if schema is None:
        return data, None, ""
    problems = validate(data, schema)
    if not problems:
        return data, None, ""
    listed = problems[:MAX_LISTED_ERRORS]
    if len(problems) > len(listed):
        listed.append("... and %d more" % (len(problems) - len(listed)))
    return (None, "does not match the schema: " + "; ".join(listed),
            "Your previous reply did not match the required JSON Schema:\n- %s\n"
            "Reply with only the corrected %s." % ("\n- ".join(listed), noun))


def _check_args(messages: Any, schema: Any, max_repairs: Any) -> None:
    """Refuse bad arguments before any (billed) request is sent."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages \
            or not all(isinstance(m, Mapping) and "role" in m for m in messages):
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    if schema is not None:
        check_schema(schema)
    if isinstance(max_repairs, bool) or not isinstance(max_repairs, int) or max_repairs < 0:
        raise ValueError("max_repairs must be an int >= 0, got %r" % (max_repairs,))


def _sum_usage(turns: Sequence[ChatResult]) -> Tuple[Optional[Usage], Optional[Decimal]]:
    usage: Optional[Usage] = Usage()
    cost: Optional[Decimal] = Decimal(0)
    for turn in turns:
        usage = None if usage is None or turn.usage is None else usage + turn.usage
        cost = None if cost is None or turn.cost_usd is None else cost + turn.cost_usd
    return usage, cost


def _repair_loop(send: Callable[[List[Mapping[str, Any]], int], ChatResult],
                 messages: List[Mapping[str, Any]], schema: Optional[Mapping[str, Any]],
                 max_repairs: int) -> JSONResult:
    """Send, judge, and on a bad reply send its error back, up to ``max_repairs`` times."""
    transcript = list(messages)
    turns: List[ChatResult] = []
    errors: List[str] = []
    for turn in range(max_repairs + 1):
        result = send(transcript, turn)
        turns.append(result)
        data, error, repair = _judge(result, schema)
        if error is None:
            usage, cost = _sum_usage(turns)
            return JSONResult(
                data=data, content=result.content or "", repairs=turn, model=result.model,
                usage=usage, cost_usd=cost, attempts=sum(t.attempts for t in turns),
                latency_ms=sum(t.latency_ms for t in turns), errors=tuple(errors),
                turns=tuple(turns), cost_estimated=any(t.cost_estimated for t in turns))
        errors.append(error)
        log.info("model=%s reply %d is not usable JSON (%s)%s", result.model, turn + 1,
                 error[:200], "; asking for a repair" if turn < max_repairs else "")
        transcript = transcript + [{"role": "assistant", "content": result.content or ""},
                                   {"role": "user", "content": repair}]
    raise StructuredOutputError(
        "model %s gave no usable JSON after %d repair turn(s); last: %s"
        % (turns[-1].model, max_repairs, errors[-1][:300]),
        content=turns[-1].content or "", errors=errors)


def chat_json(client: Any, model: str, messages: Sequence[Mapping[str, Any]], *,
              schema: Optional[Mapping[str, Any]] = None,
              max_repairs: int = DEFAULT_MAX_REPAIRS, **params: Any) -> JSONResult:
    """Ask ``model`` for JSON (matching ``schema`` if given) and return it parsed.

    Sends the model's JSON ``response_format`` (see ``response_format_for``; a caller's own
    ``response_format`` wins) and other ``params`` as ``client.chat`` does. Raises
    ``StructuredOutputError`` when repairs run out, ``ValueError`` for a bad schema or
    ``max_repairs``, and whatever ``client.chat`` raises (HTTP errors are not repaired).
    Client options (``deadline``, ``timeout``…) apply to each turn.
    """
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a non-empty string, got %r" % (model,))
    _check_args(messages, schema, max_repairs)
    if "response_format" in params:
        response_format = params.pop("response_format")
    else:
        response_format = response_format_for(client.catalog.get(model), schema)
    if response_format is not None:
        params["response_format"] = response_format
    first = _with_instruction(messages, schema, response_format)

    def send(transcript: List[Mapping[str, Any]], turn: int) -> ChatResult:
        return client.chat(model, transcript, **params)

    return _repair_loop(send, first, schema, max_repairs)


def complete_json(router: Any, prompt_or_messages: Union[str, Sequence[Mapping[str, Any]]], *,
                  schema: Optional[Mapping[str, Any]] = None,
                  max_repairs: int = DEFAULT_MAX_REPAIRS, **kw: Any) -> JSONResult:
    """``chat_json`` through a router: ``router.complete`` for the answer and every repair.

    ``task`` defaults to ``"extraction"``; ``kw`` goes to ``router.complete`` as it is
    (``priority``, ``max_cost_usd``, request params over the route's). JSON mode is sent with
    the schema in a system line, since the model is not known before routing. Repair turns go
    through the router too, with the same task and options, so they keep the route's params
    (its ``max_tokens``, temperature), the budget and the health checks. The route's order
    holds between turns (only ``priority="speed"`` reorders, by measured latency), so a repair
    reaches the model that made the mistake unless that one has become unavailable.
    ``result.turns`` are the router's ``RouteResult``s (task, reason, routed_via, tried).
    """
    if isinstance(prompt_or_messages, str):
        messages: Sequence[Mapping[str, Any]] = [{"role": "user",
                                                  "content": prompt_or_messages}]
    else:
        messages = prompt_or_messages
    _check_args(messages, schema, max_repairs)
    kw.setdefault("task", EXTRACTION_TASK)
    # None removes the route's JSON mode: it forces an object, which an array schema is not.
    kw.setdefault("response_format", {"type": "json_object"} if _allows_object(schema) else None)

    def send(transcript: List[Mapping[str, Any]], turn: int) -> ChatResult:
        return router.complete(transcript, **kw)

    return _repair_loop(send, _with_instruction(messages, schema, kw["response_format"]),
                        schema, max_repairs)
