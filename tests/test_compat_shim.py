"""llmroute.compat on its own (no openai needed): options, errors, routing, streams, dumps."""
from __future__ import annotations

import socket
import subprocess
import sys
import warnings

import pytest

import llmroute
from llmroute import compat
from llmroute.compat.client import DEFAULT_TIMEOUT
from llmroute.compat.errors import translate
from llmroute.compat.models import ChatCompletion
from llmroute.testing import FakeGateway, Reply

KEY = "sk-test-shim-0123456789"
MODEL = "gpt-5.4"
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def shim(gw):
    with compat.OpenAI(base_url=gw.base_url, api_key=KEY) as client:
        yield client


def _raises(client, **kwargs):
    with pytest.raises(compat.OpenAIError) as info:
        client.chat.completions.create(model=kwargs.pop("model", MODEL),
                                       messages=kwargs.pop("messages", MESSAGES), **kwargs)
    return info.value


# -- what is not covered says so ----------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "embeddings", "responses", "with_raw_response", "with_streaming_response", "beta", "files",
    "images", "audio", "moderations", "models", "batches", "fine_tuning", "completions",
    "chat.with_raw_response", "chat.completions.with_raw_response", "chat.completions.parse",
    "chat.completions.stream", "chat.completions.retrieve",
])
def test_uncovered_parts_raise_not_implemented_naming_themselves(shim, path):
    obj = shim
    *parents, last = path.split(".")
    for part in parents:
        obj = getattr(obj, part)
    with pytest.raises(NotImplementedError, match=last):
        getattr(obj, last)


def test_unknown_attribute_is_an_attribute_error(shim):
    with pytest.raises(AttributeError):
        shim.chatt
    with pytest.raises(AttributeError):
        shim.chat.completions.creat


@pytest.mark.parametrize("kwargs, name", [({"http_client": object()}, "http_client"),
                                          ({"default_query": {"a": 1}}, "default_query")])
def test_unsupported_constructor_options_raise_not_implemented(gw, kwargs, name):
    with pytest.raises(NotImplementedError, match=name):
        compat.OpenAI(base_url=gw.base_url, api_key=KEY, **kwargs)


def test_extra_query_and_pydantic_response_format_are_refused(shim, gw):
    with pytest.raises(NotImplementedError, match="extra_query"):
        shim.chat.completions.create(model=MODEL, messages=MESSAGES, extra_query={"a": "b"})
    with pytest.raises(TypeError, match="parse"):
        shim.chat.completions.create(model=MODEL, messages=MESSAGES, response_format=dict)
    assert gw.requests == []


# -- configuration ------------------------------------------------------------------------------

def test_env_variables_configure_it_and_the_key_never_shows(monkeypatch):
    with FakeGateway(api_key=KEY) as gw:  # answers 401 unless the key from the env is sent
        monkeypatch.setenv("OPENAI_BASE_URL", gw.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        client = compat.OpenAI()
        assert client.base_url == gw.base_url + "/"
        assert client.max_retries == 2
        assert KEY not in repr(client)
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        client.close()
    assert completion.choices[0].finish_reason == "stop"


def test_missing_key_is_an_openai_error_and_a_config_error():
    with pytest.raises(compat.OpenAIError) as info:
        compat.OpenAI(base_url="http://127.0.0.1:9/v1")
    assert isinstance(info.value, llmroute.ConfigError) and isinstance(info.value, ValueError)
    assert "api_key" in str(info.value)


def test_default_base_url_is_openais():
    client = compat.OpenAI(api_key=KEY)
    assert client.base_url == "https://api.openai.com/v1/"


@pytest.mark.parametrize("value", [True, -1, 1.5, None, "2"])
def test_bad_max_retries_is_a_value_error(value):
    with pytest.raises(ValueError, match="max_retries"):
        compat.OpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1", max_retries=value)


class _HttpxLikeTimeout:
    def __init__(self, connect, read):
        self.connect, self.read = connect, read


@pytest.mark.parametrize("timeout, expected", [
    (3, (3.0, 3.0)), (2.5, (2.5, 2.5)), ((1.0, 30.0), (1.0, 30.0)),
    (_HttpxLikeTimeout(2.0, 40.0), (2.0, 40.0)),
])
def test_timeout_forms(timeout, expected):
    assert compat.OpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1",
                         timeout=timeout).timeout == expected


