"""The JSONL batch runner: input lines in, one output line per id out, resumable after a kill.

Input is read lazily and streamed through ``batch()`` with ``keep_results=False``; each result
is appended to OUTPUT as one JSON line (one ``write`` of the whole line, unbuffered) as soon as
it finishes, from the caller's thread. ``--resume`` reads back the ids OUTPUT already holds,
cuts off a half-written last line, and skips those ids, so every id ends up exactly once.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set

from ..batching import BatchInterrupted, ItemResult, batch
from ..errors import APIStatusError, redact
from ..progress import Tally

__all__ = ["InvalidInputLine", "Item", "OutputState", "OutputWriter", "InputReader",
           "Summary", "idempotency_key", "id_key", "parse_line", "scan_output", "run",
           "result_record", "error_record", "ROUTER_PRIORITIES"]

#: Fields of an input line that are not request parameters.
ITEM_FIELDS = frozenset({"id", "prompt", "messages", "model", "task", "priority"})
#: Client options a line may not set: the command sets them, or cannot honour them.
FORBIDDEN_FIELDS = frozenset({"stream", "deadline", "timeout", "idempotency_key",
                              "extra_headers"})
#: A string ``priority`` on a line is the router's for that item; a number orders submission.
ROUTER_PRIORITIES = ("accuracy", "speed", "budget", "balanced")
#: Invalid lines the summary keeps to list one by one; the rest are counted.
SUMMARY_INVALID_LINES = 10
_ZERO = Decimal(0)


class InvalidInputLine(ValueError):
    """An input line that is not a usable item (bad JSON, no id, duplicate id, no prompt)."""


class OutputError(ValueError):
    """OUTPUT cannot be resumed or written as asked (a corrupt line, an unexpected file)."""


def id_key(item_id: Any) -> str:
    """The identity of an input id: its JSON text, so 1 and "1" stay different."""
    return json.dumps(item_id, ensure_ascii=False)


def idempotency_key(key: str) -> str:
    """The ``Idempotency-Key`` of every request for one id, the same on every run."""
    return "llmroute-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


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


def parse_line(line: int, text: str) -> Item:
    """Parse one input line (1-based ``line``); a bad line gives an Item with a ``problem``."""
    try:
        data = json.loads(text)
    except ValueError as err:
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
                rank=float(priority) if isinstance(priority, (int, float)) else 0.0,
                params={k: v for k, v in data.items() if k not in ITEM_FIELDS})


def _item_problem(data: Mapping[str, Any]) -> Optional[str]:
    prompt, messages = data.get("prompt"), data.get("messages")
    if prompt is None and messages is None:
        return "give a prompt or messages"
    if prompt is not None and messages is not None:
        return "give a prompt or messages, not both"
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        return "prompt must be a non-empty string"
    if messages is not None and (not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and "role" in m for m in messages)):
        return "messages must be a non-empty list of {\"role\", \"content\"} objects"
    for name in ("model", "task"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            return "%s must be a non-empty string" % name
    priority = data.get("priority")
    if priority is not None and not (
            priority in ROUTER_PRIORITIES or isinstance(priority, (int, float))
            and not isinstance(priority, bool)):
        return "priority must be a number (submission order) or one of %s" % (
            ", ".join(ROUTER_PRIORITIES))
    forbidden = sorted(FORBIDDEN_FIELDS.intersection(data))
    if forbidden:
        return "%s cannot be set per line in a batch" % ", ".join(forbidden)
    return None


class InputReader:
    """Iterates the usable and the invalid items of INPUT lazily, skipping ``done`` keys.

    Duplicate ids are reported (keyed by their line) after the first; ``skipped`` counts the
    lines resume left out, ``lines`` the lines read so far.
    """

    def __init__(self, path: str, done: Optional[Set[str]] = None) -> None:
        self.path = path
        self.done = done if done is not None else set()
        self.skipped = 0
        self.lines = 0

    def __iter__(self) -> Iterator[Item]:
        first_line: Dict[str, int] = {}
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                self.lines = number
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
                if item.key in self.done or (item.problem is not None
                                             and "line:%d" % number in self.done):
                    self.skipped += 1
                    continue
                yield item


@dataclass
class OutputState:
    """What a resume scan found in OUTPUT."""

    done: Set[str] = field(default_factory=set)
    spent_usd: Decimal = _ZERO
    lines: int = 0
    repaired_bytes: int = 0  # cut off a half-written last line
    completed_line: bool = False  # the last line was whole but lacked its newline


def _record_keys(record: Mapping[str, Any]) -> List[str]:
    keys = []
    if record.get("id") is not None:
        keys.append(id_key(record["id"]))
    error = record.get("error")
    if isinstance(error, dict) and error.get("type") == InvalidInputLine.__name__ \
            and isinstance(record.get("line"), int):
        keys.append("line:%d" % record["line"])
    return keys


def scan_output(path: str) -> OutputState:
    """Read OUTPUT's records for resume and repair its end; a missing file is empty.

    A last line without its newline is a write cut by a kill: it is completed if it is a whole
    record, else truncated away. Raises ``OutputError`` for a corrupt line before the last.
    """
    state = OutputState()
    if not os.path.exists(path):
        return state
    with open(path, "r+b") as f:
        end = 0  # offset just past the last whole line
        tail, tail_number = b"", 0
        for number, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                tail, tail_number = raw, number
                break
            end += len(raw)
            if raw.strip():
                _add_record(state, _parse_record(raw, number, path), number, path)
                state.lines += 1
        if tail:
            record = _parse_record(tail, tail_number, path, strict=False)
            if isinstance(record, dict) and "ok" in record:
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
                state.completed_line = True
                _add_record(state, record, tail_number, path)
                state.lines += 1
            else:
                f.truncate(end)
                state.repaired_bytes = len(tail)
    return state


def _parse_record(raw: bytes, number: int, path: str, strict: bool = True) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError as err:  # UnicodeDecodeError is a ValueError too
        if not strict:
            return None
        raise OutputError("%s line %d is not a JSON record (%s); remove or fix it, then "
                          "--resume again" % (path, number, err)) from None


def _add_record(state: OutputState, record: Any, number: int, path: str) -> None:
    if not isinstance(record, dict):
        raise OutputError("%s line %d is not a JSON object; remove or fix it, then --resume "
                          "again" % (path, number))
    state.done.update(_record_keys(record))
    cost = record.get("cost_usd")
    if isinstance(cost, str):
        try:
            state.spent_usd += Decimal(cost)
        except InvalidOperation:
            pass


class OutputWriter:
    """Appends one record per call as a single unbuffered write of the whole line.

    A kill can then cut at most the line being written, which ``scan_output`` repairs.
    ``fsync=True`` also survives a power cut, at a price per line.
    """

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self._file = open(path, "ab", buffering=0)
        self.written = 0

    def write(self, record: Mapping[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False, separators=(", ", ": "))
                + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[self._file.write(view):]
        if self._fsync:
            os.fsync(self._file.fileno())
        self.written += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "OutputWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _usage(usage: Any) -> Optional[Dict[str, int]]:
    if usage is None:
        return None
    out = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
           "total_tokens": usage.total_tokens}
    for name in ("cached_tokens", "reasoning_tokens"):
        if getattr(usage, name, None) is not None:
            out[name] = getattr(usage, name)
    return out


def result_record(item: Item, value: Any, latency_ms: float) -> Dict[str, Any]:
    """The OUTPUT line of a finished call (a ChatResult or RouteResult)."""
    cost = getattr(value, "cost_usd", None)
    task = getattr(value, "task", None)
    record: Dict[str, Any] = {
        "id": item.id, "ok": True, "model": getattr(value, "model", item.model),
        "content": getattr(value, "content", None),
        "finish_reason": getattr(value, "finish_reason", None),
        "usage": _usage(getattr(value, "usage", None)),
        "cost_usd": str(cost) if cost is not None else None,
        "latency_ms": round(latency_ms, 1), "attempts": getattr(value, "attempts", 1),
        "routed_via": getattr(value, "routed_via", None),
        "task": getattr(task, "value", task), "request_id": getattr(value, "request_id", None),
        "line": item.line,
    }
    calls = getattr(value, "tool_calls", ())
    if calls:
        record["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments}
                                for c in calls]
    return record


def error_record(item: Item, error: BaseException, latency_ms: float,
                 secrets: Sequence[str] = ()) -> Dict[str, Any]:
    """The OUTPUT line of a failed item: the error's type and (redacted) message."""
    detail: Dict[str, Any] = {"type": type(error).__name__,
                              "message": redact(str(error), tuple(secrets))}
    if isinstance(error, APIStatusError):
        detail["status"] = error.status_code
    record: Dict[str, Any] = {"id": item.id, "ok": False}
    if item.problem is None:
        record["model"] = item.model
        record["latency_ms"] = round(latency_ms, 1)
    record["error"] = detail
    record["line"] = item.line
    return record


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
        item = result.item
        record = (result_record(item, result.value, result.latency_ms) if result.ok
                  else error_record(item, result.error, result.latency_ms, secrets))
        writer.write(record)
        summary.add(item, result, record)

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
