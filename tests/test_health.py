"""Circuit breaker and latency windows, driven by a fake clock."""
from __future__ import annotations

import threading

import pytest

from llmroute.health import CooldownPolicy, HealthBoard, LatencyStats, ModelHealth

M = "gpt-5.4"


@pytest.fixture
def board(clock):
    return HealthBoard(CooldownPolicy(failures=3, window=60.0, cooldown=30.0), clock=clock)


def fail(board, n, model=M):
    for i in range(n):
        board.failed(model, "InternalServerError: HTTP 503 #%d" % i)


@pytest.mark.parametrize("kwargs", [
    {"failures": 0}, {"failures": 1.5}, {"failures": True}, {"window": 0}, {"window": -1},
    {"cooldown": float("inf")}, {"cooldown": float("nan")}, {"cooldown": "30"},
])
def test_cooldown_policy_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        CooldownPolicy(**kwargs)


def test_cooldown_policy_is_frozen():
    with pytest.raises(AttributeError):
        CooldownPolicy().failures = 5


def test_unknown_model_is_ok_and_admitted(board):
    assert board.check(M) is None
    assert board.acquire(M) == (None, False)
    assert board.health([M])[M] == ModelHealth("ok", 0, None, None)


def test_engages_after_n_failures_within_the_window(board, clock):
    fail(board, 2)
    assert board.check(M) is None
    fail(board, 1)
    health = board.health()[M]
    assert health.state == "cooling" and health.cooling_until == clock() + 30.0
    assert "HTTP 503 #0" in health.last_error
    reason, probe = board.acquire(M)
    assert "cooling down for 30.0s more" in reason and probe is False
    clock.advance(29.9)
    assert board.acquire(M)[0] is not None


def test_does_not_engage_when_failures_are_spread_beyond_the_window(board, clock):
    for _ in range(6):
        fail(board, 1)
        clock.advance(31.0)  # only two failures ever share a 60 s window
    assert board.health()[M].state == "ok"
    assert board.health()[M].failures == 1
    assert board.acquire(M) == (None, False)


def test_half_open_lets_exactly_one_probe_through(board, clock):
    fail(board, 3)
    clock.advance(30.0)
    assert board.health()[M].state == "probing"
    assert board.check(M) is None
    assert board.acquire(M) == (None, True)
    reason, probe = board.acquire(M)  # a second thread while the probe is in flight
    assert "probing" in reason and probe is False


def test_probe_success_closes_the_circuit(board, clock):
    fail(board, 3)
    clock.advance(31.0)
    _, probe = board.acquire(M)
    board.succeeded(M, 120.0, probe=probe)
    assert board.health()[M] == ModelHealth("ok", 0, None, board.health()[M].last_error)
    assert board.acquire(M) == (None, False)
    fail(board, 2)  # the old failures were forgotten: two new ones do not re-open it
    assert board.health()[M].state == "ok"


def test_probe_failure_reopens_for_another_cooldown(board, clock):
    fail(board, 3)
    clock.advance(31.0)
    _, probe = board.acquire(M)
    board.failed(M, "APITimeoutError: timed out", probe=probe)
    health = board.health()[M]
    assert health.state == "cooling" and health.cooling_until == clock() + 30.0
    assert health.last_error == "APITimeoutError: timed out"
    clock.advance(30.0)
    assert board.acquire(M) == (None, True)


def test_neutral_outcome_gives_the_probe_slot_back(board, clock):
    fail(board, 3)
    clock.advance(31.0)
    _, probe = board.acquire(M)
    board.finished(M, probe, "BadRequestError: HTTP 400")
    assert board.health()[M].state == "probing"
    assert board.acquire(M) == (None, True)
    assert board.stats()[M].errors == 4


def test_failures_of_calls_sent_before_the_trip_do_not_extend_the_cooldown(board, clock):
    fail(board, 3)
    until = board.health()[M].cooling_until
    clock.advance(10.0)
    fail(board, 5)
    assert board.health()[M].cooling_until == until


def test_models_are_independent(board):
    fail(board, 3, "claude-opus-4.6")
    assert board.check("claude-opus-4.6") is not None
    assert board.check(M) is None


def test_latency_percentiles_use_nearest_rank_over_a_bounded_window(clock):
    board = HealthBoard(clock=clock, latency_window=100)
    for ms in range(1, 201):  # only 101..200 stay in the window
        board.succeeded(M, float(ms))
    board.failed(M, "x")
    stats = board.stats([M, "gpt-4.1"])
    assert stats[M] == LatencyStats(100, 150.0, 195.0, 199.0, 1)
    assert stats["gpt-4.1"] == LatencyStats(0, None, None, None, 0)
    assert board.p50s([M, "gpt-4.1"]) == {M: 150.0, "gpt-4.1": None}


def test_snapshots_are_read_only(board):
    fail(board, 1)
    with pytest.raises(TypeError):
        board.health()[M] = None
    with pytest.raises(TypeError):
        board.stats()[M] = None


def test_concurrent_failures_engage_once_and_admit_one_probe(clock):
    board = HealthBoard(CooldownPolicy(failures=50, window=60, cooldown=5), clock=clock)
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        for _ in range(25):
            board.failed(M, "boom")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert board.health()[M].state == "cooling"
    assert board.stats()[M].errors == 200
    clock.advance(5)
    probes = []
    barrier = threading.Barrier(8)

    def admit():
        barrier.wait()
        probes.append(board.acquire(M))

    threads = [threading.Thread(target=admit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sum(1 for reason, probe in probes if probe) == 1
    assert sum(1 for reason, probe in probes if reason is not None) == 7


def test_a_missing_model_cools_down_at_once_and_is_probed_after(board, clock):
    board.missing(M, "ModelNotFoundError: HTTP 400 from gpt-5.4: Invalid model name")
    health = board.health()[M]
    assert health.state == "cooling" and health.cooling_until == clock() + 30.0
    assert "Invalid model name" in health.last_error
    assert board.stats()[M].errors == 1
    assert board.acquire(M)[0] is not None
    clock.advance(30.0)
    assert board.acquire(M) == (None, True)
    board.missing(M, "still unknown", probe=True)
    assert board.health()[M].state == "cooling"
    assert board.check("other-model") is None