def test_timeout_none_means_the_default_with_one_warning():
    with pytest.warns(RuntimeWarning, match="not unbounded") as caught:
        client = compat.OpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1", timeout=None)
    assert client.timeout == DEFAULT_TIMEOUT
    assert caught[0].filename == __file__
    with pytest.raises(ValueError, match="timeout"):
        compat.OpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1", timeout=True)


def test_per_call_timeout_none_warns_and_still_bounds_the_call(shim, gw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shim.chat.completions.create(model=MODEL, messages=MESSAGES, timeout=None)
    assert [w.category for w in caught] == [RuntimeWarning]


def test_client_option_rejects_competing_settings(gw):
    base = llmroute.Client(gw.base_url, KEY)
    with pytest.raises(ValueError, match="max_retries"):
        compat.OpenAI(client=base, max_retries=3)
    shim = compat.OpenAI(client=base)
    assert shim.client is base
    with pytest.raises(NotImplementedError, match="with_options"):
        shim.with_options(max_retries=0)
    base.close()


def test_headers_organization_project_and_extra_headers_are_sent(gw):
    client = compat.OpenAI(base_url=gw.base_url, api_key=KEY, organization="org-1",
                           project="proj-1", default_headers={"X-Team": "search"})
    client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                   extra_headers={"X-Call": "7"})
    request = gw.requests[0]
    assert (request.header("OpenAI-Organization"), request.header("OpenAI-Project"),
            request.header("X-Team"), request.header("X-Call")) == ("org-1", "proj-1", "search",
                                                                    "7")
    client.close()


def test_sentinels_are_dropped_and_extra_body_is_merged(shim, gw):
    shim.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=compat.NOT_GIVEN,
                                 top_p=compat.omit, extra_body={"top_k": 5}, seed=3)
    assert gw.requests[0].json == {"model": MODEL, "messages": MESSAGES, "top_k": 5, "seed": 3}


# -- retries, limits, costs come with it --------------------------------------------------------

def test_max_retries_zero_does_not_retry(gw):
    client = compat.OpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0)
    gw.script(MODEL, Reply(status=503), "never reached")
    err = _raises(client)
    assert isinstance(err, compat.InternalServerError) and err.status_code == 503
    assert [r.answered_status for r in gw.requests] == [503]
    client.close()


def test_default_max_retries_is_two_more_tries(shim, gw):
    gw.script(MODEL, *[Reply(status=500, headers={"retry-after-ms": "1"})] * 3, "late")
    err = _raises(shim)
    assert isinstance(err, compat.InternalServerError)
    assert isinstance(err, llmroute.InternalServerError)
    assert [r.answered_status for r in gw.requests] == [500, 500, 500]


def test_with_options_shares_the_pool_and_changes_retries(shim, gw):
    quick = shim.with_options(max_retries=0, timeout=3)
    assert quick.client.session is shim.client.session
    assert (quick.max_retries, quick.timeout, shim.max_retries) == (0, (3.0, 3.0), 2)
    gw.script(MODEL, Reply(status=429, headers={"retry-after-ms": "1"}))
    err = _raises(quick)
    assert isinstance(err, compat.RateLimitError) and isinstance(err, llmroute.RateLimitError)
    assert err.retry_after == pytest.approx(0.001)


def test_long_retry_after_raises_at_once_with_retry_after(shim, gw):
    gw.script(MODEL, Reply(status=429, headers={"Retry-After": "3600"}), "never reached")
    err = _raises(shim)
    assert isinstance(err, compat.RateLimitError)
    assert err.retry_after == 3600 and err.status_code == 429
    assert len(gw.requests) == 1


def test_tracker_and_limiter_extras_see_the_call(gw):
    tracker = llmroute.CostTracker()
    limiter = llmroute.RateLimiter(rpm=600, tpm=1_000_000)
    client = compat.OpenAI(base_url=gw.base_url, api_key=KEY, tracker=tracker, limiter=limiter)
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20)
    snap = tracker.snapshot()
    assert snap.total_cost_usd == completion.llmroute.cost_usd > 0
    client.close()


