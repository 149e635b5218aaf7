"""The total parsers of llmroute._headers: Retry-After, durations and x-ratelimit-* headers."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from requests.structures import CaseInsensitiveDict

from llmroute._headers import (
    RateLimitInfo, header_value, parse_duration, parse_rate_limit_headers, parse_retry_after,
)

DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
DATE_POSIX = datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("headers, expected", [
    ({"Retry-After": "2"}, 2.0),
    ({"retry-after": " 2.5 "}, 2.5),
    ({"Retry-After": "0"}, None),                                   # zero: no wait given
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "250", "Retry-After": "30"}, 30.0),         # the longest wins
    ({"Retry-After-Ms": "-5", "Retry-After": "3"}, 3.0),            # bad ms falls back
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT", "Date": DATE}, 30.0),
    ({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT", "Date": DATE}, None),  # already past
    ({"Retry-After": "-1"}, None),
    ({"Retry-After": "inf"}, None),
    ({"Retry-After": "nan"}, None),
    ({"Retry-After": "1e3"}, None),
    ({"Retry-After": "1" * 400}, None),
    ({"Retry-After": "soon"}, None),
    ({"Retry-After": ""}, None),
    ({"retry-after-ms": "nan"}, None),
    ({"retry-after-ms": "inf"}, None),
    ({}, None),
    (None, None),
    ("not a mapping", None),
    ({"Retry-After": b"4"}, 4.0),
    (CaseInsensitiveDict({"RETRY-AFTER": "7"}), 7.0),
])
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers) == expected


def test_retry_after_date_is_measured_against_the_date_header_not_the_local_clock():
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT", "Date": DATE}
    assert parse_retry_after(headers, now=DATE_POSIX + 3600) == 10.0


@pytest.mark.parametrize("now", [DATE_POSIX, datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc)])
def test_retry_after_date_without_date_header_uses_now(now):
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT"}, now=now) == 5.0


def test_retry_after_date_without_date_header_defaults_to_current_utc_time():
    # 2015 is long past by the current UTC time: no wait given.
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT"}) is None


def test_retry_after_with_a_garbled_date_header_falls_back_to_now():
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT", "Date": "yesterday"}
    assert parse_retry_after(headers, now=DATE_POSIX) == 5.0


@pytest.mark.parametrize("text, expected", [
    ("6ms", 0.006),
    ("1m30s", 90.0),
    ("2s", 2.0),
    ("2.5s", 2.5),
    ("0.5", 0.5),
    ("20", 20.0),
    ("1h", 3600.0),
    ("1h2m3s", 3723.0),
    ("6m0s", 360.0),
    ("59.123s", 59.123),
    ("1m0.5s", 60.5),
    ("0s", 0.0),
    ("250us", 0.00025),
    ("100ns", 1e-7),
    (" 2S ", 2.0),
    ("", None),
    ("s", None),
    ("1m30", None),
    ("-1s", None),
    ("1d", None),
    ("1 m", None),
    ("inf", None),
    ("nan", None),
    ("fast", None),
    (None, None),
    (3, 3.0),
])
def test_parse_duration(text, expected):
    result = parse_duration(text)
    assert result == (None if expected is None else pytest.approx(expected))


def test_rate_limit_headers_parse_counts_and_resets_in_any_case():
    info = parse_rate_limit_headers(CaseInsensitiveDict({
        "X-RateLimit-Limit-Requests": "500", "X-RateLimit-Limit-Tokens": "30000",
        "X-RateLimit-Remaining-Requests": "499", "X-RateLimit-Remaining-Tokens": "29000",
        "X-RateLimit-Reset-Requests": "120ms", "X-RateLimit-Reset-Tokens": "2s",
    }))
    assert info == RateLimitInfo(limit_requests=500, limit_tokens=30000, remaining_requests=499,
                                 remaining_tokens=29000, reset_requests=0.12, reset_tokens=2.0)


def test_rate_limit_headers_leave_missing_or_garbled_fields_none():
    info = parse_rate_limit_headers({"x-ratelimit-remaining-tokens": "0",
                                     "x-ratelimit-reset-tokens": "whenever"})
    assert info == RateLimitInfo(remaining_tokens=0)


@pytest.mark.parametrize("headers", [
    None, {}, {"content-type": "application/json"}, {"x-ratelimit-remaining-tokens": "lots"},
])
def test_rate_limit_headers_absent_give_none(headers):
    assert parse_rate_limit_headers(headers) is None


def test_rate_limit_info_is_frozen():
    with pytest.raises(AttributeError):
        RateLimitInfo().remaining_tokens = 5


def test_header_value_matches_names_case_insensitively():
    assert header_value({"X-Request-Id": " abc "}, "x-request-id") == "abc"
    assert header_value({"X-Request-Id": "abc"}, "X-REQUEST-ID") == "abc"
    assert header_value(None, "x") is None
