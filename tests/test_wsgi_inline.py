"""llmroute called inline from a web view, as a Django or Flask view would, under load.

A stdlib WSGI app (wsgiref on a threading server, no framework) creates one ``Client`` and one
``Router`` at start-up and calls them inline with a per-request deadline. Sixteen pages at once
against a gateway that is slow, or that answers 429 with a long Retry-After, must each answer
within the deadline with a clear error page (503/504), never a hung worker; against a healthy
gateway the pages share the client's connection pool instead of opening one per request.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import json
import socketserver
import threading
import time
from typing import Any, Callable, Dict, List, Tuple
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

import llmroute
from llmroute.testing import FakeGateway, Reply

#: Each page's budget for the model call: well under any worker timeout.
DEADLINE = 1.0
#: What a page may take, deadline included, on a loaded 2-core box.
PAGE_BOUND = 3.0
PAGES = 16


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    # The default backlog of 5 drops the SYNs of 16 simultaneous pages: they retry after 1 s.
    request_queue_size = 64


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


def _error_status(error: llmroute.LLMRouteError) -> str:
    """504 when the model did not answer in time, else 503 (busy or unavailable)."""
    errors = [e for _, e in error.errors] if isinstance(error, llmroute.AllModelsFailedError) \
        else [error]
    if any(isinstance(e, llmroute.APITimeoutError) for e in errors):
        return "504 Gateway Timeout"
    return "503 Service Unavailable"


def make_app(base_url: str) -> Tuple[Callable[..., Any], llmroute.Client]:
    """The web app: one client and router for the whole process, created at start-up."""
    client = llmroute.Client(base_url, "sk-test-wsgi-0123456789", pool_maxsize=PAGES,
                             limiter=llmroute.RateLimiter(rpm=6000, tpm=10_000_000))
    router = llmroute.Router(client)

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        prompt = parse_qs(environ.get("QUERY_STRING", "")).get("q", ["Say hello"])[0]
        try:
            result = router.complete(prompt, deadline=DEADLINE, max_tokens=64)
        except llmroute.LLMRouteError as err:
            status = _error_status(err)
            body = ("The assistant is unavailable right now (%s). Please try again shortly.\n"
                    % type(err).__name__).encode("utf-8")
            start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                    ("Retry-After", "30")])
            return [body]
        payload = json.dumps({"answer": result.content, "model": result.model}).encode("utf-8")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [payload]

    return app, client


class _Site:
    """The app served on 127.0.0.1 by a threading wsgiref server, for one test."""

    def __init__(self, base_url: str) -> None:
        self.app, self.client = make_app(base_url)
        self.server = make_server("127.0.0.1", 0, self.app, server_class=_ThreadingWSGIServer,
                                  handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def get(self, query: str) -> Tuple[int, str, float]:
        """(status, body, seconds) of one page."""
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.server.server_port,
                                          timeout=PAGE_BOUND + 5)
        try:
            conn.request("GET", "/?" + query)
            response = conn.getresponse()
            body = response.read().decode("utf-8")
            return response.status, body, time.monotonic() - started
        finally:
            conn.close()

    def load(self, pages: int = PAGES) -> List[Tuple[int, str, float]]:
        """``pages`` page requests at once; their results in order."""
        with concurrent.futures.ThreadPoolExecutor(pages) as pool:
            return list(pool.map(self.get, ["q=Say+hello+%d" % i for i in range(pages)]))

    def pool_counts(self) -> Tuple[int, int]:
        """(connections opened, requests sent) by the client's urllib3 pools (one per host)."""
        pools = self.client.session.get_adapter(self.client.base_url).poolmanager.pools
        counted = [pools[key] for key in pools.keys()]
        return (sum(p.num_connections for p in counted), sum(p.num_requests for p in counted))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()


@pytest.fixture
def site_for():
    sites = []

    def make(gateway: FakeGateway) -> _Site:
        site = _Site(gateway.base_url)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.close()


def test_pages_answer_within_the_deadline_when_the_gateway_is_slow(site_for):
    with FakeGateway(latency=5.0) as gateway:  # far slower than any page may wait
        site = site_for(gateway)
        started = time.monotonic()
        pages = site.load()
        wall = time.monotonic() - started
    statuses = [status for status, _, _ in pages]
    # 504: the model did not answer in time (a page that starts after the models have cooled
    # down is told 503 at once, which is as good an answer).
    assert set(statuses) <= {503, 504} and statuses.count(504) >= PAGES // 2
    assert all("unavailable right now" in body for _, body, _ in pages)
    slowest = max(seconds for _, _, seconds in pages)
    assert slowest < PAGE_BOUND, "a page took %.2fs" % slowest
    assert wall < PAGE_BOUND


def test_pages_answer_at_once_when_the_gateway_asks_for_a_long_wait(site_for):
    with FakeGateway(responder=lambda request: Reply(
            status=429, headers={"Retry-After": "120"})) as gateway:
        site = site_for(gateway)
        first = site.load()
        sent_first = len(gateway.requests)
        second = site.load()
        sent_second = len(gateway.requests) - sent_first
    pages = first + second
    assert [status for status, _, _ in pages] == [503] * (2 * PAGES)
    assert all("unavailable right now" in body for _, body, _ in pages)
    slowest = max(seconds for _, _, seconds in pages)
    assert slowest < PAGE_BOUND, "a page took %.2fs" % slowest
    # Each 429 pauses its model for every thread sharing the limiter: the pages that came after
    # never reached the gateway, and the second round sent nothing at all.
    assert sent_first < PAGES * 3
    assert sent_second == 0


def test_pages_reuse_the_clients_connection_pool(site_for):
    with FakeGateway() as gateway:
        site = site_for(gateway)
        pages = site.load() + site.load()
        opened_concurrently, _ = site.pool_counts()
        pages += [site.get("q=one+at+a+time") for _ in range(PAGES)]
        opened, sent = site.pool_counts()
        served = len(gateway.requests)
    assert [status for status, _, _ in pages] == [200] * (3 * PAGES)
    assert served == sent == 3 * PAGES
    # 32 pages at up to 16 at a time: never more connections than pages in flight...
    assert 1 <= opened_concurrently <= PAGES
    # ...and pages that come one after another find an idle pooled connection every time.
    assert opened == opened_concurrently, "sequential pages opened new connections"
