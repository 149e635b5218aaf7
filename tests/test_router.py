"""Router against the real FakeGateway on 127.0.0.1: routes, fallbacks, budgets, windows."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

import llmroute
from llmroute import errors
from llmroute.costs import Budget, CostTracker
from llmroute.health import CooldownPolicy
from llmroute.retry import RetryPolicy
from llmroute.router import RouteResult, Router
from llmroute.routes import TASKS, RouteTable, default_routes, load_routes
from llmroute.testing import FakeGateway, Reply
from llmroute import _candidates

OPUS, GPT, SONNET, GPT41, FLASH, DEEPSEEK = (
    "claude-opus-4.6", "gpt-5.4", "claude-sonnet-4.5", "gpt-4.1", "gemini-2.5-flash",
    "deepseek-v3.2")
KOREAN_MATH = "방정식 2x + 3 = 11을 풀어 주세요. 풀이 과정도 보여 주세요."
CONTEXT_ERROR = Reply(status=400, content="This model's maximum context length is 200000 "
                                          "tokens. However, your messages resulted in 210000.")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture
def gw():
    with FakeGateway() as gateway:
        yield gateway


@pytest.fixture
def client(gw, clock):
    with llmroute.Client(gw.base_url, "sk-test-key-123456",
                         retry=RetryPolicy(max_retries=1, initial_delay=0, jitter=0),
                         tracker=CostTracker(), clock=clock, sleep=clock.sleep) as c:
        yield c


def models_sent(gw):
    return [r.model for r in gw.requests]


class StubClassifier:
    """Says every prompt is ``general`` with one cue, so tests see the router's own rules."""

    def __init__(self):
        self.calls = []

    def classify(self, text=None, *, tools=None, messages=None):
        from llmroute.classification import Classification, TaskType
        self.calls.append((text, tools, messages))
        return Classification(TaskType.GENERAL, 0.5, {}, ("general:stub",))


# Classification --------------------------------------------------------------------------------
def test_korean_math_prompt_goes_to_opus_first_in_route(gw, client):
    result = Router(client).complete(KOREAN_MATH)
    assert isinstance(result, RouteResult) and isinstance(result, llmroute.ChatResult)
    assert result.model == OPUS and result.task == "math"
    assert result.routed_via == "primary" and result.tried == ()
    assert result.classification.task == "math"
    assert result.reason.startswith("math prompt (matched: ")
    assert result.reason.endswith("→ claude-opus-4.6, first in route")
    assert models_sent(gw) == [OPUS]
    body = gw.requests[0].json
    assert body["messages"] == [{"role": "user", "content": KOREAN_MATH}]
    assert body["max_tokens"] == 8192 and body["thinking"]["budget_tokens"] == 4096


def test_tools_route_to_function_calling_whatever_the_text_says(gw, client):
    stub = StubClassifier()
    result = Router(client, classifier=stub).complete("what's the weather in Seoul?",
                                                      tools=TOOLS)
    assert result.task == "function_calling" and result.model == GPT
    assert stub.calls[0][1] == TOOLS
    body = gw.requests[0].json
    assert body["tools"] == TOOLS and body["tool_choice"] == "auto" and body["max_tokens"] == 1024


def test_given_task_skips_the_classifier_and_accepts_the_enum(gw, client):
    from llmroute.classification import TaskType
    stub = StubClassifier()
    router = Router(client, classifier=stub)
    assert router.complete("x", task=TaskType.CODE).model == GPT
    result = router.complete("x", task="summarization")
    assert result.model == FLASH and result.classification is None
    assert result.reason == "task summarization (given) → gemini-2.5-flash, first in route"
    assert stub.calls == []


@pytest.mark.parametrize("task", ["maths", "", 3, "GENERAL"])
def test_unknown_task_is_a_value_error(client, task):
    with pytest.raises(ValueError, match="unknown task"):
        Router(client).complete("hi", task=task)


@pytest.mark.parametrize("prompt", ["", "   ", [], [{"content": "no role"}], b"bytes", None])
def test_bad_prompt_is_a_value_error(gw, client, prompt):
    with pytest.raises(ValueError):
        Router(client).complete(prompt, task="general")
    assert gw.requests == []


