"""Bad arguments to the policy, cost, routing and parsing modules fail up front with a
ValueError naming the argument: booleans are never numbers, NaN and infinity are refused."""
from __future__ import annotations

from decimal import Decimal

import pytest

import llmroute
from llmroute import _checks as checks
from llmroute.catalog import Catalog, ModelSpec
from llmroute.costs import Budget, CostTracker
from llmroute.health import CooldownPolicy, HealthBoard
from llmroute.limits import RateLimiter, TokenBucket
from llmroute.router import Router
from llmroute.routes import Route, RouteTable, load_routes
from llmroute.schema import check_schema, validate
from llmroute.tokens import estimate_tokens, fit_messages

NAN, INF = float("nan"), float("inf")
MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def client():
    with llmroute.Client("http://127.0.0.1:9/v1", "sk-test-key-123456") as c:
        yield c  # never sends: every case fails before a request


def bucket():
    return TokenBucket(1, 5)


CASES = [
    # costs
    ("Budget('abc')", lambda: Budget("abc"), "limit_usd"),
    ("Budget(True)", lambda: Budget(True), "limit_usd"),
    ("Budget(1.5)", lambda: Budget(1.5), "limit_usd"),
    ("Budget(None)", lambda: Budget(None), "limit_usd"),
    ("Budget('-1')", lambda: Budget("-1"), "limit_usd"),
    ("Budget('NaN')", lambda: Budget("NaN"), "limit_usd"),
    ("Budget([1])", lambda: Budget([1]), "limit_usd"),
    ("Budget(period)", lambda: Budget("5", "week"), "period"),
    ("Budget(now)", lambda: Budget("5", now="today"), "now"),
    ("Budget.reserve('x')", lambda: Budget("5").reserve("x"), "worst_case_usd"),
    ("Budget.charge(True)", lambda: Budget("5").charge(True), "amount_usd"),
    ("hold.commit('x')", lambda: Budget("5").reserve("1").commit("x"), "actual_usd"),
    ("CostTracker.add(tokens=True)", lambda: CostTracker().add("m", prompt_tokens=True),
     "prompt_tokens"),
    ("CostTracker.add(tokens=-1)", lambda: CostTracker().add("m", completion_tokens=-1),
     "completion_tokens"),
    ("CostTracker.add(cost=float)", lambda: CostTracker().add("m", cost_usd=0.1), "cost_usd"),
    ("CostTracker.add(model=None)", lambda: CostTracker().add(None), "model"),
    # limits
    ("TokenBucket.acquire('1')", lambda: bucket().acquire("1"), "n"),
    ("TokenBucket.acquire(True)", lambda: bucket().acquire(True), "n"),
    ("TokenBucket.try_acquire(None)", lambda: bucket().try_acquire(None), "n"),
    ("TokenBucket.acquire(timeout='1')", lambda: bucket().acquire(1, timeout="1"), "timeout"),
    ("TokenBucket.wait_time(nan)", lambda: bucket().wait_time(NAN), "n"),
    ("TokenBucket.refund(True)", lambda: bucket().refund(True), "n"),
    ("TokenBucket(rate=True)", lambda: TokenBucket(True, 5), "rate"),
    ("TokenBucket(capacity=inf)", lambda: TokenBucket(1, INF), "capacity"),
    ("TokenBucket(clock=5)", lambda: TokenBucket(1, 5, clock=5), "clock"),
    ("RateLimiter(rpm=True)", lambda: RateLimiter(rpm=True), "rpm"),
    ("RateLimiter(rpm='60')", lambda: RateLimiter(rpm="60"), "rpm"),
    ("RateLimiter(tpm=inf)", lambda: RateLimiter(tpm=INF), "tpm"),
    ("RateLimiter(max_concurrent=2.0)", lambda: RateLimiter(max_concurrent=2.0),
     "max_concurrent"),
    ("RateLimiter(burst_seconds=nan)", lambda: RateLimiter(burst_seconds=NAN), "burst_seconds"),
    ("RateLimiter(pause_scope=1)", lambda: RateLimiter(pause_scope=1), "pause_scope"),
    ("RateLimiter(headers_scope)", lambda: RateLimiter(headers_scope="global"),
     "headers_scope"),
    ("RateLimiter(model_limits)", lambda: RateLimiter(model_limits={"m": {"rpm": False}}),
     "model_limits"),
    ("RateLimiter(sleep=None)", lambda: RateLimiter(sleep=None), "sleep"),
    ("RateLimiter.reserve('10')", lambda: RateLimiter().reserve("10"), "tokens"),
    ("RateLimiter.reserve(timeout=True)", lambda: RateLimiter().reserve(1, timeout=True),
     "timeout"),
    ("RateLimiter.reserve(max_pause='x')", lambda: RateLimiter().reserve(1, max_pause="x"),
     "max_pause"),
    ("RateLimiter.reserve(model=5)", lambda: RateLimiter().reserve(1, model=5), "model"),
    ("RateLimiter.pause(True)", lambda: RateLimiter().pause(True), "seconds"),
    ("settle(nan)", lambda: RateLimiter().reserve(1).settle(NAN), "actual_tokens"),
    # health
    ("CooldownPolicy(failures=True)", lambda: CooldownPolicy(failures=True), "failures"),
    ("CooldownPolicy(window='60')", lambda: CooldownPolicy(window="60"), "window"),
    ("CooldownPolicy(cooldown=inf)", lambda: CooldownPolicy(cooldown=INF), "cooldown"),
    ("HealthBoard(latency_window=True)", lambda: HealthBoard(latency_window=True),
     "latency_window"),
    ("HealthBoard(policy={})", lambda: HealthBoard({}), "policy"),
    # tokens
    ("estimate_tokens(['a'])", lambda: estimate_tokens(["a"]), r"text_or_messages\[0\]"),
    ("estimate_tokens(b'a')", lambda: estimate_tokens(b"a"), "text_or_messages"),
    ("estimate_tokens(5)", lambda: estimate_tokens(5), "text_or_messages"),
    ("estimate_tokens({'role'})", lambda: estimate_tokens({"role": "user"}), "text_or_messages"),
    ("fit_messages(context_window='1000')",
     lambda: fit_messages(MSGS, context_window="1000", max_tokens=10), "context_window"),
    ("fit_messages(max_tokens=True)",
     lambda: fit_messages(MSGS, context_window=1000, max_tokens=True), "max_tokens"),
    ("fit_messages(margin=nan)",
     lambda: fit_messages(MSGS, context_window=1000, max_tokens=1, margin=NAN), "margin"),
    ("fit_messages(margin=1)",
     lambda: fit_messages(MSGS, context_window=1000, max_tokens=1, margin=1), "margin"),
    ("fit_messages('hi')", lambda: fit_messages("hi", context_window=9, max_tokens=1),
     "messages"),
    # schema
    ("schema type {}", lambda: validate({}, {"type": {"object": True}}), "'type'"),
    ("schema type 5", lambda: check_schema({"type": 5}), "'type'"),
    ("schema type [None]", lambda: check_schema({"type": ["string", None]}), "unknown type"),
    ("schema type [[...]]", lambda: check_schema({"type": [["string"]]}), "unknown type"),
    ("nested schema type", lambda: check_schema(
        {"properties": {"a": {"type": {"x": 1}}}}), r"\$\.a: 'type'"),
    # catalog
    ("Catalog('abc')", lambda: Catalog("abc"), "models"),
    ("Catalog([dict])", lambda: Catalog([{"name": "m"}]), "ModelSpec"),
    ("Catalog.get(5)", lambda: Catalog().get(5), "model name"),
    ("ModelSpec(name='')", lambda: ModelSpec(name=""), "name"),
    ("ModelSpec(context_window=True)", lambda: ModelSpec("m", context_window=True),
     "context_window"),
    ("ModelSpec(max_output_tokens=1.5)", lambda: ModelSpec("m", max_output_tokens=1.5),
     "max_output_tokens"),
    ("ModelSpec(price=nan float)", lambda: ModelSpec("m", input_usd_per_mtok=NAN),
     "input_usd_per_mtok"),
    ("ModelSpec(price='x')", lambda: ModelSpec("m", output_usd_per_mtok="x"),
     "output_usd_per_mtok"),
    ("ModelSpec(tokens_per_second=inf)", lambda: ModelSpec("m", tokens_per_second=INF),
     "tokens_per_second"),
    ("ModelSpec(aliases='a')", lambda: ModelSpec("m", aliases="a"), "aliases"),
    ("ModelSpec(benchmarks bool)", lambda: ModelSpec("m", benchmarks={"mmlu": True}),
     "benchmarks"),
    ("ModelSpec.from_dict(window='x')",
     lambda: ModelSpec.from_dict({"name": "m", "context_window": "x"}), "context_window"),
    # routes
    ("RouteTable([1])", lambda: RouteTable([1]), "must map task names"),
    ("RouteTable(base={})", lambda: RouteTable({}, base={}), "base"),
    ("route param NaN", lambda: load_routes(
        {"math": {"models": ["m"], "params": {"temperature": NAN}}}), "temperature"),
    ("route param inf nested", lambda: load_routes(
        {"math": {"models": ["m"], "params": {"thinking": {"budget_tokens": INF}}}}), "thinking"),
    ("load_routes(5)", lambda: load_routes(5), "routes"),
    ("RouteTable.from_file(None)", lambda: RouteTable.from_file(None), "path"),
    ("Catalog.from_file(3)", lambda: Catalog.from_file(3), "path"),
    ("Route(task='x')", lambda: Route("x", ("m",), {}), "unknown task"),
    ("Route(models='m')", lambda: Route("math", "m", {}), "models"),
    ("Route(params=[])", lambda: Route("math", ("m",), []), "params"),
]


