"""The route table: the shipped routes, overrides by mapping and file, read-only routes, and bad
specs refused with a ValueError naming the task and the model."""
from __future__ import annotations

import json

import pytest

from llmroute import presets
from llmroute.catalog import default_catalog
from llmroute.routes import TASKS, Route, RouteTable, default_routes, load_routes

OPUS, GPT, SONNET, GPT41 = "claude-opus-4.6", "gpt-5.4", "claude-sonnet-4.5", "gpt-4.1"
FLASH, DEEPSEEK = "gemini-2.5-flash", "deepseek-v3.2"


# The shipped table -------------------------------------------------------------------------------
def test_the_default_table_has_a_route_for_every_task_in_task_order():
    routes = default_routes()
    assert tuple(routes) == TASKS and len(routes) == len(TASKS)
    for task, route in routes.items():
        assert route.task == task and len(route.models) >= 3
        assert len(set(route.models)) == len(route.models)


def test_every_routed_model_is_in_the_shipped_catalog():
    catalog = default_catalog()
    missing = [m for m in default_routes().models() if m not in catalog]
    assert missing == []


def test_routes_start_from_their_presets():
    routes = default_routes()
    assert dict(routes["math"].params) == dict(presets.get("reasoning"))
    assert dict(routes["code"].params) == dict(presets.get("code_gen"))
    assert dict(routes["function_calling"].params) == dict(presets.get("function_calling"))
    assert dict(routes["general"].params) == dict(presets.get("chat"))
    long_context = dict(presets.get("document_analysis"))
    del long_context["stop"]  # the route removes the preset's stop sequences
    assert dict(routes["long_context"].params) == long_context
    assert routes["creative_writing"].params["max_tokens"] == 4096  # overlay on "chat"
    assert routes["summarization"].params == {"max_tokens": 1024, "temperature": 0.3,
                                              "top_p": 0.95}


def test_the_default_table_is_read_once():
    assert default_routes() is default_routes() is load_routes() is load_routes(None)


def test_models_lists_each_model_once_in_table_order():
    models = default_routes().models()
    assert len(models) == len(set(models))
    assert set(models) == {OPUS, GPT, SONNET, GPT41, FLASH, DEEPSEEK}
    assert models[0] == default_routes()[TASKS[0]].models[0]


# Read-only routes --------------------------------------------------------------------------------
def test_routes_and_their_params_cannot_be_changed():
    route = default_routes()["math"]
    with pytest.raises(TypeError):
        route.params["temperature"] = 2.0
    with pytest.raises(AttributeError):
        route.models = (GPT,)
    with pytest.raises(TypeError):
        default_routes()["math"] = route  # the table is a read-only mapping


def test_request_params_is_a_deep_copy_safe_to_change():
    route = default_routes()["math"]
    params = route.request_params()
    params["thinking"]["budget_tokens"] = 1
    params["temperature"] = 2.0
    assert route.params["thinking"]["budget_tokens"] == 4096
    assert route.params["temperature"] == 0.4


def test_a_route_built_in_code_keeps_its_own_copy_of_the_params():
    params = {"temperature": 0.1, "stop": ["END"]}
    route = Route("general", [GPT], params)
    params["temperature"] = 1.0
    params["stop"].append("MORE")
    assert route.params == {"temperature": 0.1, "stop": ["END"]}
    assert route.models == (GPT,)  # a list becomes a tuple


# Overrides ---------------------------------------------------------------------------------------
def test_a_bare_list_replaces_the_models_and_keeps_the_task_params():
    table = load_routes({"math": [DEEPSEEK, GPT]})
    assert table["math"].models == (DEEPSEEK, GPT)
    assert table["math"].params == default_routes()["math"].params
    assert table["code"] is default_routes()["code"]  # tasks not named keep their route


def test_a_preset_replaces_the_params_and_params_overlay_them():
    table = load_routes({
        "general": {"preset": "code_gen"},
        "code": {"params": {"temperature": 0, "top_p": None, "seed": 7}},
        "extraction": {"models": [GPT41], "preset": "json_reliable",
                       "params": {"max_tokens": 512}, "comment": "why, for the reader"},
    })
    assert table["general"].models == default_routes()["general"].models
    assert dict(table["general"].params) == dict(presets.get("code_gen"))
    code = table["code"].params
    assert code["temperature"] == 0 and code["seed"] == 7 and "top_p" not in code
    assert code["max_tokens"] == default_routes()["code"].params["max_tokens"]
    assert table["extraction"].models == (GPT41,)
    assert table["extraction"].params["max_tokens"] == 512
    assert table["extraction"].params["response_format"] == {"type": "json_object"}


def test_a_route_object_is_taken_as_given_under_its_own_task():
    route = Route("math", (DEEPSEEK,), {"temperature": 0})
    assert load_routes({"math": route})["math"] is route


def test_a_table_is_taken_as_given_and_can_be_the_base_of_another():
    table = load_routes({"math": [DEEPSEEK]})
    assert load_routes(table) is table
    stacked = RouteTable({"code": [GPT41]}, base=table)
    assert stacked["math"].models == (DEEPSEEK,) and stacked["code"].models == (GPT41,)


