"""RateLimiter and Reservation, driven by a fake clock; real threads only for concurrency.

TokenBucket itself is tested in test_buckets.py."""
from __future__ import annotations

import threading
import time

import pytest
from requests.structures import CaseInsensitiveDict

from llmroute.errors import RateLimitError, RateLimitTimeout
from llmroute.limits import RateLimiter, Reservation


class FakeClock:
    """A clock that moves only when told; ``sleep`` records the wait and moves the clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- RateLimiter --------------------------------------------------------------------------------

def limiter_with(clock: FakeClock, **kwargs) -> RateLimiter:
    return RateLimiter(clock=clock, sleep=clock.sleep, **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"rpm": 0}, {"tpm": -1}, {"rpm": float("nan")}, {"max_concurrent": 0},
    {"max_concurrent": 1.5}, {"max_concurrent": True}, {"burst_seconds": 0},
    {"pause_scope": "global"},
])
def test_limiter_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


def test_buckets_hold_burst_seconds_of_per_minute_quota(clock):
    limiter = limiter_with(clock, rpm=120, tpm=6000)
    assert (limiter.requests_bucket.rate, limiter.requests_bucket.capacity) == (2, 120)
    assert (limiter.tokens_bucket.rate, limiter.tokens_bucket.capacity) == (100, 6000)
    short = limiter_with(clock, tpm=6000, burst_seconds=10)
    assert short.tokens_bucket.capacity == 1000


def test_unlimited_limiter_admits_at_once(clock):
    with limiter_with(clock).reserve(10 ** 9) as reservation:
        assert reservation.waited == 0.0
    assert clock.sleeps == []


def test_reserve_takes_one_request_and_the_tokens(clock):
    limiter = limiter_with(clock, rpm=60, tpm=1000)
    reservation = limiter.reserve(300, model="m")
    assert isinstance(reservation, Reservation)
    assert limiter.requests_bucket.level == 59
    assert limiter.tokens_bucket.level == 700
    assert (reservation.tokens, reservation.charged, reservation.waited) == (300, 300, 0.0)


def test_settle_lower_refunds_the_difference(clock):
    limiter = limiter_with(clock, tpm=1000)
    reservation = limiter.reserve(300)
    assert reservation.settle(120) == -180
    assert limiter.tokens_bucket.level == 880


def test_settle_higher_charges_the_difference_as_debt(clock):
    limiter = limiter_with(clock, tpm=1000)
    limiter.reserve(900).settle(1300)
    assert limiter.tokens_bucket.level == -300


def test_settling_twice_does_not_double_count(clock):
    limiter = limiter_with(clock, tpm=1000)
    reservation = limiter.reserve(300)
    reservation.settle(100)
    reservation.settle(100)
    assert limiter.tokens_bucket.level == 900
    reservation.settle(250)  # a later, better figure moves only the difference
    assert limiter.tokens_bucket.level == 750


def test_refund_gives_back_every_token_once(clock):
    limiter = limiter_with(clock, tpm=1000)
    reservation = limiter.reserve(300)
    assert reservation.refund() == 300
    assert reservation.refund() == 0
    assert limiter.tokens_bucket.level == 1000


def test_settle_rejects_negative_usage(clock):
    with pytest.raises(ValueError, match="actual_tokens"):
        limiter_with(clock, tpm=1000).reserve(10).settle(-1)


def test_reservation_larger_than_tpm_raises_naming_max_tokens_and_tpm(clock):
    limiter = limiter_with(clock, tpm=10000)
    with pytest.raises(ValueError) as caught:
        limiter.reserve(50000)
    assert str(caught.value) == ("reservation of 50000 tokens (prompt estimate + max_tokens) "
                                 "exceeds tpm=10000; lower max_tokens or raise tpm")
    assert limiter.tokens_bucket.level == 10000


def test_reservation_beyond_the_free_level_is_taken_as_debt(clock):
    limiter = limiter_with(clock, tpm=600)  # 10 tokens/s
    limiter.reserve(500)
    reservation = limiter.reserve(500)  # 100 left: wait 40 s for the other 400
    assert reservation.waited == pytest.approx(40.0)
    assert clock.sleeps == [pytest.approx(40.0)]


def test_reservation_beyond_a_short_burst_waits_for_capacity_then_owes_the_rest(clock):
    limiter = limiter_with(clock, tpm=600, burst_seconds=10)  # capacity 100
    assert limiter.reserve(300).waited == 0.0
    assert limiter.tokens_bucket.level == -200
    assert limiter.reserve(50).waited == pytest.approx(25.0)


def test_timeout_raises_rate_limit_timeout_taking_nothing(clock):
    limiter = limiter_with(clock, rpm=60, tpm=600)
    limiter.reserve(600)
    with pytest.raises(RateLimitTimeout, match="tpm"):
        limiter.reserve(100, timeout=5)  # needs 10 s
    assert limiter.requests_bucket.level == 59
    assert limiter.tokens_bucket.level == 0
    assert clock.sleeps == []
    assert limiter.reserve(100, timeout=10).waited == pytest.approx(10.0)


def test_timeout_counts_the_request_bucket_too(clock):
    limiter = limiter_with(clock, rpm=6, tpm=6000, burst_seconds=10)  # one request per 10 s
    limiter.reserve(1)
    with pytest.raises(RateLimitTimeout, match="rpm"):
        limiter.reserve(1, timeout=3)
    assert limiter.tokens_bucket.level == 999


def test_a_long_tokens_wait_does_not_bank_a_burst_of_requests(clock):
    # 60 rpm with a 10 s burst: however long the TPM debt holds callers back, at most 10
    # requests may leave together when it clears, then one a second.
    limiter = limiter_with(clock, rpm=60, tpm=60000, burst_seconds=10)
    limiter.tokens_bucket.consume(10000 + 100000)  # 100 s of TPM debt
    slept = []
    limiter._sleep = slept.append  # queue the callers without time passing
    waits = [limiter.reserve(1).waited for _ in range(14)]
    assert waits[:10] == [pytest.approx(100 + (i + 1) / 1000) for i in range(10)]
    assert waits[10:] == [pytest.approx(101.001), pytest.approx(102.001), pytest.approx(103.001),
                          pytest.approx(104.001)]


def test_observe_429_retry_after_pauses_that_model_only(clock):
    limiter = limiter_with(clock)
    assert limiter.observe("gpt-4o", 429, {"Retry-After": "2"}) == 2.0
    assert limiter.pause_remaining("gpt-4o") == 2.0
    assert limiter.pause_remaining("claude") == 0.0
    clock.advance(1.5)
    assert limiter.pause_remaining("gpt-4o") == pytest.approx(0.5)


def test_observe_429_in_key_scope_pauses_every_model(clock):
    limiter = limiter_with(clock, pause_scope="key")
    limiter.observe("gpt-4o", 429, {"retry-after": "2"})
    assert limiter.pause_remaining("claude") == 2.0
    assert limiter.pause_remaining() == 2.0


@pytest.mark.parametrize("headers", [
    {"Retry-After": "2"}, {"RETRY-AFTER": "2"}, CaseInsensitiveDict({"retry-after": "2"}),
    {"retry-after-ms": "2000", "retry-after": "1"},  # the longest wins
])
def test_observe_reads_headers_in_any_case(clock, headers):
    limiter = limiter_with(clock)
    limiter.observe("m", 503, headers)
    assert limiter.pause_remaining("m") == pytest.approx(2.0)


@pytest.mark.parametrize("status, headers", [
    (200, {"Retry-After": "5"}), (500, {"Retry-After": "5"}), (429, {}), (429, None),
    (429, {"Retry-After": "soon"}),
])
def test_observe_without_a_usable_retry_after_does_not_pause(clock, status, headers):
    limiter = limiter_with(clock)
    assert limiter.observe("m", status, headers) == 0.0
    assert limiter.pause_remaining("m") == 0.0


def test_a_new_pause_never_shortens_a_longer_one(clock):
    limiter = limiter_with(clock)
    limiter.observe("m", 429, {"Retry-After": "10"})
    limiter.observe("m", 429, {"Retry-After": "1"})
    assert limiter.pause_remaining("m") == 10.0


def test_reserve_refuses_a_pause_beyond_max_pause_at_once(clock):
    limiter = limiter_with(clock, rpm=60, tpm=1000)
    limiter.observe("gpt-4o", 429, {"Retry-After": "2"})
    with pytest.raises(RateLimitError, match="gpt-4o") as caught:
        limiter.reserve(100, model="gpt-4o", max_pause=1)
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 2.0
    assert clock.sleeps == []
    assert limiter.tokens_bucket.level == 1000 and limiter.requests_bucket.level == 60


def test_reserve_sleeps_out_a_pause_within_max_pause(clock):
    limiter = limiter_with(clock)
    limiter.observe("gpt-4o", 429, {"Retry-After": "2"})
    reservation = limiter.reserve(100, model="gpt-4o", max_pause=5)
    assert clock.sleeps == [2.0]
    assert reservation.waited == 2.0
    assert limiter.reserve(1, model="claude").waited == 0.0


def test_reserve_refuses_a_pause_longer_than_its_timeout(clock):
    limiter = limiter_with(clock)
    limiter.pause(3, model="m")
    with pytest.raises(RateLimitError) as caught:
        limiter.reserve(1, model="m", timeout=1)
    assert caught.value.retry_after == 3.0 and clock.sleeps == []


def test_a_pause_set_while_sleeping_on_a_bucket_is_respected(clock):
    limiter = limiter_with(clock, tpm=600)  # 10 tokens/s
    limiter.reserve(600)

    def sleep_while_another_thread_gets_a_429(seconds):
        clock.sleep(seconds)
        if len(clock.sleeps) == 1:
            limiter.observe("m", 429, {"Retry-After": "3"})

    limiter._sleep = sleep_while_another_thread_gets_a_429
    reservation = limiter.reserve(10, model="m")
    assert clock.sleeps == [pytest.approx(1.0), 3.0]
    assert reservation.waited == pytest.approx(4.0)


def test_a_pause_set_while_sleeping_beyond_max_pause_gives_everything_back(clock):
    limiter = limiter_with(clock, tpm=600, max_concurrent=1)
    limiter.reserve(600).release()

    def sleep_while_another_thread_gets_a_429(seconds):
        clock.sleep(seconds)
        limiter.observe("m", 429, {"Retry-After": "30"})

    limiter._sleep = sleep_while_another_thread_gets_a_429
    with pytest.raises(RateLimitError):
        limiter.reserve(10, model="m", max_pause=5)
    assert limiter.in_flight == 0
    assert limiter.tokens_bucket.level == pytest.approx(10.0)  # its 10 are back, nothing owed


def test_remaining_tokens_zero_holds_the_next_reserve_until_the_reset(clock):
    limiter = limiter_with(clock)  # no tpm configured: the pause still applies
    limiter.observe("m", 200, {"x-ratelimit-remaining-tokens": "0",
                               "x-ratelimit-reset-tokens": "1s"})
    reservation = limiter.reserve(10, model="m")
    assert clock.sleeps == [1.0] and reservation.waited == 1.0


def test_remaining_requests_in_key_scope_lowers_the_key_rpm_level_but_never_raises_it(clock):
    limiter = limiter_with(clock, rpm=600, headers_scope="key")
    limiter.observe("m", 200, {"X-RateLimit-Remaining-Requests": "42",
                               "X-RateLimit-Reset-Requests": "6s"})
    assert limiter.requests_bucket.level == 42
    limiter.observe("m", 200, {"x-ratelimit-remaining-requests": "500"})
    assert limiter.requests_bucket.level == 42
    assert limiter.pause_remaining("m") == 0.0


def test_remaining_tokens_in_key_scope_lowers_the_key_tpm_level(clock):
    limiter = limiter_with(clock, tpm=10000, headers_scope="key")
    limiter.observe("m", 200, {"x-ratelimit-remaining-tokens": "2500"})
    assert limiter.tokens_bucket.level == 2500


def test_concurrency_cap_blocks_a_third_reserve_until_one_releases():
    limiter = RateLimiter(max_concurrent=2)
    first, second = limiter.reserve(0), limiter.reserve(0)
    admitted, third = threading.Event(), []

    def reserve_third() -> None:
        third.append(limiter.reserve(0, timeout=5))
        admitted.set()

    thread = threading.Thread(target=reserve_third)
    thread.start()
    assert not admitted.wait(0.1)
    assert limiter.in_flight == 2
    first.release()
    assert admitted.wait(5)
    thread.join(5)
    assert limiter.in_flight == 2 and third[0].waited > 0
    second.release()
    third[0].release()
    assert limiter.in_flight == 0


def test_concurrency_wait_past_timeout_raises_rate_limit_timeout():
    limiter = RateLimiter(rpm=60, max_concurrent=1)
    with limiter.reserve(0):
        with pytest.raises(RateLimitTimeout, match="max_concurrent=1"):
            limiter.reserve(0, timeout=0.05)
    assert limiter.in_flight == 0
    assert limiter.requests_bucket.level == pytest.approx(59, abs=0.1)


def test_release_is_idempotent_and_the_with_block_releases(clock):
    limiter = limiter_with(clock, max_concurrent=1)
    with limiter.reserve(0) as reservation:
        assert limiter.in_flight == 1
    assert limiter.in_flight == 0
    reservation.release()
    assert limiter.in_flight == 0


def test_threads_sharing_a_limiter_never_exceed_the_concurrency_cap(clock):
    limiter = limiter_with(clock, rpm=6000, tpm=10 ** 6, max_concurrent=2)
    peak, inside, lock = [0], [0], threading.Lock()

    def work() -> None:
        for _ in range(50):
            with limiter.reserve(10, timeout=5):
                with lock:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                time.sleep(0)
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert peak[0] <= 2 and limiter.in_flight == 0
    assert limiter.requests_bucket.level == pytest.approx(6000 - 300)


def test_limiter_repr_is_fit_for_a_log_line(clock):
    limiter = limiter_with(clock, rpm=600, tpm=100000, max_concurrent=4)
    limiter.pause(2, model="gpt-4o")
    assert repr(limiter) == (
        "RateLimiter(rpm=600, tpm=100000, max_concurrent=4, in_flight=0, pause_scope='model', "
        "headers_scope='model', requests_left=600.0, tokens_left=100000.0, paused={'gpt-4o': 2.0})")


# -- per-model quotas: model_limits, headers_scope, the 24-hour cap ----------------------------

def test_per_model_remaining_zero_holds_back_only_that_model(clock):
    limiter = limiter_with(clock, rpm=600)
    limiter.observe("gpt-4.1", 200, {"x-ratelimit-remaining-requests": "0",
                                     "x-ratelimit-reset-requests": "20s"})
    assert limiter.pause_remaining("gpt-4.1") == 20.0
    assert limiter.pause_remaining("claude") == 0.0
    assert limiter.reserve(1, model="claude").waited == 0.0
    assert limiter.requests_bucket.level == 599  # the key-wide bucket was not lowered to 0


def test_per_model_remaining_zero_holds_only_that_model_even_in_key_pause_scope(clock):
    limiter = limiter_with(clock, pause_scope="key")
    limiter.observe("gpt-4.1", 200, {"x-ratelimit-remaining-tokens": "0",
                                     "x-ratelimit-reset-tokens": "3s"})
    assert limiter.pause_remaining("gpt-4.1") == 3.0
    assert limiter.pause_remaining("claude") == 0.0


def test_per_model_remaining_lowers_only_that_models_configured_bucket(clock):
    limiter = limiter_with(clock, rpm=600, tpm=100000,
                           model_limits={"gpt-4.1": {"rpm": 60, "tpm": 90000}})
    limiter.observe("gpt-4.1", 200, {"x-ratelimit-remaining-requests": "5",
                                     "x-ratelimit-remaining-tokens": "1000"})
    requests, tokens = limiter.model_buckets("gpt-4.1")
    assert (requests.level, tokens.level) == (5, 1000)
    assert limiter.requests_bucket.level == 600 and limiter.tokens_bucket.level == 100000
    limiter.observe("gpt-4.1", 200, {"x-ratelimit-remaining-requests": "50"})
    assert requests.level == 5  # never raised


def test_remaining_headers_of_an_unconfigured_model_leave_the_key_buckets_alone(clock):
    limiter = limiter_with(clock, rpm=600, tpm=10000)
    limiter.observe("m", 200, {"x-ratelimit-remaining-requests": "1",
                               "x-ratelimit-remaining-tokens": "5"})
    assert limiter.requests_bucket.level == 600 and limiter.tokens_bucket.level == 10000


def test_headers_scope_key_reads_remaining_as_the_whole_keys_quota(clock):
    limiter = limiter_with(clock, tpm=10000, headers_scope="key")
    limiter.observe("gpt-4.1", 200, {"x-ratelimit-remaining-tokens": "0",
                                     "x-ratelimit-reset-tokens": "2s"})
    assert limiter.pause_remaining("claude") == 2.0
    assert limiter.tokens_bucket.level == 0


def test_remaining_without_a_model_is_read_key_wide(clock):
    limiter = limiter_with(clock, rpm=600)
    limiter.observe(None, 200, {"x-ratelimit-remaining-requests": "7"})
    assert limiter.requests_bucket.level == 7


@pytest.mark.parametrize("prefix", ["", "llm_provider-", "LLM_PROVIDER-"])
def test_remaining_headers_are_read_with_and_without_the_litellm_prefix(clock, prefix):
    limiter = limiter_with(clock, model_limits={"m": {"rpm": 600}})
    limiter.observe("m", 200, {prefix + "x-ratelimit-remaining-requests": "0",
                               prefix + "x-ratelimit-reset-requests": "4s"})
    assert limiter.pause_remaining("m") == 4.0
    assert limiter.model_buckets("m")[0].level == 0


def test_configured_key_wide_rpm_stays_shared_by_every_model(clock):
    limiter = limiter_with(clock, rpm=2, burst_seconds=60)  # 2 requests, then 30 s apart
    limiter.reserve(1, model="a")
    limiter.reserve(1, model="b")
    assert limiter.reserve(1, model="c").waited == pytest.approx(30.0)


def test_model_limits_hold_back_that_model_on_top_of_the_key_limits(clock):
    limiter = limiter_with(clock, rpm=600, model_limits={"gpt-4.1": {"rpm": 1}})
    assert limiter.reserve(1, model="gpt-4.1").waited == 0.0
    assert limiter.reserve(1, model="gpt-4.1").waited == pytest.approx(60.0)
    assert limiter.reserve(1, model="other").waited == 0.0


def test_model_tpm_settles_and_refunds_with_the_key_tpm(clock):
    limiter = limiter_with(clock, tpm=10000, model_limits={"m": {"tpm": 1000}})
    reservation = limiter.reserve(600, model="m")
    tokens = limiter.model_buckets("m")[1]
    assert (limiter.tokens_bucket.level, tokens.level) == (9400, 400)
    reservation.settle(100)
    assert (limiter.tokens_bucket.level, tokens.level) == (9900, 900)
    with pytest.raises(ValueError, match=r"model_limits\['m'\] tpm=1000"):
        limiter.reserve(2000, model="m")


def test_model_limits_are_reported_as_configured(clock):
    limiter = limiter_with(clock, model_limits={"gpt-4.1": {"rpm": 60, "tpm": 90000},
                                                "mini": {"tpm": 5000}})
    assert limiter.model_limits == {"gpt-4.1": {"rpm": 60.0, "tpm": 90000.0},
                                    "mini": {"tpm": 5000.0}}
    assert limiter.model_buckets("unknown") == (None, None)


@pytest.mark.parametrize("model_limits", [
    ["gpt-4.1"], {"gpt-4.1": 60}, {"gpt-4.1": {"rpd": 5}}, {"gpt-4.1": {"rpm": 0}},
    {"gpt-4.1": {"rpm": True}}, {"gpt-4.1": {"tpm": "90000"}}, {"": {"rpm": 1}},
    {7: {"rpm": 1}}, {"m": {"rpm": float("nan")}},
])
def test_bad_model_limits_are_refused_naming_the_argument(model_limits):
    with pytest.raises(ValueError, match="model_limits"):
        RateLimiter(model_limits=model_limits)


def test_headers_scope_must_be_model_or_key():
    with pytest.raises(ValueError, match="headers_scope"):
        RateLimiter(headers_scope="global")


@pytest.mark.parametrize("headers", [
    {"Retry-After": "200000"},  # beyond 24 h: garbage, ignored
])
def test_a_retry_after_beyond_a_day_sets_no_pause(clock, headers):
    limiter = limiter_with(clock)
    assert limiter.observe("m", 429, headers) == 0.0
    assert limiter.pause_remaining("m") == 0.0


def test_a_shared_pause_is_never_longer_than_24_hours(clock):
    limiter = limiter_with(clock)
    limiter.pause(10 ** 7, model="m")
    assert limiter.pause_remaining("m") == 24 * 3600.0
    limiter.observe("m", 200, {"x-ratelimit-remaining-requests": "0",
                               "x-ratelimit-reset-requests": "100h"})
    assert limiter.pause_remaining("m") == 24 * 3600.0


@pytest.mark.parametrize("headers, pause", [
    ({"llm_provider-retry-after": "60"}, 60.0),  # LiteLLM's per-deployment rpm check
    ({"llm_provider-retry-after-ms": "1500"}, 1.5),
    ({"retry-after": "2", "llm_provider-retry-after": "9"}, 9.0),
    ({"Retry-After": "0"}, 0.0),
    ({"retry-after-ms": "0", "llm_provider-retry-after": "0"}, 0.0),
])
def test_observe_pauses_for_the_longest_wait_of_every_gateway_dialect(clock, headers, pause):
    limiter = limiter_with(clock)
    assert limiter.observe("m", 429, headers) == pause
    assert limiter.pause_remaining("m") == pause
