"""A JSON Schema subset, checked without dependencies: enough to hold a model's JSON to a shape.

Supported keywords: ``type`` (a name or a list of names), ``properties``, ``required``,
``items`` (one schema for every element), ``enum``, ``additionalProperties`` (bool or schema),
nested to any depth. Every other keyword (``minimum``, ``pattern``, ``format``, ``$ref``,
``anyOf``, ``const``…) is ignored: it may still be sent to a model that enforces it natively,
but ``validate`` does not check it. As in JSON Schema, booleans are neither numbers nor
integers, and an integer is any number without a fractional part (``1.0`` counts).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, List, Mapping

__all__ = ["validate", "check_schema", "json_type", "TYPE_NAMES"]

#: The JSON Schema type names.
TYPE_NAMES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
#: Deepest nesting ``validate`` follows; deeper data is reported, not recursed into.
MAX_DEPTH = 64
#: Deepest schema ``check_schema`` accepts: far beyond any real schema, well inside Python's
#: recursion limit, so a cyclic or generated monster is a ValueError, not a RecursionError.
MAX_SCHEMA_DEPTH = 200

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_schema(schema: Any, _path: str = "$", _depth: int = 0) -> None:
    """Raise ``ValueError`` naming the place where ``schema`` is not a usable schema."""
    if not isinstance(schema, Mapping):
        raise ValueError("schema at %s must be a dict, got %s" % (_path, type(schema).__name__))
    if _depth > MAX_SCHEMA_DEPTH:
        raise ValueError("schema at %s: nested deeper than %d levels"
                         % (_path[:80] + "..." if len(_path) > 80 else _path, MAX_SCHEMA_DEPTH))
    if "type" in schema:
        kinds = schema["type"]
        if not isinstance(kinds, (str, list)):
            raise ValueError("schema at %s: 'type' must be a type name or a list of them, got %s"
                             % (_path, type(kinds).__name__))
        names = kinds if isinstance(kinds, list) else [kinds]
        if not names:
            raise ValueError("schema at %s: 'type' is an empty list" % (_path,))
        for name in names:
            if not isinstance(name, str) or name not in TYPE_NAMES:
                raise ValueError("schema at %s: unknown type %r (expected one of %s)"
                                 % (_path, name, ", ".join(sorted(TYPE_NAMES))))
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, Mapping):
            raise ValueError("schema at %s: 'properties' must be a dict" % (_path,))
        for key, sub in properties.items():
            check_schema(sub, _child(_path, key), _depth + 1)
    required = schema.get("required")
    if required is not None and (not isinstance(required, list)
                                 or not all(isinstance(k, str) for k in required)):
        raise ValueError("schema at %s: 'required' must be a list of strings" % (_path,))
    if "items" in schema:
        if not isinstance(schema["items"], Mapping):
            raise ValueError("schema at %s: 'items' must be one schema (dict); the tuple form "
                             "is not supported" % (_path,))
        check_schema(schema["items"], _path + "[*]", _depth + 1)
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise ValueError("schema at %s: 'enum' must be a list" % (_path,))
    extra = schema.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        check_schema(extra, _path + ".*", _depth + 1)


def validate(data: Any, schema: Mapping[str, Any]) -> List[str]:
    """Every way ``data`` breaks ``schema``, one string each with its exact path.

    For example ``"$.items[2].price: expected number, got string"``; an empty list means valid.
    Raises ``ValueError`` if the schema itself is invalid (see ``check_schema``).
    """
    check_schema(schema)
    errors: List[str] = []
    _validate(data, schema, "$", errors, 0)
    return errors


def _validate(data: Any, schema: Mapping[str, Any], path: str, errors: List[str],
              depth: int) -> None:
    if depth > MAX_DEPTH:
        errors.append("%s: nested deeper than %d levels" % (path, MAX_DEPTH))
        return
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is_type(data, name) for name in names):
            # A value of the wrong type: its contents are not worth reporting.
            errors.append("%s: expected %s, got %s" % (path, " or ".join(names), json_type(data)))
            return
    if "enum" in schema and not any(_json_equal(data, option) for option in schema["enum"]):
        errors.append("%s: expected one of %s, got %s"
                      % (path, _show(schema["enum"]), _show(data)))
    if isinstance(data, dict):
        properties = schema.get("properties") or {}
        for key in schema.get("required") or ():
            if key not in data:
                errors.append("%s: required property is missing" % (_child(path, key),))
        extra = schema.get("additionalProperties", True)
        for key, value in data.items():
            child = _child(path, key)
            if key in properties:
                _validate(value, properties[key], child, errors, depth + 1)
            elif extra is False:
                errors.append("%s: additional property is not allowed" % (child,))
            elif isinstance(extra, Mapping):
                _validate(value, extra, child, errors, depth + 1)
    elif isinstance(data, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(data):
            _validate(item, schema["items"], "%s[%d]" % (path, index), errors, depth + 1)


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value (``bool`` is ``boolean``, never ``integer``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, name: str) -> bool:
    actual = json_type(value)
    if actual == name:
        return True
    if name == "number":
        return actual == "integer"
    if name == "integer" and actual == "number":
        return math.isfinite(value) and float(value).is_integer()
    return False


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``True`` is not ``1``, ``1`` is ``1.0``."""
    kind_a, kind_b = json_type(a), json_type(b)
    numbers = {"integer", "number"}
    if kind_a != kind_b and not (kind_a in numbers and kind_b in numbers):
        return False
    if kind_a == "array":
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if kind_a == "object":
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return a == b


def _child(path: str, key: Any) -> str:
    key = str(key)
    if _IDENTIFIER.match(key):
        return "%s.%s" % (path, key)
    return "%s[%s]" % (path, _show(key))


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."
