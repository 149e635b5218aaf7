"""Shared fixtures: a clean environment, a fake clock whose sleeps advance it."""
from __future__ import annotations

import threading

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No test sees the developer's real keys, gateways, proxies or catalog."""
    import os

    for name in list(os.environ):
        if name.startswith(("LLMROUTE_", "OPENAI_")):
            monkeypatch.delenv(name, raising=False)


class FakeClock:
    """A monotonic clock that only moves when told to; ``sleep`` records and advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(scope="module")
def gateway():
    """One FakeGateway per test module (starting a server per test costs more than the test)."""
    from llmroute.testing import FakeGateway

    with FakeGateway() as gw:
        yield gw


@pytest.fixture
def gw(gateway):
    """The module's gateway with its scripts and request log cleared for this test."""
    gateway.reset()
    yield gateway


@pytest.fixture
def serve():
    """Start misbehaving raw-socket servers (``tests/_servers.py``); all closed after the test."""
    from _servers import RawServer

    servers = []

    def start(handler):
        server = RawServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