# Fallbacks ----------------------------------------------------------------------------------------
def test_opus_503_on_every_try_falls_back_to_the_next_model(gw, client, caplog):
    gw.script(OPUS, Reply(status=503), Reply(status=503))
    with caplog.at_level(logging.WARNING, logger="llmroute.router"):
        result = Router(client).complete("prove it", task="math")
    assert result.model == GPT and result.routed_via == "fallback"
    assert [m for m, _ in result.tried] == [OPUS]
    assert "InternalServerError" in result.tried[0][1] and "503" in result.tried[0][1]
    assert "fallback after claude-opus-4.6 (InternalServerError 503)" in result.reason
    assert models_sent(gw) == [OPUS, OPUS, GPT]  # one retry, then the next model
    fallback_lines = [r for r in caplog.records if r.name == "llmroute.router"]
    assert len(fallback_lines) == 1 and fallback_lines[0].levelno == logging.WARNING
    assert client.tracker.snapshot().by_model[OPUS].errors == 1


@pytest.mark.parametrize("reply, error", [
    (Reply(status=404, body='{"detail": "Not Found"}'), "NotFoundError"),  # a wrong path
    (Reply(status=404), "ModelNotFoundError"),
    (Reply(status=200, body="<html>oops</html>"), "InvalidResponseError"),
    (Reply(drop=True), "APIConnectionError"),
    (Reply(status=429, headers={"Retry-After": "600"}), "RateLimitError"),
])
def test_failures_another_model_may_not_share_fall_back(gw, client, reply, error):
    gw.script(GPT, reply, reply)
    result = Router(client).complete("hello", task="general")
    assert result.model == GPT41 and result.routed_via == "fallback"
    assert result.tried[0][0] == GPT and result.tried[0][1].startswith(error)


@pytest.mark.parametrize("status, error", [
    (401, errors.AuthenticationError), (403, errors.PermissionDeniedError),
    (400, errors.BadRequestError), (422, errors.UnprocessableEntityError),
])
def test_errors_every_model_would_share_are_raised_at_once(gw, client, status, error):
    gw.script(OPUS, Reply(status=status))
    router = Router(client)
    with pytest.raises(error) as caught:
        router.complete("prove it", task="math")
    assert caught.value.status_code == status
    assert models_sent(gw) == [OPUS]  # no retry, no second model
    assert router.health()[OPUS].state == "ok" and router.health()[OPUS].failures == 0


def test_all_models_failed_lists_each_model_with_its_error_or_skip(gw, client):
    routes = {"general": [GPT, GPT41, "mystery-model"]}
    gw.script(GPT, Reply(status=503), Reply(status=503))
    gw.script(GPT41, Reply(status=502), Reply(status=502))
    router = Router(client, routes=routes)
    with pytest.raises(errors.AllModelsFailedError) as caught:
        router.complete("hi", task="general", max_cost_usd="1")
    err = caught.value
    assert [m for m, _ in err.errors] == [GPT, GPT41, "mystery-model"]
    assert isinstance(err.errors[0][1], errors.InternalServerError)
    assert isinstance(err.errors[1][1], errors.InternalServerError)
    assert "no price" in err.errors[2][1]
    for model in (GPT, GPT41, "mystery-model"):
        assert model in str(err)
    assert models_sent(gw) == [GPT, GPT, GPT41, GPT41]


def test_context_length_error_moves_to_a_model_with_a_larger_window(gw, client):
    gw.script(GPT, CONTEXT_ERROR)
    router = Router(client, routes={"long_context": [GPT, SONNET, FLASH]})
    result = router.complete("read this", task="long_context")
    assert result.model == FLASH and result.routed_via == "context_fit"
    assert [m for m, _ in result.tried] == [GPT, SONNET]
    assert "ContextLengthExceededError" in result.tried[0][1]
    assert "not larger" in result.tried[1][1]  # same 200K window: it would overflow too
    assert models_sent(gw) == [GPT, FLASH]
    assert router.health()[GPT].state == "ok"  # the prompt was too long, not the model unwell