@pytest.mark.parametrize("call, named", [pytest.param(c, n, id=i) for i, c, n in CASES])
def test_bad_argument_is_a_value_error_naming_it(call, named):
    with pytest.raises(ValueError, match=named):
        call()


ROUTER_CASES = [
    ("client=None", lambda c: Router(None), "client"),
    ("budget='5'", lambda c: Router(c, budget="5"), "budget"),
    ("cooldown=30", lambda c: Router(c, cooldown=30), "cooldown"),
    ("priority='fast'", lambda c: Router(c, priority="fast"), "priority"),
    ("priority=None", lambda c: Router(c, priority=None), "priority"),
    ("max_cost_usd=True", lambda c: Router(c, max_cost_usd=True), "max_cost_usd"),
    ("max_cost_usd=0.5", lambda c: Router(c, max_cost_usd=0.5), "max_cost_usd"),
    ("max_cost_usd='abc'", lambda c: Router(c, max_cost_usd="abc"), "max_cost_usd"),
    ("classifier=5", lambda c: Router(c, classifier=5), "classifier"),
    ("clock='now'", lambda c: Router(c, clock="now"), "clock"),
    ("routes=5", lambda c: Router(c, routes=5), "routes"),
    ("deadline='5'", lambda c: Router(c).complete("hi", task="general", deadline="5"),
     "deadline"),
    ("deadline=True", lambda c: Router(c).complete("hi", task="general", deadline=True),
     "deadline"),
    ("deadline=nan", lambda c: Router(c).complete("hi", task="general", deadline=NAN),
     "deadline"),
    ("per-call max_cost_usd", lambda c: Router(c).complete("hi", task="general",
                                                         max_cost_usd=[1]), "max_cost_usd"),
]


