"""The parsers of results.py: usage counts, tool calls, message shapes and the gateway's cost."""
from __future__ import annotations

from decimal import Decimal

import pytest

from llmroute.errors import InvalidResponseError, ToolCallError
from llmroute.results import (Usage, first_choice, parse_content, parse_gateway_cost,
                              parse_message, parse_tool_calls, parse_usage)


@pytest.mark.parametrize("prompt, completion, expected", [
    (1000, 20, (1000, 20)),
    (1000.0, 20.0, (1000, 20)),
    ("1000", " 20 ", (1000, 20)),
    (0, 0, (0, 0)),
])
def test_usage_counts_are_read_as_exact_integers_in_any_form(prompt, completion, expected):
    usage = parse_usage({"prompt_tokens": prompt, "completion_tokens": completion})
    assert (usage.prompt_tokens, usage.completion_tokens) == expected
    assert usage.total_tokens == sum(expected)


@pytest.mark.parametrize("bad", [
    True, 1.5, -1, "1e3", "١٠", "12345678901234567", 2 ** 60, None, [], {}, float("nan"),
])
def test_a_count_that_is_not_an_exact_integer_makes_usage_unknown(bad):
    assert parse_usage({"prompt_tokens": bad, "completion_tokens": 3}) is None
    assert parse_usage({"prompt_tokens": 3, "completion_tokens": bad}) is None


@pytest.mark.parametrize("data", [None, [], "usage", 7])
def test_usage_that_is_not_an_object_is_unknown(data):
    assert parse_usage(data) is None


def test_cached_and_reasoning_tokens_come_from_either_dialect():
    openai = parse_usage({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                          "prompt_tokens_details": {"cached_tokens": 4},
                          "completion_tokens_details": {"reasoning_tokens": 2}})
    anthropic = parse_usage({"prompt_tokens": 10, "completion_tokens": 5,
                             "cache_read_input_tokens": 4})
    assert (openai.cached_tokens, openai.reasoning_tokens) == (4, 2)
    assert (anthropic.cached_tokens, anthropic.reasoning_tokens) == (4, None)


def test_usages_add_up_and_keep_unreported_details_unknown():
    total = Usage(1, 2, 3) + Usage(4, 5, 9, cached_tokens=2)
    assert total == Usage(5, 7, 12, cached_tokens=2, reasoning_tokens=None)


def test_tool_calls_decode_their_arguments():
    calls = parse_tool_calls([
        {"id": "c1", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "c2", "function": {"name": "g", "arguments": {"y": 2}}},   # already decoded
        {"id": "c3", "function": {"name": "h", "arguments": ""}},
    ])
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("c1", "f", {"x": 1}), ("c2", "g", {"y": 2}), ("c3", "h", {})]
    assert calls[1].raw_arguments == '{"y": 2}'


def test_tool_call_arguments_that_are_not_json_raise_with_the_raw_text():
    with pytest.raises(ToolCallError) as info:
        parse_tool_calls([{"id": "c1", "function": {"name": "f", "arguments": "{x"}}])
    assert (info.value.raw, info.value.name, info.value.call_id) == ("{x", "f", "c1")


@pytest.mark.parametrize("items", [{"id": "c"}, "calls", [None], [{"function": "f"}]])
def test_tool_calls_of_the_wrong_shape_are_an_invalid_response(items):
    with pytest.raises(InvalidResponseError):
        parse_tool_calls(items)


@pytest.mark.parametrize("body, problem", [
    ([], "not an object"),
    ({"choices": []}, "no choices"),
    ({"choices": "x"}, "no choices"),
    ({"choices": [None]}, "no choices"),
    ({"error": {"message": "upstream failed"}}, "upstream failed"),
])
def test_a_body_without_a_usable_choice_is_an_invalid_response(body, problem):
    with pytest.raises(InvalidResponseError, match=problem):
        first_choice(body, "req-1")


def test_an_error_object_in_a_body_is_redacted():
    with pytest.raises(InvalidResponseError) as info:
        first_choice({"error": "bad key sk-secret-0123456789"}, None, ("sk-secret-0123456789",))
    assert "sk-secret" not in str(info.value)


@pytest.mark.parametrize("content, text", [
    ("hi", "hi"), (None, None),
    ([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}, "b"], "ab"),
])
def test_content_may_be_a_list_of_parts(content, text):
    assert parse_content(content) == text


@pytest.mark.parametrize("content", [7, {"text": "a"}, [3]])
def test_content_of_another_type_is_an_invalid_response(content):
    with pytest.raises(InvalidResponseError):
        parse_content(content)


def test_a_message_that_is_not_an_object_is_an_invalid_response():
    with pytest.raises(InvalidResponseError, match="not an object"):
        parse_message({"message": "hello"})
    assert parse_message({"finish_reason": 3}) == (None, None, None)


@pytest.mark.parametrize("value, cost", [
    ("0.00042", Decimal("0.00042")), (" 1.5 ", Decimal("1.5")), ("0", Decimal(0)),
    ("-1", None), ("NaN", None), ("inf", None), ("abc", None), ("1" * 80, None), (None, None),
])
def test_the_gateways_cost_header_is_read_totally(value, cost):
    headers = {} if value is None else {"x-litellm-response-cost": value}
    assert parse_gateway_cost(headers) == cost
    assert parse_gateway_cost(None) is None