def test_prompt_too_long_for_a_128k_model_never_reaches_it(gw, client):
    prompt = "word " * 130_000  # 130K tokens by the estimate (one per 4-letter word)
    router = Router(client, routes={"summarization": [DEEPSEEK, FLASH]})
    result = router.complete(prompt, task="summarization")
    assert result.model == FLASH and result.routed_via == "context_fit"
    assert result.tried[0][0] == DEEPSEEK and "128000-token window" in result.tried[0][1]
    assert models_sent(gw) == [FLASH]


def test_max_tokens_counts_toward_the_window(gw, client):
    # ~110K prompt + 8192 output needs 118K > 90% of 128K = 115.2K; at 1024 it fits.
    prompt = "word " * 110_000
    router = Router(client, routes={"general": [DEEPSEEK, FLASH]})
    assert router.complete(prompt, task="general", max_tokens=8192).model == FLASH
    assert router.complete(prompt, task="general", max_tokens=1024).model == DEEPSEEK


# Costs --------------------------------------------------------------------------------------------
def test_call_over_max_cost_is_never_sent_to_the_expensive_model(gw, client):
    # math: max_tokens 8192 → worst case opus ≈ $0.295, gpt-5.4 ≈ $0.246, deepseek ≈ $0.0099
    result = Router(client).complete("prove it", task="math", max_cost_usd=Decimal("0.25"))
    assert result.model == GPT and result.routed_via == "budget"
    assert result.tried[0][0] == OPUS and "exceeds max_cost_usd $0.25" in result.tried[0][1]
    assert "budget after claude-opus-4.6" in result.reason
    assert models_sent(gw) == [GPT]


def test_router_wide_cap_and_per_call_cap(gw, client):
    router = Router(client, max_cost_usd="0.01")
    assert router.complete("prove it", task="math").model == DEEPSEEK
    assert router.complete("prove it", task="math", max_cost_usd=1).model == OPUS
    assert models_sent(gw) == [DEEPSEEK, OPUS]


def test_cap_below_every_model_raises_budget_exceeded_and_sends_nothing(gw, client):
    with pytest.raises(errors.BudgetExceededError, match="nothing was sent") as caught:
        Router(client).complete("prove it", task="math", max_cost_usd="0.0001")
    assert caught.value.limit_usd == Decimal("0.0001")
    assert gw.requests == []


def test_spent_budget_raises_before_any_request(gw, client):
    budget = Budget("1.00")
    budget.charge("1.00")
    with pytest.raises(errors.BudgetExceededError):
        Router(client, budget=budget).complete("hello", task="general")
    assert gw.requests == []
    assert budget.spent_usd == Decimal("1.00")


def test_budget_holds_the_worst_case_and_commits_the_actual_cost(gw, client):
    budget = Budget("0.25")  # too little for opus's worst case, enough for gpt-5.4's
    result = Router(client, budget=budget).complete("prove it", task="math")
    assert result.model == GPT and result.routed_via == "budget"
    assert "over budget" in result.reason and "would be exceeded" in result.tried[0][1]
    assert budget.spent_usd == result.cost_usd
    assert budget.remaining_usd == Decimal("0.25") - result.cost_usd
    assert models_sent(gw) == [GPT]


def test_failed_model_releases_its_hold(gw, client):
    budget = Budget("5")
    gw.script(OPUS, Reply(status=503), Reply(status=503))
    result = Router(client, budget=budget).complete("prove it", task="math")
    assert result.model == GPT and budget.spent_usd == result.cost_usd


def test_unpriced_model_counts_as_over_any_cap(gw, client):
    router = Router(client, routes={"general": ["mystery-model", GPT41]})
    result = router.complete("hi", task="general", max_cost_usd="1")
    assert result.model == GPT41 and "no price" in result.tried[0][1]
    assert models_sent(gw) == [GPT41]
    assert Router(client, routes={"general": ["mystery-model"]}).complete(
        "hi", task="general").model == "mystery-model"  # no cap: unknown models still work


