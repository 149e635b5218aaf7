"""The JSONL batch runner: input lines in, one output line per id out, resumable after a kill.

Input is read lazily and streamed through ``batch()`` with ``keep_results=False``; each result
is appended to OUTPUT as one JSON line (one ``write`` of the whole line, unbuffered) as soon as
it finishes, from the caller's thread. ``--resume`` reads back the ids OUTPUT already holds,
cuts off a half-written last line, and skips those ids, so every id ends up exactly once.
This module reads INPUT and runs; ``output`` holds what OUTPUT's lines are (its names are
re-exported here).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from .. import _checks as checks
from .._candidates import PRIORITIES
from .._options import CALL_OPTIONS
from ..batching import BatchInterrupted, ItemResult, batch
from ..progress import Tally
from .output import (BOM, InvalidInputLine, OutputError, OutputState, OutputWriter,
                     UnwritableRecord, encode_record, error_record, id_key, outcome_line,
                     result_record, scan_output)

__all__ = ["InvalidInputLine", "Item", "OutputState", "OutputWriter", "InputReader",
           "Summary", "idempotency_key", "id_key", "parse_line", "scan_output", "run",
           "shard_of",
           "result_record", "error_record", "encode_record", "outcome_line", "loads_strict",
           "UnwritableRecord", "OutputError", "ROUTER_PRIORITIES"]

#: Fields of an input line that are not request parameters.
ITEM_FIELDS = frozenset({"id", "prompt", "messages", "model", "task", "priority"})
#: Client options a line may not set: the command sets them, or cannot honour them.
FORBIDDEN_FIELDS = CALL_OPTIONS | {"stream", "max_cost_usd"}
#: A string ``priority`` on a line is the router's for that item; a number orders submission.
ROUTER_PRIORITIES = PRIORITIES
#: OpenAI parameters llmroute reads (reservations, worst-case costs) or that no gateway takes
#: as anything but a number: checked on each line, so ``"max_tokens": true`` is an error record,
#: not a request. ``True``: a whole number of at least 1.
NUMERIC_PARAMS = {"max_tokens": True, "max_completion_tokens": True, "n": True,
                  "temperature": False, "top_p": False, "presence_penalty": False,
                  "frequency_penalty": False}
#: Invalid lines the summary keeps to list one by one; the rest are counted.
SUMMARY_INVALID_LINES = 10


def idempotency_key(key: str) -> str:
    """The ``Idempotency-Key`` of every request for one id, the same on every run."""
    # surrogatepass: an id with a lone surrogate (valid JSON: "\\ud83d") still has a key.
    return "llmroute-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Item:
    """One input line as parsed; ``problem`` says why it is unusable (then it is only
    reported). ``key`` is what resume matches: the id's JSON, or ``line:N`` without one."""

    line: int
    id: Any
    key: str
    prompt: Optional[str] = None
    messages: Optional[List[Mapping[str, Any]]] = None
    model: Optional[str] = None
    task: Optional[str] = None
    route_priority: Optional[str] = None
    rank: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)
    problem: Optional[str] = None


def _invalid(line: int, problem: str, item_id: Any = None) -> Item:
    key = id_key(item_id) if item_id is not None else "line:%d" % line
    return Item(line, item_id, key, problem="line %d: %s" % (line, problem))


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) and value != "" or (
        isinstance(value, int) and not isinstance(value, bool))


class _NotJSON(ValueError):
    """A number JSON cannot carry (NaN, Infinity, out of a double's range)."""


class _DuplicateKey(ValueError):
    """An object with one key twice: which value was meant is unknown (json keeps the last)."""


def _unique_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    data: Dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey("the key %s appears twice in one object" % json.dumps(key)[:60])
        data[key] = value
    return data