def test_deadline_extra_bounds_a_slow_call(shim, gw):
    gw.script(MODEL, Reply(content="slow", delay=2.0))
    err = _raises(shim, deadline=0.3)
    assert isinstance(err, compat.APITimeoutError)
    assert isinstance(err, compat.APIConnectionError) and isinstance(err, llmroute.APITimeoutError)
    assert not hasattr(err, "status_code")


def test_connection_refused_is_an_api_connection_error():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    client = compat.OpenAI(base_url="http://127.0.0.1:%d/v1" % port, api_key=KEY, max_retries=0)
    err = _raises(client)
    assert type(err) is compat.APIConnectionError
    assert isinstance(err, llmroute.APIConnectionError)
    assert err.body is None and err.request is None


# -- routing ------------------------------------------------------------------------------------

def test_model_auto_routes_through_a_router(shim, gw):
    completion = shim.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Solve the equation 2x + 3 = 11"}])
    assert completion.llmroute.task.value == "math"
    assert completion.model == gw.requests[0].model == completion.llmroute.model
    assert completion.model != "auto"
    assert completion.choices[0].message.content.startswith("[fake:")


def test_model_auto_takes_router_options_and_others_do_not(shim, gw):
    completion = shim.chat.completions.create(model="auto", messages=MESSAGES, task="code")
    assert completion.llmroute.task.value == "code"
    with pytest.raises(ValueError, match="task"):
        shim.chat.completions.create(model=MODEL, messages=MESSAGES, task="code")
    with pytest.raises(NotImplementedError, match="stream"):
        shim.chat.completions.create(model="auto", messages=MESSAGES, stream=True)


def test_router_option_is_used_for_auto(gw):
    base = llmroute.Client(gw.base_url, KEY)
    router = llmroute.Router(base, routes={"general": ["deepseek-v3.2"]})
    shim = compat.OpenAI(client=base, router=router)
    completion = shim.chat.completions.create(model="auto", messages=MESSAGES)
    assert completion.model == "deepseek-v3.2" and shim.router is router
    base.close()


# -- answers ------------------------------------------------------------------------------------

def test_fields_the_server_sent_survive(shim, gw):
    body = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": MODEL,
            "system_fingerprint": "fp_1", "service_tier": "default", "gateway_extra": {"a": None},
            "choices": [{"index": 0, "finish_reason": "stop",
                         "logprobs": {"content": [{"token": "hi", "logprob": -0.1, "bytes": None,
                                                   "top_logprobs": []}]},
                         "message": {"role": "assistant", "content": "hi", "refusal": None}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4,
                      "prompt_tokens_details": {"cached_tokens": 2}}}
    gw.script(MODEL, Reply(json=body))
    completion = shim.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.system_fingerprint == "fp_1"
    assert completion.choices[0].logprobs.content[0].logprob == -0.1
    assert completion.usage.prompt_tokens_details.cached_tokens == 2
    assert completion.gateway_extra == {"a": None}
    assert completion.to_dict() == body
    dumped = completion.model_dump(exclude_none=True)
    assert "refusal" not in dumped["choices"][0]["message"]
    assert "bytes" not in dumped["choices"][0]["logprobs"]["content"][0]
    assert dumped["gateway_extra"] == {"a": None}  # plain dict values are left as sent
    assert completion.model_dump()["choices"][0]["message"]["tool_calls"] is None
    assert ChatCompletion.construct(body) == ChatCompletion.construct(body)
    assert completion.llmroute.cost_usd is not None
    with pytest.raises(NotImplementedError, match="mode"):
        completion.model_dump(mode="json")


def test_tool_arguments_that_are_not_json_are_handed_over_as_openai_does(shim, gw):
    gw.script(MODEL, Reply(tool_calls=[{"function": {"name": "f", "arguments": "{not json"}}]))
    completion = shim.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.tool_calls[0].function.arguments == "{not json"