# Priorities ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("priority", ["fast", "", None, "BUDGET"])
def test_invalid_priority_is_a_value_error(client, priority):
    with pytest.raises(ValueError, match="priority must be one of"):
        Router(client, priority=priority)
    if priority is not None:
        with pytest.raises(ValueError, match="priority must be one of"):
            Router(client).complete("hi", task="general", priority=priority)


def test_budget_priority_picks_deepseek_for_summarization(gw, client):
    result = Router(client, priority="budget").complete("summarize: the cat sat.",
                                                        task="summarization")
    assert result.model == DEEPSEEK and result.routed_via == "primary"
    assert "cheapest (worst case $" in result.reason
    assert models_sent(gw) == [DEEPSEEK]


def test_accuracy_priority_puts_models_strong_at_the_task_first(gw, client):
    router = Router(client, routes={"long_context": [GPT, OPUS]}, priority="accuracy")
    result = router.complete("read", task="long_context")
    assert result.model == OPUS and "long_context is among its strengths" in result.reason
    assert Router(client, routes={"long_context": [GPT, OPUS]}).complete(
        "read", task="long_context").model == GPT  # balanced keeps the route's order


def test_speed_priority_uses_tokens_per_second_then_observed_p50(gw, client, clock):
    latency = {OPUS: 0.2, GPT: 0.9}
    gw.responder = lambda req: clock.advance(latency.get(req.model, 0)) or None
    router = Router(client, priority="speed")
    first = router.complete("prove it", task="math")
    assert first.model == GPT and "62 tok/s" in first.reason  # no data: 62 > 45 tok/s
    router.complete("prove it", task="math", priority="balanced")  # opus gets measured
    assert router.stats()[OPUS].p50_ms == pytest.approx(200)
    assert router.stats()[GPT].p50_ms == pytest.approx(900)
    second = router.complete("prove it", task="math")
    assert second.model == OPUS and "fastest observed (p50 200 ms)" in second.reason


def test_order_candidates_by_speed_prefers_measurements_to_catalog_claims():
    route = default_routes()["math"]
    catalog = llmroute.Catalog.default()
    cands = _candidates.build_candidates(route, {}, [{"role": "user", "content": "x"}], 10,
                                         catalog, None)
    order = lambda p50s: [c.model for c in _candidates.order_candidates(
        cands, "speed", "math", p50s)[0]]
    assert order({}) == [GPT, OPUS, DEEPSEEK]  # 62, 45 tok/s, then unknown in route order
    assert order({DEEPSEEK: 900.0}) == [DEEPSEEK, GPT, OPUS]
    assert order({OPUS: 300.0, DEEPSEEK: 100.0}) == [DEEPSEEK, OPUS, GPT]


# Params -------------------------------------------------------------------------------------------
def test_caller_params_override_the_preset(gw, client):
    router = Router(client)
    router.complete("write a parser", task="code", temperature=0.9, max_tokens=100,
                    top_p=None, seed=7)
    body = gw.requests[0].json
    assert body["temperature"] == 0.9 and body["max_tokens"] == 100 and body["seed"] == 7
    assert "top_p" not in body  # None removes a preset param
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.1, 0.2)


def test_max_completion_tokens_replaces_the_preset_max_tokens(gw, client):
    Router(client).complete("hi", task="general", max_completion_tokens=50)
    body = gw.requests[0].json
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body


def test_route_params_a_model_cannot_use_are_not_sent(gw, client):
    router = Router(client)
    gw.script(OPUS, Reply(status=503), Reply(status=503))
    router.complete("prove it", task="math")
    opus, _, gpt = [r.json for r in gw.requests]
    assert "thinking" in opus and "thinking" not in gpt  # only models with the feature
    router.complete("extract the names", task="extraction")
    router.complete("extract the names as JSON", task="extraction")
    assert "response_format" not in gw.requests[-2].json
    assert gw.requests[-1].json["response_format"] == {"type": "json_object"}
    router.complete("hi", task="function_calling")
    assert "tool_choice" not in gw.requests[-1].json  # tool_choice without tools is a 400