@pytest.mark.parametrize("call, named", [pytest.param(c, n, id=i) for i, c, n in ROUTER_CASES])
def test_bad_router_argument_is_a_value_error_naming_it(client, call, named):
    with pytest.raises(ValueError, match=named):
        call(client)


@pytest.mark.parametrize("value", [True, False, "1", None, [1], NAN, INF, -INF, Decimal(1)])
def test_checks_number_refuses_everything_but_finite_ints_and_floats(value):
    with pytest.raises(ValueError, match="the_arg"):
        checks.number("the_arg", value)


@pytest.mark.parametrize("kwargs, value, expected", [
    ({}, 3, 3.0), ({"integer": True}, 3, 3), ({"allow_none": True}, None, None),
    ({"allow_inf": True}, INF, INF), ({"minimum": 0}, 0, 0.0), ({"above": 0}, 0.5, 0.5),
    ({"maximum": 2}, 2, 2.0),
])
def test_checks_number_accepts_what_its_options_allow(kwargs, value, expected):
    assert checks.number("x", value, **kwargs) == expected


@pytest.mark.parametrize("kwargs, value", [
    ({"integer": True}, 2.0), ({"minimum": 0}, -1), ({"above": 0}, 0), ({"maximum": 2}, 3),
    ({"allow_inf": True}, NAN),
])
def test_checks_number_enforces_its_bounds(kwargs, value):
    with pytest.raises(ValueError, match="x must"):
        checks.number("x", value, **kwargs)


@pytest.mark.parametrize("value, expected", [
    ("1.50", Decimal("1.50")), (2, Decimal(2)), (Decimal("0"), Decimal(0)), (" 3 ", Decimal(3)),
])
def test_checks_money_reads_exact_amounts(value, expected):
    assert checks.money("limit", value) == expected


def test_estimate_tokens_accepts_a_string_or_a_list_or_tuple_of_message_dicts():
    assert estimate_tokens("hello world") == 3  # ten letters, about four a token
    assert estimate_tokens(MSGS) == estimate_tokens(tuple(MSGS)) > 0
    assert estimate_tokens(None) == 0
    assert estimate_tokens([]) == 3  # the request's own framing
    assert estimate_tokens([{"role": "assistant", "tool_calls": "garbage"}]) > 0


def test_a_list_of_strings_is_refused_also_as_a_type_error_for_older_callers():
    with pytest.raises(TypeError):
        estimate_tokens(["a"])


def test_catalog_files_with_json_decimals_still_load():
    spec = ModelSpec.from_dict({"name": "m", "context_window": Decimal("128000"),
                                "input_usd_per_mtok": Decimal("1.25"),
                                "output_usd_per_mtok": 10, "tokens_per_second": Decimal("80.5"),
                                "benchmarks": {"mmlu": Decimal("0.9")}, "aliases": ["mm"]})
    assert spec.context_window == 128000 and spec.input_usd_per_mtok == Decimal("1.25")
    assert spec.output_usd_per_mtok == Decimal(10) and spec.tokens_per_second == 80.5
    assert spec.benchmarks == {"mmlu": 0.9} and spec.aliases == ("mm",)
    assert len(llmroute.Catalog.default()) > 5
