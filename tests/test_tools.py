"""run_tools against the FakeGateway: the wire transcript, errors reported to the model, bounds."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

import llmroute
from llmroute.results import Usage
from llmroute.retry import RetryPolicy
from llmroute.testing import Reply
from llmroute.tools import ToolInvocation, ToolLoopError, run_tools, tool_schema

KEY = "sk-tools-0123456789"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris and in Atlantis?"}]
USAGE = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}


def weather(city: str, unit: str = "C") -> dict:
    """Current weather of a city.

    Longer notes that are not part of the description.
    """
    if city == "Atlantis":
        raise ValueError("city not found")
    return {"city": city, "temp": 21, "unit": unit}


def call(call_id, name, arguments):
    return {"id": call_id, "function": {"name": name, "arguments": arguments}}


@pytest.fixture
def client(gw):
    with llmroute.Client(gw.base_url, KEY, retry=RetryPolicy(max_retries=0)) as c:
        yield c


def test_two_rounds_send_the_assistant_tool_calls_then_one_tool_message_each(gw, client):
    gw.script("gpt-5.4",
              Reply(tool_calls=[call("call_1", "weather", {"city": "Paris"}),
                                call("call_2", "weather", {"city": "Atlantis"})], usage=USAGE),
              Reply(content="Paris: 21°C. Atlantis was not found.", usage=USAGE))
    run = run_tools(client, "gpt-5.4", MESSAGES, {"weather": weather})
    assert run.result.content == "Paris: 21°C. Atlantis was not found."
    assert run.rounds == 2 and run.repairs == 0
    second = gw.requests[1].json["messages"]
    assert second[0] == MESSAGES[0]
    assistant = second[1]
    assert assistant["role"] == "assistant" and assistant["content"] is None
    assert [(c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in assistant["tool_calls"]] == [
        ("call_1", "function", "weather", {"city": "Paris"}),
        ("call_2", "function", "weather", {"city": "Atlantis"})]
    assert all(isinstance(c["function"]["arguments"], str) for c in assistant["tool_calls"])
    assert second[2] == {"role": "tool", "tool_call_id": "call_1",
                         "content": '{"city": "Paris", "temp": 21, "unit": "C"}'}
    assert second[3] == {"role": "tool", "tool_call_id": "call_2",
                         "content": '{"error": "ValueError: city not found"}'}
    assert len(second) == 4
    assert run.messages[:4] == second
    assert run.messages[4] == {"role": "assistant", "content": run.result.content}
    paris, atlantis = run.calls
    assert paris == ToolInvocation("weather", {"city": "Paris"},
                                   {"city": "Paris", "temp": 21, "unit": "C"})
    assert atlantis.failed and isinstance(atlantis.result, ValueError)
    assert run.usage == Usage(100, 20, 120)
    assert run.cost_usd == Decimal("0.0021")  # 2 × (50 × $15 + 10 × $30) / 1e6


def test_an_unknown_tool_and_non_object_arguments_are_reported_to_the_model(gw, client):
    gw.script("gpt-5.4",
              Reply(tool_calls=[call("c1", "forecast", {"city": "Rome"}),
                                call("c2", "weather", ["Rome"])]),
              Reply(content="Sorry."))
    run = run_tools(client, "gpt-5.4", MESSAGES, {"weather": weather})
    tool_messages = gw.requests[1].json["messages"][2:]
    assert json.loads(tool_messages[0]["content"]) == {
        "error": "unknown tool 'forecast'; the tools are: weather"}
    assert json.loads(tool_messages[1]["content"]) == {
        "error": "TypeError: arguments must be a JSON object, got list"}
    assert [c.failed for c in run.calls] == [True, True]


def test_wrong_keyword_arguments_are_reported_as_the_type_error(gw, client):
    gw.script("gpt-5.4", Reply(tool_calls=[call("c1", "weather", {"town": "Rome"})]), "ok")
    run_tools(client, "gpt-5.4", MESSAGES, {"weather": weather})
    content = json.loads(gw.requests[1].json["messages"][2]["content"])["error"]
    assert content.startswith("TypeError: ") and "town" in content


@pytest.mark.parametrize("value, content", [
    ("sunny", "sunny"),
    ({"t": 1}, '{"t": 1}'),
    (None, "null"),
    ([1, "é"], '[1, "é"]'),
    (Decimal("1.5"), '"1.5"'),  # not JSON-serialisable: its str, as JSON
])
def test_a_tool_result_becomes_the_tool_message_content(gw, client, value, content):
    gw.script("gpt-5.4", Reply(tool_calls=[call("c1", "get", {})]), "done")
    run_tools(client, "gpt-5.4", MESSAGES, {"get": lambda: value}, tools=[])
    assert gw.requests[1].json["messages"][2]["content"] == content
    assert "tools" not in gw.requests[0].json  # an empty list is refused by OpenAI


def test_arguments_that_are_not_json_get_a_repair_turn(gw):
    tracker = llmroute.CostTracker()
    client = llmroute.Client(gw.base_url, "sk-tools-test-key", tracker=tracker)
    broken = '{"city": "Paris"'
    gw.script("gpt-5.4", Reply(tool_calls=[call("c1", "weather", broken)]),
              Reply(tool_calls=[call("c2", "weather", {"city": "Paris"})]), "21°C in Paris.")
    run = run_tools(client, "gpt-5.4", MESSAGES, {"weather": weather})
    assert run.result.content == "21°C in Paris." and run.repairs == 1 and run.rounds == 3
    repair = gw.requests[1].json["messages"]
    assert repair[:-1] == MESSAGES and repair[-1]["role"] == "user"
    assert "not valid JSON" in repair[-1]["content"] and broken in repair[-1]["content"]
    assert "'weather'" in repair[-1]["content"]
    assert [c.arguments for c in run.calls] == [{"city": "Paris"}]
    # the broken turn was billed: ToolCallError.result carries it into the totals
    assert tracker.snapshot().requests == 3
    assert run.cost_usd == tracker.snapshot().total_cost_usd
    assert run.usage.prompt_tokens == tracker.snapshot().prompt_tokens


def test_when_repairs_run_out_the_tool_call_error_is_raised_with_the_raw_string(gw, client):
    gw.script("gpt-5.4", Reply(tool_calls=[call("c1", "weather", "{bad")]),
              Reply(tool_calls=[call("c2", "weather", "{worse")]))
    with pytest.raises(llmroute.ToolCallError) as info:
        run_tools(client, "gpt-5.4", MESSAGES, {"weather": weather}, max_repairs=1)
    assert info.value.raw == "{worse" and info.value.name == "weather"
    assert len(gw.requests) == 2


def test_a_model_that_keeps_calling_tools_stops_at_max_rounds(gw, client):
    looping = Reply(tool_calls=[call("c", "weather", {"city": "Paris"})])
    gw.script("gpt-5.4", *[looping] * 3)
    with pytest.raises(ToolLoopError) as info:
        run_tools(client, "gpt-5.4", MESSAGES, {"weather": weather}, max_rounds=3)
    run = info.value.run
    assert len(gw.requests) == 3 and run.rounds == 3 and len(run.calls) == 2
    assert run.result.tool_calls  # the last, unanswered, answer
    # the transcript stops before that answer, so it stays valid to send again
    assert run.messages[-1]["role"] == "tool"
    assert "after 3 rounds" in str(info.value)


def test_tool_choice_applies_until_the_first_tools_ran(gw, client):
    gw.script("gpt-5.4", Reply(tool_calls=[call("c1", "weather", {"city": "Paris"})]), "done")
    run_tools(client, "gpt-5.4", MESSAGES, {"weather": weather}, tool_choice="required",
              temperature=0)
    first, second = (r.json for r in gw.requests)
    assert first["tool_choice"] == "required" and "tool_choice" not in second
    assert first["temperature"] == second["temperature"] == 0


def test_tools_default_to_schemas_derived_from_the_functions(gw, client):
    gw.script("gpt-5.4", "no tools needed")
    run = run_tools(client, "gpt-5.4", MESSAGES, {"weather": weather})
    assert run.rounds == 1 and run.calls == []
    assert gw.requests[0].json["tools"] == [tool_schema(weather, "weather")]


def test_tool_schema_reads_the_signature_and_the_first_docstring_paragraph():
    def search(query: str, limit: int = 10, exact: bool = False, score: float = 0.5,
               tags: list = (), where: dict = None, misc=None, *rest, **options):
        """Search   the index."""

    assert tool_schema(search) == {"type": "function", "function": {
        "name": "search", "description": "Search the index.", "parameters": {
            "type": "object", "required": ["query"], "properties": {
                "query": {"type": "string"}, "limit": {"type": "integer"},
                "exact": {"type": "boolean"}, "score": {"type": "number"},
                "tags": {"type": "array"}, "where": {"type": "object"},
                "misc": {"type": "string"}}}}}
    assert "description" not in tool_schema(lambda: None, "noop")["function"]


@pytest.mark.parametrize("function, name, fragment", [
    (lambda: None, "has space", "tool name 'has space'"),
    (lambda: None, None, "tool name '<lambda>'"),
    (divmod, "divmod", "positional-only"),
])
def test_tool_schema_refuses_what_a_gateway_would(function, name, fragment):
    with pytest.raises(ValueError, match=fragment):
        tool_schema(function, name)


@pytest.mark.parametrize("functions, options, fragment", [
    ({}, {}, "functions must be a non-empty dict"),
    ([weather], {}, "functions must be a non-empty dict"),
    ({"weather": "weather"}, {}, "must map a name to a callable"),
    ({"weather": weather}, {"max_rounds": 0}, "max_rounds must be an int >= 1"),
    ({"weather": weather}, {"max_repairs": True}, "max_repairs must be an int >= 0"),
])
def test_bad_arguments_raise_before_any_request(gw, client, functions, options, fragment):
    with pytest.raises(ValueError, match=fragment):
        run_tools(client, "gpt-5.4", MESSAGES, functions, **options)
    assert gw.requests == []


def test_tool_schema_reads_annotation_objects_as_well_as_strings():
    def count(n, ratio, items):
        return n

    count.__annotations__ = {"n": int, "ratio": float, "items": "List[str]"}
    properties = tool_schema(count)["function"]["parameters"]["properties"]
    assert properties == {"n": {"type": "integer"}, "ratio": {"type": "number"},
                          "items": {"type": "array"}}


def _tool_round(arguments):
    return json.dumps({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "echo", "arguments": arguments}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()


def test_run_tools_sends_back_tool_arguments_holding_a_lone_surrogate(serve):
    from _servers import completion, respond

    def handler(conn, request, server):
        respond(conn, _tool_round('{"text": "cut \ud83d"}') if len(server.requests) == 1
                else completion("done"))

    def echo(text: str) -> str:
        return "got %d chars" % len(text)

    server = serve(handler)
    with llmroute.Client(server.base_url, KEY, timeout=(2, 2)) as client:
        run = run_tools(client, "gpt-5.4", MESSAGES, {"echo": echo})
    assert run.result.content == "done" and run.rounds == 2


def test_a_tool_call_error_chains_nothing(serve):
    from _servers import respond

    server = serve(lambda conn, request, srv: respond(conn, _tool_round("{not json")))
    with llmroute.Client(server.base_url, KEY, timeout=(2, 2)) as client:
        with pytest.raises(llmroute.errors.ToolCallError) as caught:
            client.chat("gpt-5.4", MESSAGES)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
