"""The minimal JSON value a JSON Schema accepts: what FakeGateway answers to ``json_schema``.

Minimal means: objects carry their required keys only, arrays hold ``minItems`` items (at
least one when ``items`` describes them, so the item shape is exercised), enums and ``const``
give their first value, strings are ``"fake"`` fitted to ``minLength``/``maxLength`` (or a
sample of their ``format``), numbers sit at 0 or the nearest bound. ``$ref`` into the same
document (``#/$defs/...``, as pydantic writes them), ``anyOf``/``oneOf`` (first non-null
branch) and ``allOf`` (merged) are followed; ``pattern`` is not honoured.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional

__all__ = ["instance_for"]

#: Deepest nesting followed; a schema that requires itself forever ends in ``null`` there.
MAX_DEPTH = 32
#: What a string holds when the schema says nothing more.
SAMPLE_STRING = "fake"
#: Samples for the common string formats, each valid for its format.
FORMAT_SAMPLES = {
    "date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "time": "00:00:00Z",
    "email": "fake@example.com", "uri": "https://example.com/", "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000", "hostname": "example.com",
    "ipv4": "127.0.0.1", "ipv6": "::1", "duration": "PT1S",
}
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


def instance_for(schema: Mapping[str, Any]) -> Any:
    """The minimal value ``schema`` accepts (see the module docstring); never raises."""
    return _instance(schema, schema, 0)


def _instance(schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
        return None
    schema = _resolved(schema, root, depth)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            chosen = next((b for b in branches if not _is_null(b, root, depth)), branches[0])
            merged = {k: v for k, v in schema.items() if k != key}
            merged.update(_resolved(chosen, root, depth) if isinstance(chosen, Mapping) else {})
            return _instance(merged, root, depth + 1)
    kind = _kind(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, depth)
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return False
    return None


def _resolved(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
    """``schema`` with a local ``$ref`` and its ``allOf`` parts merged in."""
    for _ in range(MAX_DEPTH - depth):
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            break
        target = _pointer(root, ref)
        schema = dict({k: v for k, v in schema.items() if k != "$ref"}, **target)
    parts = schema.get("allOf")
    if isinstance(parts, list):
        merged: Dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in parts:
            if isinstance(part, Mapping):
                part = _resolved(part, root, depth + 1)
                merged.setdefault("properties", {})
                merged["properties"] = dict(merged["properties"], **(part.get("properties") or {}))
                merged["required"] = list(merged.get("required") or []) + list(
                    part.get("required") or [])
                merged.update((k, v) for k, v in part.items()
                              if k not in ("properties", "required") and k not in merged)
        schema = merged
    return schema


def _pointer(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    """The schema a ``#/a/b`` reference names inside ``root``; ``{}`` when it names nothing."""
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    return node if isinstance(node, Mapping) else {}


def _is_null(schema: Any, root: Mapping[str, Any], depth: int) -> bool:
    return isinstance(schema, Mapping) and _kind(_resolved(schema, root, depth)) == "null"


def _kind(schema: Mapping[str, Any]) -> Optional[str]:
    kinds = schema.get("type")
    if isinstance(kinds, list):
        named = [k for k in _TYPE_ORDER if k in kinds]
        return next((k for k in named if k != "null"), named[0] if named else None)
    if isinstance(kinds, str):
        return kinds
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _object(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> Dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    extra = schema.get("additionalProperties")
    required = schema.get("required")
    value: Dict[str, Any] = {}
    for key in required if isinstance(required, list) else ():
        if isinstance(key, str) and key not in value:
            sub = properties.get(key, extra if isinstance(extra, Mapping) else {})
            value[key] = _instance(sub, root, depth + 1)
    return value


def _array(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> List[Any]:
    prefix = schema.get("prefixItems")
    items = schema.get("items")
    if isinstance(items, list):  # the older tuple form
        prefix, items = items, schema.get("additionalItems")
    value = [_instance(s, root, depth + 1) for s in prefix] if isinstance(prefix, list) else []
    low = _count(schema.get("minItems"), 0)
    high = _count(schema.get("maxItems"), None)
    wanted = max(low, 1 if isinstance(items, Mapping) else 0)
    if high is not None:
        wanted = min(wanted, high)
    while len(value) < wanted:
        value.append(_instance(items, root, depth + 1) if isinstance(items, Mapping) else None)
    return value


def _count(value: Any, default: Optional[int]) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return default


def _string(schema: Mapping[str, Any]) -> str:
    text = FORMAT_SAMPLES.get(str(schema.get("format")), SAMPLE_STRING)
    low = _count(schema.get("minLength"), 0)
    high = _count(schema.get("maxLength"), None)
    if len(text) < low:
        text += "x" * (low - len(text))
    if high is not None:
        text = text[:high]
    return text


def _bound(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _number(schema: Mapping[str, Any], integer: bool) -> Any:
    low, high = _bound(schema.get("minimum")), _bound(schema.get("maximum"))
    low_ex, high_ex = _bound(schema.get("exclusiveMinimum")), _bound(schema.get("exclusiveMaximum"))
    if schema.get("exclusiveMinimum") is True and low is not None:  # draft 4 booleans
        low, low_ex = None, low
    if schema.get("exclusiveMaximum") is True and high is not None:
        high, high_ex = None, high
    step = 1 if integer else 0.5
    lows = [x for x in (low, None if low_ex is None else low_ex + step) if x is not None]
    highs = [x for x in (high, None if high_ex is None else high_ex - step) if x is not None]
    value: float = 0
    if lows and value < max(lows):
        value = max(lows)
    if highs and value > min(highs):
        value = min(highs)
    if lows and highs and max(lows) > min(highs) and low_ex is not None and high_ex is not None:
        value = (low_ex + high_ex) / 2  # a narrow open interval: its middle
    multiple = _bound(schema.get("multipleOf"))
    if multiple is not None and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    if integer:
        return int(math.ceil(value))
    return int(value) if float(value).is_integer() else float(value)
