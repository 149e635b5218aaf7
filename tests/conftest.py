"""Shared fixtures: a clean environment, a fake clock whose sleeps advance it."""
from __future__ import annotations

import os
import threading

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No test sees the developer's real keys, gateways, proxies or catalog.

    ``LLMROUTE_TEST_*`` (test servers such as the PostgreSQL DSN) are kept.
    """
    import os

    for name in list(os.environ):
        if name.startswith(("LLMROUTE_", "OPENAI_")) and not name.startswith("LLMROUTE_TEST_"):
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


# -- Redis ---------------------------------------------------------------------------------------
# Read before _clean_env removes every LLMROUTE_* variable from the tests' environment.
_REDIS_URL = os.environ.get("LLMROUTE_TEST_REDIS_URL")


def _redis_unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail when CI=true: CI must run the Redis tests."""
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but the Redis tests cannot run: " + reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_package():
    """The redis client package (tests of a dead or absent Redis need no server, only it)."""
    try:
        import redis
    except ImportError:
        _redis_unavailable("the redis package is not installed: pip install 'llmroute[redis]'")
    return redis


@pytest.fixture(scope="session")
def redis_url(redis_package):
    """The URL of a live Redis for integration tests (``LLMROUTE_TEST_REDIS_URL``).

    Skips with the reason when it is unset, dead or the redis package is missing; with
    ``CI=true`` each of those fails instead.
    """
    if not _REDIS_URL:
        _redis_unavailable("LLMROUTE_TEST_REDIS_URL is not set: start a redis-server and "
                           "export its URL (e.g. redis://127.0.0.1:6379/15) to run this test")
    client = redis_package.Redis.from_url(_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis_package.RedisError as err:
        _redis_unavailable("Redis at LLMROUTE_TEST_REDIS_URL did not answer: %s" % err)
    finally:
        client.close()
    return _REDIS_URL


@pytest.fixture
def redis_client(redis_url):
    """A plain client of the test Redis, for assertions on keys."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def namespace():
    """A namespace of its own for each test, so tests sharing one Redis never meet."""
    import uuid

    return "test-" + uuid.uuid4().hex[:10]


@pytest.fixture
def redis_server_factory(redis_url):
    """Start dedicated redis-servers (to stop in a test); each is killed at teardown."""
    import shutil

    from _redis import RedisServer

    if shutil.which("redis-server") is None:
        _redis_unavailable("redis-server is not on PATH (apt-get install -y redis-server)")
    servers = []

    def start(port: int = 0):
        server = RedisServer(port=port).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.cleanup()


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


@pytest.fixture
def postgres_dsn():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards.

    Reads ``LLMROUTE_TEST_POSTGRES_DSN`` (``.ci/run`` starts a server and sets it). Unset or
    unreachable: the test is skipped, except under ``CI=true`` where that is a failure.
    """
    import os
    import uuid
    from urllib.parse import urlsplit

    dsn = os.environ.get("LLMROUTE_TEST_POSTGRES_DSN")
    in_ci = os.environ.get("CI", "").lower() == "true"

    def unavailable(reason):
        if in_ci:
            pytest.fail("CI=true but %s" % reason)
        pytest.skip(reason)

    if not dsn or not dsn.startswith(("postgresql://", "postgres://")):
        unavailable("LLMROUTE_TEST_POSTGRES_DSN is not set to a postgresql:// URL (no "
                    "PostgreSQL server for the ledger tests; .ci/run starts one)")
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except psycopg.Error as err:
        unavailable("the PostgreSQL server in LLMROUTE_TEST_POSTGRES_DSN is not reachable (%s)"
                    % type(err).__name__)
    name = "llmroute_test_%s" % uuid.uuid4().hex[:12]
    with admin:
        admin.execute("CREATE DATABASE %s" % name)
        try:
            yield urlsplit(dsn)._replace(path="/" + name).geturl()
        finally:
            admin.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