def _refuse_constant(name: str) -> Any:
    raise _NotJSON("%s is not a JSON number" % name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJSON("%s is out of range for a number" % text[:40])
    return value


def loads_strict(text: str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and numbers that overflow to infinity
    (Python's json accepts them; they are not JSON and no gateway takes them), and an object
    with a key twice (Python's json silently keeps the last value)."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                      object_pairs_hook=_unique_keys)


def _lenient_id(text: str) -> Any:
    """The id of a line that is JSON but for a NaN or Infinity, so its error names it."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    item_id = data.get("id") if isinstance(data, dict) else None
    return item_id if _valid_id(item_id) else None


def parse_line(line: int, text: str) -> Item:
    """Parse one input line (1-based ``line``); a bad line gives an Item with a ``problem``.

    Never raises: every malformed field becomes the item's ``problem``, naming the line.
    """
    try:
        data = loads_strict(text)
    except _NotJSON as err:
        return _invalid(line, "not valid JSON: %s" % err, _lenient_id(text))
    except _DuplicateKey as err:  # no id named: with two ids, which one is unknown
        return _invalid(line, str(err))
    except (ValueError, RecursionError) as err:  # RecursionError: absurdly deep nesting
        return _invalid(line, "not valid JSON (%s)" % err)
    if not isinstance(data, dict):
        return _invalid(line, "not a JSON object")
    item_id = data.get("id")
    if item_id is None:
        return _invalid(line, "missing id")
    if not _valid_id(item_id):
        return _invalid(line, "id must be a non-empty string or an integer, got %s"
                        % json.dumps(item_id)[:40])
    problem = _item_problem(data)
    if problem is not None:
        return _invalid(line, problem, item_id)
    priority = data.get("priority")
    return Item(line, item_id, id_key(item_id), prompt=data.get("prompt"),
                messages=data.get("messages"), model=data.get("model"), task=data.get("task"),
                route_priority=priority if isinstance(priority, str) else None,
                rank=0.0 if priority is None or isinstance(priority, str) else float(priority),
                params={k: v for k, v in data.items() if k not in ITEM_FIELDS})


def _item_problem(data: Mapping[str, Any]) -> Optional[str]:
    prompt, messages = data.get("prompt"), data.get("messages")
    if prompt is None and messages is None:
        return "give a prompt or messages"
    if prompt is not None and messages is not None:
        return "give a prompt or messages, not both"
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        return "prompt must be a non-empty string"
    if messages is not None:
        problem = _messages_problem(messages)
        if problem is not None:
            return problem
    for name in ("model", "task"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return "%s must be a non-empty string" % name
    problem = _priority_problem(data.get("priority"))
    if problem is not None:
        return problem
    forbidden = sorted(FORBIDDEN_FIELDS.intersection(data))
    if forbidden:
        return "%s cannot be set per line in a batch" % ", ".join(forbidden)
    for name, whole in NUMERIC_PARAMS.items():
        if name in data:
            try:
                checks.number(name, data[name], integer=whole, minimum=1 if whole else None)
            except ValueError as err:
                return str(err)
    return None


def _messages_problem(messages: Any) -> Optional[str]:
    """Why ``messages`` is not a chat message list, or None: each message an object with a
    string ``role`` and a ``content`` that is a string, a list of part objects, or null."""
    shape = "messages must be a non-empty list of {\"role\", \"content\"} objects"
    if not isinstance(messages, list) or not messages:
        return shape
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            return shape
        if not isinstance(message["role"], str) or not message["role"]:
            return "messages[%d].role must be a non-empty string" % number
        content = message.get("content")
        if content is not None and not isinstance(content, str) and not (
                isinstance(content, list) and all(isinstance(p, dict) for p in content)):
            return ("messages[%d].content must be a string, a list of part objects or null"
                    % number)
    return None


#: A numeric ``priority`` is a submission rank: any number a double holds exactly enough.
_MAX_RANK = 1e300


def _priority_problem(priority: Any) -> Optional[str]:
    if priority is None or priority in ROUTER_PRIORITIES:
        return None
    if isinstance(priority, (int, float)) and not isinstance(priority, bool):
        try:
            if abs(float(priority)) <= _MAX_RANK:
                return None
        except OverflowError:  # a 400-digit integer
            pass
        return "priority is out of range (at most 1e300 either way)"
    return "priority must be a number (submission order) or one of %s" % (
        ", ".join(ROUTER_PRIORITIES))


def shard_of(key: str, count: int) -> int:
    """The shard (0 <= shard < count) of an item key: a stable hash of the id's JSON text, the
    same on every host and Python run (unlike ``hash()``)."""
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


class InputReader:
    """Iterates the usable and the invalid items of INPUT lazily, skipping ``done`` keys.

    Duplicate ids are reported (keyed by their line) after the first; ``skipped`` counts the
    lines resume left out, ``lines`` the lines read so far. ``shard=(i, n)`` yields only the
    items whose key is in shard ``i`` of ``n`` (``other_shards`` counts the rest).
    """

    def __init__(self, path: str, done: Optional[Set[str]] = None,
                 shard: Optional[Tuple[int, int]] = None) -> None:
        self.path = path
        self.done = done if done is not None else set()
        self.shard = shard
        self.skipped = 0
        self.other_shards = 0
        self.lines = 0

    def __iter__(self) -> Iterator[Item]:
        first_line: Dict[str, int] = {}
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                self.lines = number
                if number == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]  # an editor's UTF-8 byte-order mark
                if not raw.strip():
                    continue
                try:
                    item = parse_line(number, raw.decode("utf-8"))
                except UnicodeDecodeError as err:
                    item = _invalid(number, "not UTF-8 (%s)" % err)
                if item.problem is None or item.id is not None:
                    seen = first_line.setdefault(item.key, number)
                    if seen != number:
                        item = _invalid(number, "duplicate id %s (first on line %d)"
                                        % (id_key(item.id)[:60], seen))
                if self.shard is not None and shard_of(item.key, self.shard[1]) != self.shard[0]:
                    self.other_shards += 1
                    continue
                if item.key in self.done or (item.problem is not None
                                             and "line:%d" % number in self.done):
                    self.skipped += 1
                    continue
                yield item


class Summary:
    """Totals of one run: counts, invalid lines, and a Tally per model for the table."""

    def __init__(self) -> None:
        self.ok = self.failed = self.invalid = self.skipped = 0
        self.invalid_lines: List[str] = []
        self.by_model: Dict[str, Tally] = {}
        self.tokens: Dict[str, int] = {}
        self.errors_by_type: Dict[str, int] = {}
        self.interrupted = False
        self.unfinished = 0
        self.repaired_bytes = 0
        self.wall_seconds = 0.0

    @property
    def items(self) -> int:
        return self.ok + self.failed

    def add(self, item: Item, result: ItemResult, record: Mapping[str, Any]) -> None:
        """Count one written ``record`` and the ``result`` it came from."""
        if result.ok:
            self.ok += 1
        else:
            self.failed += 1
            name = type(result.error).__name__
            self.errors_by_type[name] = self.errors_by_type.get(name, 0) + 1
            if item.problem is not None:
                self.invalid += 1
                if len(self.invalid_lines) < SUMMARY_INVALID_LINES:
                    self.invalid_lines.append(item.problem)
                return
        model = record.get("model") or "(routed)"
        tally = self.by_model.get(model)
        if tally is None:
            tally = self.by_model[model] = Tally(exact=False)
        tally.add(result)
        usage = record.get("usage") or {}
        self.tokens[model] = self.tokens.get(model, 0) + int(usage.get("total_tokens") or 0)


def run(reader: InputReader, writer: OutputWriter, call: Callable[[Item], Any], *,
        workers: int = 8, progress: Any = False, secrets: Sequence[str] = (),
        summary: Optional[Summary] = None) -> Summary:
    """Call every item of ``reader`` through ``batch()`` and write each outcome to ``writer``.

    An invalid line is written as an ``InvalidInputLine`` error without a call. Cancelled
    items (Ctrl-C) are not written, so ``--resume`` sends them again. Raises
    ``BatchInterrupted`` (with ``summary.interrupted`` set) after Ctrl-C.
    """
    summary = summary if summary is not None else Summary()

    def work(item: Item) -> Any:
        if item.problem is not None:
            raise InvalidInputLine(item.problem)
        return call(item)

    def on_result(result: ItemResult) -> None:
        if result.cancelled:
            return  # never sent: not written, so a resumed run sends it
        result, record, data = outcome_line(result, secrets)
        writer.write_line(data)
        summary.add(result.item, result, record)

    try:
        outcome = batch(work, reader, max_workers=workers,
                        priority=lambda item: item.rank, on_result=on_result,
                        progress=progress, keep_results=False)
    except BatchInterrupted as interrupted:
        summary.interrupted = True
        summary.unfinished = interrupted.unfinished
        summary.wall_seconds = interrupted.result.wall_seconds
        raise
    summary.wall_seconds = outcome.wall_seconds
    summary.skipped = reader.skipped
    return summary