def test_client_options_are_not_sent_as_params(gw, client):
    Router(client).complete("hi", task="general", timeout=5, idempotency_key="abc",
                            extra_headers={"X-Trace": "t1"}, deadline=30)
    request = gw.requests[0]
    assert not {"timeout", "idempotency_key", "extra_headers", "deadline"} & set(request.json)
    assert request.header("Idempotency-Key") == "abc" and request.header("X-Trace") == "t1"


def test_fallback_gets_its_own_idempotency_key(gw, client):
    gw.script(GPT, Reply(status=503), Reply(status=503))
    Router(client).complete("hi", task="general", idempotency_key="abc")
    assert [r.header("Idempotency-Key") for r in gw.requests] == ["abc", "abc", "abc:gpt-4.1"]


def test_model_lacking_a_feature_the_call_needs_is_skipped(gw, client):
    catalog = llmroute.Catalog([llmroute.ModelSpec("plain", features=()),
                                llmroute.ModelSpec("tooled", features=("tools",))])
    plain_client = llmroute.Client(gw.base_url, "sk-test-key-123456", catalog=catalog)
    router = Router(plain_client, routes={"function_calling": ["plain", "tooled"]})
    result = router.complete("weather?", task="function_calling", tools=TOOLS)
    assert result.model == "tooled" and "'tools'" in result.tried[0][1]
    assert models_sent(gw) == ["tooled"]


# Cooldown -----------------------------------------------------------------------------------------
def test_cooled_down_model_is_skipped_then_probed(gw, client, clock):
    router = Router(client, cooldown=CooldownPolicy(failures=2, window=60, cooldown=30))
    gw.script(GPT, *[Reply(status=503)] * 4)
    for _ in range(2):
        assert router.complete("hi", task="general").model == GPT41
    assert router.health()[GPT].state == "cooling"
    sent = len(gw.requests_for(GPT))
    result = router.complete("hi", task="general")
    assert result.model == GPT41 and "cooling down" in result.tried[0][1]
    assert len(gw.requests_for(GPT)) == sent
    clock.advance(30)
    assert router.health()[GPT].state == "probing"
    probe = router.complete("hi", task="general")
    assert probe.model == GPT and probe.routed_via == "primary"
    assert router.health()[GPT].state == "ok"


# Gateway dialects: unknown models, failures after the request was sent ---------------------------
LITELLM_UNKNOWN_MODEL = Reply(status=400, content=(
    "{'error': '/chat/completions: Invalid model name passed in model=gpt-5.4. Call "
    "`/v1/models` to view available models for your key.'}"))
OPENAI_UNKNOWN_MODEL = Reply(status=404)  # the fake sends OpenAI's model_not_found body


@pytest.mark.parametrize("reply, status", [(LITELLM_UNKNOWN_MODEL, 400),
                                           (OPENAI_UNKNOWN_MODEL, 404)])
def test_unknown_model_falls_back_and_is_skipped_for_a_cooldown(gw, client, clock, reply,
                                                                 status):
    router = Router(client, cooldown=CooldownPolicy(failures=3, window=60, cooldown=30))
    gw.script(GPT, reply)
    first = router.complete("hello", task="general")
    assert first.model == GPT41 and first.routed_via == "fallback"
    assert first.tried[0][0] == GPT and first.tried[0][1].startswith("ModelNotFoundError")
    assert "HTTP %d" % status in first.tried[0][1]
    assert router.health()[GPT].state == "cooling"  # at once, not after 3 failures
    second = router.complete("hello", task="general")
    assert second.model == GPT41 and "cooling down" in second.tried[0][1]
    assert models_sent(gw) == [GPT, GPT41, GPT41]  # no retry, never asked again while cooling
    clock.advance(30)
    assert router.complete("hello", task="general").model == GPT  # the probe finds it back


def test_unknown_model_error_keeps_the_real_status_code(gw, client):
    gw.script(GPT, LITELLM_UNKNOWN_MODEL)
    with pytest.raises(errors.ModelNotFoundError) as caught:
        client.chat(GPT, [{"role": "user", "content": "hi"}])
    assert isinstance(caught.value, errors.NotFoundError)
    assert caught.value.status_code == 400


