"""The dialects of real gateways in llmroute._headers: every form of "wait", read one way."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from llmroute._headers import MAX_WAIT_HINT_SECONDS, parse_rate_limit_headers, parse_retry_after

DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
IN_30S = "Wed, 21 Oct 2015 07:28:30 GMT"
PAST = "Wed, 21 Oct 2015 07:27:00 GMT"
IN_2_DAYS = "Fri, 23 Oct 2015 07:28:00 GMT"
NOW = datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("headers, expected", [
    # each dialect alone
    pytest.param({"Retry-After": "7"}, 7.0, id="Retry-After seconds"),
    pytest.param({"Retry-After": IN_30S, "Date": DATE}, 30.0, id="Retry-After HTTP date"),
    pytest.param({"retry-after-ms": "1500"}, 1.5, id="retry-after-ms"),
    pytest.param({"llm_provider-retry-after": "60"}, 60.0,
                 id="LiteLLM per-deployment rpm check: llm_provider-retry-after only"),
    pytest.param({"llm_provider-retry-after-ms": "2500"}, 2.5, id="llm_provider-retry-after-ms"),
    pytest.param({"LLM_Provider-Retry-After": IN_30S, "Date": DATE}, 30.0,
                 id="llm_provider-retry-after as an HTTP date, any case"),
    # zero and past: no wait given
    pytest.param({"Retry-After": "0"}, None, id="Retry-After 0"),
    pytest.param({"retry-after-ms": "0"}, None, id="retry-after-ms 0"),
    pytest.param({"llm_provider-retry-after": "0"}, None, id="llm_provider-retry-after 0"),
    pytest.param({"Retry-After": PAST, "Date": DATE}, None, id="HTTP date already past"),
    pytest.param({"Retry-After": "0", "retry-after-ms": "0"}, None, id="all zero"),
    # beyond 24 hours: garbage
    pytest.param({"Retry-After": "86401"}, None, id="Retry-After > 24 h"),
    pytest.param({"Retry-After": "86400"}, 86400.0, id="Retry-After exactly 24 h"),
    pytest.param({"retry-after-ms": "90000000"}, None, id="retry-after-ms > 24 h"),
    pytest.param({"Retry-After": IN_2_DAYS, "Date": DATE}, None, id="HTTP date 2 days ahead"),
    pytest.param({"Retry-After": "999999", "retry-after-ms": "3000"}, 3.0,
                 id="garbage ignored, the sane hint kept"),
    # several present: the longest wins
    pytest.param({"retry-after-ms": "1500", "Retry-After": "5"}, 5.0, id="seconds > ms"),
    pytest.param({"retry-after-ms": "9000", "Retry-After": "5"}, 9.0, id="ms > seconds"),
    pytest.param({"retry-after": "1", "llm_provider-retry-after": "60"}, 60.0,
                 id="forwarded upstream wait longer than the proxy's"),
    pytest.param({"retry-after": "0", "llm_provider-retry-after-ms": "250"}, 0.25,
                 id="zero ignored beside a real wait"),
    pytest.param({"Retry-After": IN_30S, "Date": DATE, "llm_provider-retry-after": "10"}, 30.0,
                 id="date longer than prefixed seconds"),
    # garbage stays None, never raises
    pytest.param({"llm_provider-retry-after": "soon"}, None, id="prefixed garbage"),
    pytest.param({"llm_provider-retry-after-ms": "-1"}, None, id="prefixed negative"),
    pytest.param({"llm_provider-retry-after-ms": IN_30S, "Date": DATE}, None,
                 id="a date is not milliseconds"),
    pytest.param({"retry-after": None, 5: "x"}, None, id="odd keys and values"),
])
def test_parse_retry_after_reads_every_gateway_dialect(headers, expected):
    assert parse_retry_after(headers, now=NOW) == expected


def test_max_wait_hint_is_one_day():
    assert MAX_WAIT_HINT_SECONDS == 24 * 3600


@pytest.mark.parametrize("headers, field, expected", [
    ({"x-ratelimit-remaining-requests": "4"}, "remaining_requests", 4),
    ({"llm_provider-x-ratelimit-remaining-requests": "4"}, "remaining_requests", 4),
    ({"LLM_PROVIDER-X-RATELIMIT-REMAINING-TOKENS": "900"}, "remaining_tokens", 900),
    ({"llm_provider-x-ratelimit-reset-tokens": "1m30s"}, "reset_tokens", 90.0),
    ({"llm_provider-x-ratelimit-limit-requests": "60"}, "limit_requests", 60),
    # both present: the cautious reading (fewest remaining, longest reset)
    ({"x-ratelimit-remaining-requests": "9",
      "llm_provider-x-ratelimit-remaining-requests": "2"}, "remaining_requests", 2),
    ({"x-ratelimit-remaining-tokens": "3",
      "llm_provider-x-ratelimit-remaining-tokens": "800"}, "remaining_tokens", 3),
    ({"x-ratelimit-reset-requests": "2s",
      "llm_provider-x-ratelimit-reset-requests": "20s"}, "reset_requests", 20.0),
    ({"x-ratelimit-remaining-requests": "junk",
      "llm_provider-x-ratelimit-remaining-requests": "5"}, "remaining_requests", 5),
    # LiteLLM 1.108 sends -1 once the deployment's rpm is spent: nothing left
    ({"x-ratelimit-remaining-requests": "-1"}, "remaining_requests", 0),
    ({"x-ratelimit-remaining-requests": "-1.5"}, "remaining_requests", None),
    # a reset beyond a day is garbage
    ({"x-ratelimit-reset-requests": "25h"}, "reset_requests", None),
])
def test_rate_limit_headers_are_read_with_and_without_the_litellm_prefix(headers, field,
                                                                          expected):
    info = parse_rate_limit_headers(headers)
    assert info is not None or expected is None
    assert (getattr(info, field) if info is not None else None) == expected


def test_only_unrelated_prefixed_headers_give_no_rate_limit_info():
    assert parse_rate_limit_headers({"llm_provider-x-request-id": "abc"}) is None