def test_a_table_without_a_base_needs_every_task():
    full = {task: [GPT] for task in TASKS}
    assert RouteTable(full)["math"].params == {}
    del full["long_context"]
    with pytest.raises(ValueError, match="routes has no route for long_context"):
        RouteTable(full)


def test_routes_from_a_file_with_or_without_the_routes_key(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"routes": {"general": [DEEPSEEK, GPT]}}))
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"code": {"models": [SONNET], "params": {"seed": 1}}}))
    assert load_routes(str(wrapped))["general"].models == (DEEPSEEK, GPT)
    assert load_routes(bare)["code"].params["seed"] == 1
    table = RouteTable.from_file(bare, base=default_routes())
    assert table["code"].models == (SONNET,) and table["math"] == default_routes()["math"]


def test_an_error_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": {"math": [OPUS, OPUS]}}))
    with pytest.raises(ValueError, match=r"route 'math' in .*routes\.json lists a model twice"):
        load_routes(path)


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ("", "is not valid JSON"),
    ("[1, 2]", "must map task names to routes"),
])
def test_a_bad_file_is_a_value_error_naming_it(tmp_path, content, message):
    path = tmp_path / "routes.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        RouteTable.from_file(path, base=default_routes())
    assert "routes.json" in str(info.value)


def test_a_missing_file_or_a_directory_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read routes file .*missing\.json"):
        load_routes(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="cannot read routes file"):
        RouteTable.from_file(tmp_path)


# Bad specs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("routes, message", [
    ({"maths": [OPUS]}, r"unknown task 'maths' in routes; known tasks: code, math"),
    ({"math": []}, r"route 'math' in routes has an empty model list"),
    ({"math": {"models": []}}, r"route 'math' in routes has an empty model list"),
    ({"math": OPUS}, r"route 'math' in routes must be a list of models or a dict"),
    ({"math": {"models": OPUS}}, r"route 'math' in routes: models must be a list of model names, "
                                 r"got 'claude-opus-4.6'"),
    ({"math": [OPUS, ""]}, r"route 'math' in routes: model names must be non-empty strings, "
                           r"got ''"),
    ({"code": [GPT, 5]}, r"route 'code' in routes: model names must be non-empty strings, got 5"),
    ({"math": [OPUS, GPT, OPUS]}, r"route 'math' in routes lists a model twice: "
                                  r"\['claude-opus-4.6', 'gpt-5.4', 'claude-opus-4.6'\]"),
    ({"math": {"models": [OPUS], "temperature": 0}}, r"route 'math' in routes has unknown "
                                                     r"key\(s\) temperature"),
    ({"math": {"models": [OPUS], "preset": "nope"}}, r"unknown preset"),
    ({"math": {"models": [OPUS], "params": [1]}}, r"route 'math' in routes: params must be a dict"),
    ({"math": {"models": [OPUS], "params": {1: 2}}}, r"route 'math' in routes: param names must "
                                                     r"be strings"),
    ({"math": {"params": {"temperature": float("nan")}}}, r"route 'math' in routes: param "
                                                          r"'temperature' must be finite"),
    ({"math": {"params": {"stop": [float("inf")]}}}, r"param 'stop' must be finite"),
    ({"math": Route("code", (GPT,), {})}, r"route 'math' in routes is a Route for 'code'"),
])
def test_bad_specs_are_value_errors_naming_the_task_and_model(routes, message):
    with pytest.raises(ValueError, match=message):
        load_routes(routes)


def test_params_nested_past_any_sane_depth_are_refused():
    deep = current = {}
    for _ in range(40):
        current["x"] = {}
        current = current["x"]
    with pytest.raises(ValueError, match="route 'math' in routes: param 'deep' is nested too "
                                         "deeply"):
        load_routes({"math": {"params": {"deep": deep}}})


def test_a_new_route_without_models_and_no_base_route_is_refused():
    with pytest.raises(ValueError, match="route 'math' in routes needs a 'models' list"):
        RouteTable({"math": {"preset": "chat"}})


@pytest.mark.parametrize("build, message", [
    (lambda: Route("nope", (GPT,), {}), r"unknown task 'nope' in Route"),
    (lambda: Route("math", (), {}), r"route 'math' in Route has an empty model list"),
    (lambda: Route("math", (GPT, GPT), {}), r"route 'math' in Route lists a model twice"),
    (lambda: Route("math", (GPT,), [("a", 1)]), r"Route params must be a mapping"),
    (lambda: load_routes(42), r"routes must map task names to routes"),
    (lambda: RouteTable({}, base={"math": [GPT]}), r"base must be a RouteTable"),
    (lambda: RouteTable({}, where=3), r"where must be a string"),
    (lambda: RouteTable.from_file(3), r"path must be a file path"),
])
def test_bad_arguments_are_value_errors_naming_them(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_repr_shows_each_route_in_one_line():
    text = repr(default_routes())
    assert text.startswith("RouteTable(code=") and "\n" not in text
    assert "math=claude-opus-4.6→gpt-5.4→deepseek-v3.2" in text