def _worst_case(router, client, model, prompt="prove it", task="math"):
    messages = [{"role": "user", "content": prompt}]
    found = _candidates.build_candidates(router.routes[task], {}, messages,
                                         llmroute.estimate_tokens(messages), client.catalog, None)
    return next(c.worst_case for c in found if c.model == model)


@pytest.mark.parametrize("reply, error", [
    (Reply(status=200, body="<html>oops</html>"), "InvalidResponseError"),
    (Reply(status=200, json={"choices": []}), "InvalidResponseError"),
    (Reply(drop=True), "APIConnectionError"),
])
def test_failure_after_the_request_was_sent_falls_back_and_keeps_the_hold_at_worst_case(
        gw, client, reply, error):
    budget = Budget("5")
    router = Router(client, budget=budget)
    gw.script(OPUS, reply, reply)
    result = router.complete("prove it", task="math")
    assert result.model == GPT and result.routed_via == "fallback"
    assert result.tried[0][1].startswith(error)
    # The failed call may have been billed: its worst case stays booked beside the real cost.
    assert budget.spent_usd == _worst_case(router, client, OPUS) + result.cost_usd
    assert budget.remaining_usd == Decimal(5) - budget.spent_usd


def test_connection_errors_book_the_worst_case_only_if_the_request_may_have_been_sent(clock):
    import socket
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    budget = Budget("5")
    with llmroute.Client("http://127.0.0.1:%d/v1" % port, "sk-test-key-123456",
                         retry=RetryPolicy(max_retries=0), clock=clock,
                         sleep=clock.sleep) as refused:
        router = Router(refused, routes={"math": [OPUS, GPT]}, budget=budget)
        with pytest.raises(errors.AllModelsFailedError) as caught:
            router.complete("prove it", task="math")
        expected = Decimal(0)
        for model, err in caught.value.errors:
            assert isinstance(err, errors.APIConnectionError)
            if getattr(err, "request_sent", True):
                expected += _worst_case(router, refused, model)
    assert budget.spent_usd == expected
    assert budget.remaining_usd == Decimal(5) - expected  # nothing left held


def test_connection_error_that_never_reached_the_server_releases_the_hold():
    from llmroute.router import _maybe_billed
    refused = errors.APIConnectionError("connection refused")
    refused.request_sent = False
    sent = errors.APITimeoutError("read timeout")
    sent.request_sent = True
    assert not _maybe_billed(refused)
    assert _maybe_billed(sent)
    assert _maybe_billed(errors.APIConnectionError("no flag yet: assume sent"))
    assert _maybe_billed(errors.InvalidResponseError("2xx, bad body"))
    assert not _maybe_billed(errors.InternalServerError("503", status_code=503))


@pytest.mark.parametrize("reply", [Reply(drop=True), Reply(status=200, body="not json"),
                                   Reply(status=503)])
def test_router_adds_no_error_count_of_its_own(gw, client, reply):
    messages = [{"role": "user", "content": "prove it"}]
    gw.script(OPUS, reply, reply)
    with pytest.raises(errors.LLMRouteError):
        client.chat(OPUS, messages)
    direct = errors_of(client, OPUS)  # what the client itself counts for one failed call
    gw.script(OPUS, reply, reply)
    assert Router(client).complete("prove it", task="math").model == GPT
    assert errors_of(client, OPUS) == 2 * direct


def errors_of(client, model):
    totals = client.tracker.snapshot().by_model.get(model)
    return totals.errors if totals is not None else 0


# Routes -------------------------------------------------------------------------------------------
def test_default_table_follows_the_comparison():
    routes = default_routes()
    assert set(routes) == set(TASKS)
    first = {task: route.models[0] for task, route in routes.items()}
    assert first == {"math": OPUS, "long_context": OPUS, "creative_writing": OPUS,
                     "extraction": OPUS, "code": GPT, "function_calling": GPT, "general": GPT,
                     "summarization": FLASH}
    assert routes["long_context"].models == (OPUS, FLASH, GPT)
    assert all(len(route.models) >= 3 for route in routes.values())
    max_tokens = {task: route.params["max_tokens"] for task, route in routes.items()}
    assert max_tokens == {"math": 8192, "long_context": 4096, "code": 4096,
                          "function_calling": 1024, "general": 2048, "extraction": 2048,
                          "summarization": 1024, "creative_writing": 4096}
    assert "stop" not in routes["long_context"].params