def test_a_returned_message_object_can_be_sent_back(shim, gw):
    gw.script(MODEL, Reply(tool_calls=[{"id": "call_1", "function": {
        "name": "get_weather", "arguments": {"city": "Seoul"}}}]), "It is sunny.")
    first = shim.chat.completions.create(model=MODEL, messages=MESSAGES)
    message = first.choices[0].message
    followup = MESSAGES + [message, {"role": "tool", "tool_call_id": "call_1",
                                     "content": '{"celsius": 21}'}]
    second = shim.chat.completions.create(model=MODEL, messages=followup)
    assert second.choices[0].message.content == "It is sunny."
    sent = gw.requests[1].json["messages"][1]
    assert sent["role"] == "assistant" and sent["tool_calls"][0]["id"] == "call_1"


def test_stream_yields_content_then_tool_calls_and_finish(shim, gw):
    gw.script(MODEL, Reply(content="Checking.", tool_calls=[{"id": "call_9", "function": {
        "name": "get_weather", "arguments": {"city": "Seoul"}}}]))
    with shim.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    calls = [t for c in chunks for t in (c.choices[0].delta.tool_calls or ())]
    assert text == "Checking."
    assert [(t.id, t.function.name, t.function.arguments) for t in calls] == [
        ("call_9", "get_weather", '{"city":"Seoul"}')]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert stream.llmroute.result().cost_usd is not None


def test_a_cut_stream_raises_the_shims_connection_error(shim, gw):
    gw.script(MODEL, Reply(stream_chunks=["one ", "two ", "three"], cut_after=2))
    stream = shim.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    seen = []
    with pytest.raises(compat.APIConnectionError) as info:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert isinstance(info.value, llmroute.StreamInterruptedError)
    assert info.value.partial_text == "one two "
    assert seen[1:] == ["one ", "two "]


# -- the error table ----------------------------------------------------------------------------

def _status(cls, status, body='{"error": {"message": "nope", "type": "t", "code": "c"}}'):
    return cls("HTTP %d: nope" % status, status_code=status, body=body, request_id="req_1",
               retry_after=2.0, headers={"retry-after": "2"})


@pytest.mark.parametrize("error, shim_class, core_class", [
    (_status(llmroute.BadRequestError, 400), compat.BadRequestError, llmroute.BadRequestError),
    (_status(llmroute.ContextLengthExceededError, 400), compat.BadRequestError,
     llmroute.ContextLengthExceededError),
    (_status(llmroute.PermissionDeniedError, 403), compat.PermissionDeniedError,
     llmroute.PermissionDeniedError),
    (_status(llmroute.NotFoundError, 404), compat.NotFoundError, llmroute.NotFoundError),
    (_status(llmroute.APIStatusError, 409), compat.ConflictError, llmroute.APIStatusError),
    (_status(llmroute.APIStatusError, 418), compat.APIStatusError, llmroute.APIStatusError),
    (_status(llmroute.RateLimitError, 429), compat.RateLimitError, llmroute.RateLimitError),
    (_status(llmroute.InternalServerError, 502), compat.InternalServerError,
     llmroute.InternalServerError),
    (llmroute.APITimeoutError("timed out"), compat.APITimeoutError, llmroute.APITimeoutError),
    (llmroute.StreamInterruptedError("cut", partial_text="ab"), compat.APIConnectionError,
     llmroute.StreamInterruptedError),
    (llmroute.RateLimitTimeout("wait too long"), compat.RateLimitError, llmroute.RateLimitTimeout),
    (llmroute.InvalidResponseError("no choices"), compat.APIResponseValidationError,
     llmroute.InvalidResponseError),
    (llmroute.AllModelsFailedError("all failed", errors=[("m", "x")]), compat.APIError,
     llmroute.AllModelsFailedError),
    (llmroute.BudgetExceededError("over"), compat.OpenAIError, llmroute.BudgetExceededError),
    (llmroute.ToolCallError("bad arguments", raw="{x", name="f"), compat.APIResponseValidationError,
     llmroute.ToolCallError),
    (llmroute.ConfigError("no key"), compat.OpenAIError, ValueError),
])
def test_translate_keeps_both_identities_and_every_attribute(error, shim_class, core_class):
    new = translate(error)
    assert isinstance(new, shim_class) and isinstance(new, core_class)
    for name, value in vars(error).items():
        assert getattr(new, name) == value or name in ("body",)
    if isinstance(error, llmroute.APIStatusError):
        assert new.body == {"message": "nope", "type": "t", "code": "c"}
        assert new.message == str(new) == "Error code: %d - nope" % error.status_code
        assert (new.code, new.type, new.param) == ("c", "t", None)
        assert new.request_id == "req_1" and new.retry_after == 2.0
        assert new.response is None and new.request is None
    assert translate(new) is new


