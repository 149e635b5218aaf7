"""The JSON Schema subset: exact paths in every error, JSON's idea of types, bad schemas refused."""
from __future__ import annotations

import pytest

from llmroute.schema import MAX_DEPTH, check_schema, validate

ITEMS = {"type": "object", "required": ["items"], "properties": {"items": {
    "type": "array", "items": {"type": "object", "required": ["name", "price"], "properties": {
        "name": {"type": "string"}, "price": {"type": "number"}}}}}}


@pytest.mark.parametrize("data, schema, errors", [
    # types, with JSON's rules: booleans are not numbers, 1.0 is an integer, integers are numbers
    ("x", {"type": "string"}, []),
    (1, {"type": "string"}, ["$: expected string, got integer"]),
    (True, {"type": "number"}, ["$: expected number, got boolean"]),
    (False, {"type": "integer"}, ["$: expected integer, got boolean"]),
    (3, {"type": "number"}, []),
    (1.0, {"type": "integer"}, []),
    (1.5, {"type": "integer"}, ["$: expected integer, got number"]),
    (None, {"type": "null"}, []),
    (None, {"type": ["string", "null"]}, []),
    (7, {"type": ["string", "null"]}, ["$: expected string or null, got integer"]),
    ({}, {"type": "array"}, ["$: expected array, got object"]),
    # nested paths
    ({"items": [{"name": "a", "price": 1}, {"name": "b", "price": 2},
                {"name": "c", "price": "3.50"}]}, ITEMS,
     ["$.items[2].price: expected number, got string"]),
    ({"items": [{"name": "a"}]}, ITEMS, ["$.items[0].price: required property is missing"]),
    ({}, ITEMS, ["$.items: required property is missing"]),
    ({"items": "none"}, ITEMS, ["$.items: expected array, got string"]),  # no descent
    ({"items": [{"name": 1, "price": True}, 5]}, ITEMS,
     ["$.items[0].name: expected string, got integer",
      "$.items[0].price: expected number, got boolean",
      "$.items[1]: expected object, got integer"]),
    # additionalProperties
    ({"a": 1, "b": 2}, {"properties": {"a": {}}, "additionalProperties": False},
     ["$.b: additional property is not allowed"]),
    ({"a": 1, "b": "2"}, {"properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
     ["$.b: expected integer, got string"]),
    ({"a": 1, "b": 2}, {"properties": {"a": {}}}, []),
    # enum, compared as JSON: true is not 1, 1 is 1.0
    ("pending", {"enum": ["open", "closed"]},
     ['$: expected one of ["open", "closed"], got "pending"']),
    (True, {"enum": [1, 2]}, ["$: expected one of [1, 2], got true"]),
    (1.0, {"enum": [1, 2]}, []),
    ({"k": [1, True]}, {"enum": [{"k": [1, True]}]}, []),
    ({"k": [1, 1]}, {"enum": [{"k": [1, True]}]},
     ['$: expected one of [{"k": [1, true]}], got {"k": [1, 1]}']),
    # keys that are not identifiers are quoted in the path
    ({"unit price": "x"}, {"properties": {"unit price": {"type": "number"}}},
     ['$["unit price"]: expected number, got string']),
    # unsupported keywords are ignored, not enforced
    (1, {"type": "integer", "minimum": 5, "format": "int32"}, []),
    ("abc", {"pattern": "^[0-9]+$", "maxLength": 1}, []),
    ({"x": 1}, {}, []),
])
def test_errors_name_the_exact_path(data, schema, errors):
    assert validate(data, schema) == errors


@pytest.mark.parametrize("schema, fragment", [
    ([], "schema at $ must be a dict"),
    ("object", "schema at $ must be a dict"),
    ({"type": "float"}, "unknown type 'float'"),
    ({"type": []}, "'type' is an empty list"),
    ({"type": ["string", "text"]}, "unknown type 'text'"),
    ({"properties": {"a": {"type": "str"}}}, "schema at $.a: unknown type 'str'"),
    ({"properties": ["a"]}, "'properties' must be a dict"),
    ({"required": "a"}, "'required' must be a list of strings"),
    ({"items": [{"type": "string"}]}, "tuple form is not supported"),
    ({"items": {"items": {"type": "char"}}}, "schema at $[*][*]: unknown type 'char'"),
    ({"enum": "ab"}, "'enum' must be a list"),
    ({"additionalProperties": {"type": "nope"}}, "schema at $.*: unknown type 'nope'"),
])
def test_an_invalid_schema_is_a_value_error_naming_the_place(schema, fragment):
    with pytest.raises(ValueError) as info:
        check_schema(schema)
    assert fragment in str(info.value)
    with pytest.raises(ValueError):
        validate({}, schema)


def test_data_nested_past_the_depth_limit_is_reported_not_recursed():
    schema, data = {"type": "array"}, []
    for _ in range(MAX_DEPTH + 5):
        schema, data = {"type": "array", "items": schema}, [data]
    errors = validate(data, schema)
    assert len(errors) == 1 and "nested deeper than %d levels" % MAX_DEPTH in errors[0]