@pytest.mark.parametrize("routes, message", [
    ({"maths": [OPUS]}, "unknown task 'maths'"),
    ({"math": []}, "empty model list"),
    ({"math": {"models": []}}, "empty model list"),
    ({"math": "claude-opus-4.6"}, "must be a list of models"),
    ({"math": [OPUS, ""]}, "non-empty strings"),
    ({"math": [OPUS, OPUS]}, "lists a model twice"),
    ({"math": {"models": [OPUS], "temperature": 0}}, "unknown key"),
    ({"math": {"models": [OPUS], "preset": "nope"}}, "unknown preset"),
    ({"math": {"models": [OPUS], "params": [1]}}, "params must be a dict"),
    ([OPUS], "must map task names"),
])
def test_route_validation_errors(client, routes, message):
    with pytest.raises(ValueError, match=message):
        Router(client, routes=routes)


def test_user_routes_replace_tasks_and_overlay_params():
    table = load_routes({"math": [DEEPSEEK],
                         "code": {"models": [GPT41], "params": {"temperature": 0, "top_p": None}},
                         "general": {"preset": "code_gen"}})
    assert table["math"].models == (DEEPSEEK,)
    assert table["math"].params["max_tokens"] == 8192  # a bare list keeps the task's params
    assert table["code"].params["temperature"] == 0 and "top_p" not in table["code"].params
    assert table["general"].models == (GPT, GPT41, DEEPSEEK)
    assert table["general"].params["frequency_penalty"] == 0.2
    assert table["summarization"] == default_routes()["summarization"]


def test_routes_from_a_json_file(gw, client, tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": {"general": {"models": [DEEPSEEK, GPT]}}}))
    assert Router(client, routes=str(path)).complete("hi", task="general").model == DEEPSEEK
    assert Router.from_file(client, path).complete("hi", task="general").model == DEEPSEEK
    assert RouteTable.from_file(path, base=default_routes())["general"].models == (DEEPSEEK, GPT)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Router(client, routes=path)
    with pytest.raises(ValueError, match="cannot read"):
        Router(client, routes=str(tmp_path / "missing.json"))


def test_deadline_bounds_the_whole_routed_call(gw, client, clock):
    def slow_failure(request):
        clock.advance(10)
        return Reply(status=503)
    gw.responder = slow_failure
    with pytest.raises(errors.AllModelsFailedError, match="deadline has passed") as caught:
        Router(client).complete("hi", task="general", deadline=5)
    assert models_sent(gw) == [GPT]  # its retry and the fallbacks had no time left
    assert [m for m, _ in caught.value.errors] == [GPT, GPT41, DEEPSEEK]


@pytest.mark.parametrize("kwargs", [{"deadline": 0}, {"deadline": -1}, {"deadline": "5"},
                                    {"max_cost_usd": 0.5}, {"max_cost_usd": "lots"},
                                    {"max_cost_usd": "-1"}])
def test_bad_call_options_are_value_errors(gw, client, kwargs):
    with pytest.raises(ValueError):
        Router(client).complete("hi", task="general", **kwargs)
    assert gw.requests == []


def test_the_deadline_counts_the_time_classification_takes(gw, client, clock):
    """A classifier that uses up the deadline leaves no time to send: nothing reaches the
    gateway, and the call fails on the deadline rather than starting late."""

    class SlowClassifier(StubClassifier):
        def classify(self, text=None, *, tools=None, messages=None):
            clock.advance(5.0)
            return super().classify(text, tools=tools, messages=messages)

    router = Router(client, classifier=SlowClassifier())
    with pytest.raises(errors.AllModelsFailedError) as info:
        router.complete("hello there", deadline=2.0)
    assert gw.requests == []
    assert "deadline" in str(info.value)