class _HouseNotFound(llmroute.NotFoundError):
    """A subclass llmroute's table does not know (as dialects' ModelNotFoundError)."""


def test_translate_picks_openais_class_by_status_and_keeps_the_subclass():
    new = translate(_status(_HouseNotFound, 400))
    assert isinstance(new, compat.BadRequestError)  # openai decides by status
    assert isinstance(new, _HouseNotFound) and isinstance(new, llmroute.NotFoundError)
    assert type(new).__name__ == "_HouseNotFound"
    assert type(translate(_status(_HouseNotFound, 400))) is type(new)  # made once
    assert isinstance(translate(_status(_HouseNotFound, 404)), compat.NotFoundError)
    assert isinstance(translate(_status(llmroute.RateLimitError, 503)), compat.InternalServerError)


def test_translate_keeps_a_non_json_body_as_text():
    new = translate(_status(llmroute.InternalServerError, 502, body=" <html>bad gateway</html> "))
    assert new.body == "<html>bad gateway</html>" and new.message == "Error code: 502"
    assert new.code is None


def test_the_core_never_imports_compat():
    code = ("import sys, llmroute, llmroute.router, llmroute.stream, llmroute.structured; "
            "print('llmroute.compat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_a_timeout_object_with_a_none_part_takes_the_default_for_it():
    with pytest.warns(RuntimeWarning):
        client = compat.OpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1",
                               timeout=_HttpxLikeTimeout(2.0, None))
    assert client.timeout == (2.0, DEFAULT_TIMEOUT[1])


def test_the_timeout_warning_points_at_the_callers_line(shim, gw):
    with pytest.warns(RuntimeWarning) as caught:
        shim.chat.completions.create(model=MODEL, messages=MESSAGES, timeout=None)
    assert caught[0].filename == __file__


def test_one_shim_shared_by_threads_makes_one_router_and_one_pool(shim, gw):
    import concurrent.futures

    def ask(i):
        return shim.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "Say hello %d" % i}])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        completions = list(pool.map(ask, range(16)))
    assert len({id(c.llmroute) for c in completions}) == 16
    # Every call went through the same router: its health board saw all sixteen.
    assert sum(stats.count for stats in shim.router.stats().values()) == 16
    pools = shim.client.session.get_adapter(shim.client.base_url).poolmanager.pools
    opened = sum(pools[key].num_connections for key in pools.keys())
    assert len(gw.requests) == 16 and 1 <= opened <= 8


def test_with_options_copies_share_one_router(shim, gw):
    quick = shim.with_options(max_retries=0)
    assert quick.router is shim.router


@pytest.mark.parametrize("timeout, expected", [
    (compat.Timeout(10.0), (10.0, 10.0)),
    (compat.Timeout(60.0, connect=2.0), (2.0, 60.0)),
])
def test_openai_style_timeout_objects(timeout, expected):
    assert compat.OpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1",
                         timeout=timeout).timeout == expected
    assert "connect=" in repr(timeout)


def test_a_timeout_object_without_limits_warns_and_takes_the_default():
    with pytest.warns(RuntimeWarning):
        client = compat.OpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1",
                               timeout=compat.Timeout(None))
    assert client.timeout == DEFAULT_TIMEOUT


def test_compat_reads_no_private_attribute_of_another_module():
    """The shim is built on the public API of Client, Router, ChatResult, ChatStream, errors."""
    import ast
    import pathlib

    folder = pathlib.Path(compat.__file__).parent
    problems = []
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        own = {node.attr for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)}
        own |= {node.name for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        problems += ["%s:%d reads .%s" % (path.name, node.lineno, node.attr)
                     for node in ast.walk(tree)
                     if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                     and not node.attr.startswith("__") and node.attr not in own]
    assert problems == []
