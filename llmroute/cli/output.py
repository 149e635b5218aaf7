"""OUTPUT of the batch command: what each line holds, how it is encoded and appended, and
how ``--resume`` reads it back.

Every finished id gets exactly one line (its result, or an error record), written whole in one
unbuffered write; a scan for resume collects the ids already written and repairs a last line
cut by a kill.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ..batching import ItemResult
from ..costs import parse_usd
from ..errors import APIStatusError, redact

__all__ = ["InvalidInputLine", "OutputError", "UnwritableRecord", "OutputState", "OutputWriter",
           "id_key", "scan_output", "encode_record", "describe", "result_record",
           "error_record", "outcome_line", "BOM"]

#: An editor's UTF-8 byte-order mark, accepted at the start of INPUT and OUTPUT.
BOM = b"\xef\xbb\xbf"
_ZERO = Decimal(0)

class InvalidInputLine(ValueError):
    """An input line that is not a usable item (bad JSON, no id, duplicate id, no prompt)."""


class OutputError(ValueError):
    """OUTPUT cannot be resumed or written as asked (a corrupt line, an unexpected file)."""


def id_key(item_id: Any) -> str:
    """The identity of an input id: its JSON text, so 1 and "1" stay different."""
    return json.dumps(item_id, ensure_ascii=False)


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
    if number == 1 and raw.startswith(BOM):
        raw = raw[len(BOM):]
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
            state.spent_usd += parse_usd(cost)
        except ValueError:
            pass  # a hand-edited or foreign record: its cost is unknown, not a reason to stop


class UnwritableRecord(ValueError):
    """A record JSON cannot hold (an object json does not know, NaN, a reference cycle)."""


_SEPARATORS = (", ", ": ")


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One OUTPUT line as UTF-8 bytes, newline included.

    Text UTF-8 cannot carry (a lone surrogate: half an emoji cut by a gateway) makes *that*
    record use JSON escapes (``\\ud83d``): still valid JSON that reads back to the same
    string. Per record rather than for the whole file, so every other line keeps its text
    readable as written (CJK, emoji) for people, ``grep`` and ``jq``. Raises
    ``UnwritableRecord`` for a record JSON cannot hold at all.
    """
    try:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=_SEPARATORS)
        try:
            return (text + "\n").encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(record, ensure_ascii=True, allow_nan=False,
                              separators=_SEPARATORS)
            return (text + "\n").encode("ascii")
    except (TypeError, ValueError, RecursionError) as err:
        raise UnwritableRecord("the record cannot be written as JSON (%s)"
                               % describe(err)) from None


def describe(error: BaseException) -> str:
    """``str(error)``, or its type's name when even that fails (a broken ``__str__``)."""
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - any failure here only means "no message"
        return "<%s with an unprintable message>" % type(error).__name__


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
        """Append ``record`` (see ``encode_record``; ``UnwritableRecord`` writes nothing)."""
        self.write_line(encode_record(record))

    def write_line(self, data: bytes) -> None:
        """Append one encoded line whole."""
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


def result_record(item: Any, value: Any, latency_ms: float) -> Dict[str, Any]:
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


def error_record(item: Any, error: BaseException, latency_ms: float,
                 secrets: Sequence[str] = ()) -> Dict[str, Any]:
    """The OUTPUT line of a failed item: the error's type and (redacted) message."""
    detail: Dict[str, Any] = {"type": type(error).__name__,
                              "message": redact(describe(error), tuple(secrets))}
    if isinstance(error, APIStatusError):
        detail["status"] = error.status_code
    record: Dict[str, Any] = {"id": item.id, "ok": False}
    if item.problem is None:
        record["model"] = item.model
        record["latency_ms"] = round(latency_ms, 1)
    record["error"] = detail
    record["line"] = item.line
    return record


def outcome_line(result: ItemResult, secrets: Sequence[str] = ()
                 ) -> Tuple[ItemResult, Dict[str, Any], bytes]:
    """The record of a finished item and its encoded line; never raises for an odd result.

    A result that cannot be made into a line (an answer JSON cannot hold, an attribute that
    raises) becomes an ``UnwritableRecord`` error for its id, and the returned result says
    so: every finished id gets exactly one line, so ``--resume`` never meets it again.
    """
    item = result.item
    try:
        record = (result_record(item, result.value, result.latency_ms) if result.ok
                  else error_record(item, result.error, result.latency_ms, secrets))
        return result, record, encode_record(record)
    except Exception as err:  # noqa: BLE001 - the item's boundary: one odd result stops nothing
        problem = UnwritableRecord("its %s could not be written: %s" % (
            "result" if result.ok else "error", describe(err)))
    failed = replace(result, ok=False, value=None, error=problem, traceback=None)
    record = error_record(item, problem, result.latency_ms, secrets)
    return failed, record, encode_record(record)
