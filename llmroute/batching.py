"""batch(): run a function over many items on a thread pool, one result per item, none lost.

Work is submitted a few futures at a time (at most ``IN_FLIGHT_FACTOR * max_workers`` exist at
once), so a generator of a million items is fine; results come back in input order; each
item's exception is caught and kept with its traceback; Ctrl-C hands back what finished.
"""
from __future__ import annotations

import functools
import math
import queue
import time
import traceback as _traceback
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from heapq import heappop, heappush
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, TextIO, Tuple, Union

from .progress import ProgressLine, Tally
from .tokens import estimate_tokens

__all__ = ["batch", "ItemResult", "BatchResult", "BatchInterrupted"]

#: Futures allowed to exist per worker: one running, one queued so no worker ever idles.
IN_FLIGHT_FACTOR = 2
#: An iterator's items are ranked by ``priority`` within this many times ``max_workers``.
LOOKAHEAD_FACTOR = 4
#: After Ctrl-C, how long to wait for the items already running (they may be billed).
DEFAULT_INTERRUPT_GRACE = 10.0


@dataclass(frozen=True)
class ItemResult:
    """What happened to one item: ``value`` when ``ok``, else ``error`` (with ``traceback``).

    ``cancelled`` items never ran (``fail_fast`` or Ctrl-C). ``item`` is the input item, so an
    ``on_result`` callback can tell which it was even when no results are kept. ``error`` is
    the exception itself (``isinstance`` works) with its ``__traceback__`` cleared along its
    cause and context chain, so a kept result holds no frames (their locals: responses,
    buffers) alive; ``traceback`` is the formatted text.
    """

    index: int
    ok: bool
    value: Any = None
    error: Optional[BaseException] = None
    traceback: Optional[str] = field(default=None, repr=False)
    latency_ms: float = 0.0
    item: Any = field(default=None, repr=False)
    cancelled: bool = False


@dataclass(frozen=True)
class BatchResult:
    """Totals of a batch; ``results`` in input order (empty with ``keep_results=False``).

    Latency percentiles (ms) cover the items that ran (ok or failed); ``None`` when none did.
    """

    results: List[ItemResult]
    succeeded: int
    failed: int
    cancelled: int
    total_cost_usd: Decimal
    wall_seconds: float
    throughput: float
    p50: Optional[float]
    p95: Optional[float]
    p99: Optional[float]
    errors_by_type: Dict[str, int]

    def __str__(self) -> str:
        ran = self.succeeded + self.failed
        lines = ["batch: %d items in %.2fs (%.1f items/s): %d ok, %d failed, %d cancelled"
                 % (ran + self.cancelled, self.wall_seconds, self.throughput, self.succeeded,
                    self.failed, self.cancelled)]
        if self.p50 is not None:
            lines.append("latency: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms"
                         % (self.p50, self.p95, self.p99))
        lines.append("cost: $%s" % self.total_cost_usd)
        if self.errors_by_type:
            lines.append("errors: " + ", ".join(
                "%s %d" % kv for kv in sorted(self.errors_by_type.items(), key=lambda kv: -kv[1])))
        return "\n".join(lines)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch; ``result`` holds every item finished before it.

    ``unfinished`` items were still running when the grace period ended: they were neither
    delivered nor cancelled (their threads finish in the background).
    """

    def __init__(self, result: BatchResult, unfinished: int = 0) -> None:
        super().__init__("batch interrupted: %d finished, %d cancelled, %d still running"
                         % (result.succeeded + result.failed, result.cancelled, unfinished))
        self.result = result
        self.unfinished = unfinished


def batch(fn: Callable[[Any], Any], items: Iterable[Any], *, max_workers: int = 8,
          priority: Optional[Callable[[Any], Any]] = None, limiter: Any = None,
          on_result: Optional[Callable[[ItemResult], Any]] = None,
          progress: Union[bool, TextIO] = False, fail_fast: bool = False,
          keep_results: bool = True, clock: Callable[[], float] = time.monotonic,
          interrupt_grace: float = DEFAULT_INTERRUPT_GRACE, client: Any = None) -> BatchResult:
    """Run ``fn(item)`` for every item on ``max_workers`` threads; return a ``BatchResult``.

    ``priority(item)``: higher runs first (ties: shorter estimated prompt first), over a whole
    sequence or within a look-ahead window of an iterator. ``limiter``: a ``RateLimiter``
    reserved (1 request + the item's estimated prompt tokens) around each call, for functions
    that do not rate-limit themselves (a ``Client`` built with that limiter already does).
    ``on_result(item_result)`` runs in the caller's thread as each item finishes (in completion
    order, never concurrently), cancelled items included. ``progress``: True draws on stderr,
    or pass a stream. ``fail_fast``: after the first failure, items not started are reported as
    cancelled (a sequence's whole remainder; an iterator is not read further).

    Connection pool: ``client`` (a ``Client``, or any object with ``ensure_pool(size)``) is
    asked for ``max_workers`` pooled connections, so no worker opens a fresh connection per
    call. Without it, the object ``fn`` is a bound method of (also through
    ``functools.partial``) is asked, when it has ``ensure_pool``: ``batch(client.chat, ...)``
    and ``batch(router.complete, ...)`` need nothing more.

    Exceptions from ``fn`` are caught per item. Exceptions from ``on_result``, ``priority`` or
    the items iterator propagate after the pool is shut down (running items finish, but are
    not delivered). Ctrl-C raises ``BatchInterrupted`` (see there). Raises ``ValueError`` for
    bad arguments.
    """
    if not callable(fn):
        raise ValueError("fn must be callable, got %r" % (fn,))
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers <= 0:
        raise ValueError("max_workers must be an int greater than 0, got %r" % (max_workers,))
    for name, value in (("priority", priority), ("on_result", on_result)):
        if value is not None and not callable(value):
            raise ValueError("%s must be callable or None, got %r" % (name, value))
    if items is None or isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise ValueError("items must be an iterable of items (not a string), got %r"
                         % (type(items).__name__,))
    if limiter is not None and not callable(getattr(limiter, "reserve", None)):
        raise ValueError("limiter must be a RateLimiter (with reserve()), got %r" % (limiter,))
    if not isinstance(interrupt_grace, (int, float)) or not 0 <= interrupt_grace < math.inf:
        raise ValueError("interrupt_grace must be a finite number of seconds >= 0")
    pool_owner = client if client is not None else _bound_owner(fn)
    ensure_pool = getattr(pool_owner, "ensure_pool", None)
    if client is not None and not callable(ensure_pool):
        raise ValueError("client must have an ensure_pool(size) method (a Client), got %r"
                         % (client,))
    if callable(ensure_pool):
        ensure_pool(max_workers)
    line = None
    if progress:
        stream = None if progress is True else progress
        line = ProgressLine(stream, _length(items), clock=clock)
    run = _Run(fn, items, max_workers, priority, limiter, on_result, line, fail_fast,
               keep_results, clock, float(interrupt_grace))
    return run.run()


def _bound_owner(fn: Any) -> Any:
    """The object ``fn`` is a bound method of, looking through partials; else None."""
    target = fn
    for _ in range(8):  # partials of partials, bounded
        if not isinstance(target, functools.partial):
            break
        target = target.func
    return getattr(target, "__self__", None)


def _length(items: Any) -> Optional[int]:
    try:
        return len(items)
    except TypeError:
        return None


def prompt_tokens(item: Any) -> int:
    """The estimated prompt of an item: a str, a message list, or a dict (or object) with
    "prompt" or "messages"; else 0."""
    if isinstance(item, str):
        return estimate_tokens(item)
    if isinstance(item, Mapping):
        text = item.get("messages") or item.get("prompt")
    elif isinstance(item, (list, tuple)) and item and isinstance(item[0], Mapping):
        text = item  # a list of chat messages
    else:
        text = getattr(item, "messages", None) or getattr(item, "prompt", None)
    if isinstance(text, (str, list, tuple)):
        try:
            return estimate_tokens(text)
        except (AttributeError, TypeError, ValueError):  # not messages after all
            return 0  # an estimate only orders work: an odd item must not stop the batch
    return 0


class _Rank:
    """Submission order under ``priority``: higher first, then shorter prompt, then input."""

    __slots__ = ("key", "tokens", "index", "item")

    def __init__(self, key: Any, tokens: int, index: int, item: Any) -> None:
        self.key, self.tokens, self.index, self.item = key, tokens, index, item

    def __lt__(self, other: "_Rank") -> bool:
        if self.key != other.key:
            return self.key > other.key
        return (self.tokens, self.index) < (other.tokens, other.index)


class _Feed:
    """Hands out ``(index, item)`` in submission order: input order, or ranked by priority."""

    def __init__(self, items: Iterable[Any], priority: Optional[Callable[[Any], Any]],
                 window: int) -> None:
        self.sized = isinstance(items, Sequence)
        self._priority = priority
        self._window = window
        self._heap: List[_Rank] = []
        self._ranked: Optional[Any] = None
        if priority is not None and self.sized:
            self._items = items
            ranks = [_Rank(priority(x), prompt_tokens(x), i, None) for i, x in enumerate(items)]
            self._ranked = iter(sorted(ranks))
        self._source = enumerate(items)

    def take(self) -> Optional[Tuple[int, Any]]:
        """The next item to submit, or None when the input is used up."""
        if self._ranked is not None:
            rank = next(self._ranked, None)
            return None if rank is None else (rank.index, self._items[rank.index])
        if self._priority is None:
            return next(self._source, None)
        while len(self._heap) < self._window:
            pair = next(self._source, None)
            if pair is None:
                break
            index, item = pair
            heappush(self._heap, _Rank(self._priority(item), prompt_tokens(item), index, item))
        if not self._heap:
            return None
        rank = heappop(self._heap)
        return rank.index, rank.item

    def drain(self, rest_of_sequence: bool) -> List[Tuple[int, Any]]:
        """Items taken from the input but not handed out; with a sequence, optionally all."""
        left = [(r.index, r.item) for r in self._heap]
        self._heap = []
        if rest_of_sequence and self.sized:
            while True:
                pair = self.take()
                if pair is None:
                    break
                left.append(pair)
        return left


def without_frames(error: BaseException) -> BaseException:
    """``error`` with ``__traceback__`` cleared on it and every exception of its cause and
    context chain and an exception group's members (each visited once: a chain may loop);
    returns ``error`` itself."""
    seen = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending.append(current.__cause__)
        pending.append(current.__context__)
        grouped = getattr(current, "exceptions", ())  # an ExceptionGroup's members
        if isinstance(grouped, tuple):
            pending.extend(e for e in grouped if isinstance(e, BaseException))
    return error


def _wait_done(done: "queue.SimpleQueue[Future]", timeout: Optional[float] = None) -> Future:
    """The next finished future (Ctrl-C interrupts the wait). A seam for tests."""
    return done.get(timeout=timeout)


class _Run:
    """One batch's state; everything but ``_call`` runs in the caller's thread."""

    def __init__(self, fn: Callable[[Any], Any], items: Iterable[Any], max_workers: int,
                 priority: Optional[Callable[[Any], Any]], limiter: Any,
                 on_result: Optional[Callable[[ItemResult], Any]],
                 line: Optional[ProgressLine], fail_fast: bool, keep_results: bool,
                 clock: Callable[[], float], grace: float) -> None:
        self._fn = fn
        self._limiter = limiter
        self._on_result = on_result
        self._line = line
        self._fail_fast = fail_fast
        self._keep = keep_results
        self._clock = clock
        self._grace = grace
        self._workers = max_workers
        self._feed = _Feed(items, priority, LOOKAHEAD_FACTOR * max_workers)
        self._max_in_flight = IN_FLIGHT_FACTOR * max_workers
        self._tally = Tally(exact=keep_results)
        self._results: List[Optional[ItemResult]] = []
        # Futures submitted and not yet delivered -> (index, item). Caller's thread only.
        self._pending: Dict[Future, Tuple[int, Any]] = {}
        # Workers put their finished futures here (from done callbacks); the caller takes.
        self._done: "queue.SimpleQueue[Future]" = queue.SimpleQueue()
        self._stopping = False
        self._started = 0.0

    def run(self) -> BatchResult:
        self._started = self._clock()
        pool = ThreadPoolExecutor(self._workers, thread_name_prefix="llmroute-batch")
        try:
            self._loop(pool)
        except KeyboardInterrupt:
            self._interrupted(pool)
        except BaseException:
            self._stopping = True
            pool.shutdown(wait=True, cancel_futures=True)
            self._close_line()
            raise
        pool.shutdown(wait=True)
        self._close_line()
        return self._result()

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        while True:
            while not self._stopping and len(self._pending) < self._max_in_flight:
                pair = self._feed.take()
                if pair is None:
                    break
                self._submit(pool, *pair)
            if not self._pending:
                return
            self._take(_wait_done(self._done))

    def _submit(self, pool: ThreadPoolExecutor, index: int, item: Any) -> None:
        if self._keep:
            self._results.extend([None] * (index + 1 - len(self._results)))
        future = pool.submit(self._call, index, item)
        self._pending[future] = (index, item)
        future.add_done_callback(self._done.put)

    def _take(self, future: Future) -> None:
        entry = self._pending.pop(future, None)
        if entry is None:
            return
        index, item = entry
        if future.cancelled():
            self._deliver(self._cancelled(index, item))
            return
        result = future.result()
        self._deliver(result)
        if self._fail_fast and not result.ok and not self._stopping:
            self._stop(rest_of_sequence=True)

    def _stop(self, rest_of_sequence: bool) -> None:
        """Submit nothing more; cancel what has not started (delivered as it is cancelled)."""
        self._stopping = True
        for future in list(self._pending):
            future.cancel()  # its done callback queues it; _take reports it as cancelled
        for index, item in self._feed.drain(rest_of_sequence):
            if self._keep:
                self._results.extend([None] * (index + 1 - len(self._results)))
            self._deliver(self._cancelled(index, item))

    def _interrupted(self, pool: ThreadPoolExecutor) -> None:
        """Ctrl-C: cancel the queued, wait (bounded) for the running, then raise."""
        try:
            self._stop(rest_of_sequence=False)
            # The grace period is real seconds: the queue waits in them, whatever the clock.
            deadline = time.monotonic() + self._grace
            while self._pending:
                try:  # a timeout of 0 still takes what has already finished
                    future = _wait_done(self._done, max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                self._take(future)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting, report what finished
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            self._close_line()
        raise BatchInterrupted(self._result(), unfinished=len(self._pending)) from None

    def _call(self, index: int, item: Any) -> ItemResult:
        """Run one item in a worker thread; whatever it raises becomes its result."""
        started = self._clock()
        try:
            value = self._fn(item) if self._limiter is None else self._limited(item)
        except BaseException as err:  # the item's outcome, whatever it is: none escapes a batch
            text = _traceback.format_exc()
            return ItemResult(index, False, error=without_frames(err), traceback=text,
                              latency_ms=(self._clock() - started) * 1000.0, item=item)
        return ItemResult(index, True, value=value, latency_ms=(self._clock() - started) * 1000.0,
                          item=item)

    def _limited(self, item: Any) -> Any:
        """``fn(item)`` inside a reservation of 1 request + the item's estimated prompt."""
        with self._limiter.reserve(prompt_tokens(item)) as reservation:
            value = self._fn(item)
            usage = getattr(value, "usage", None)
            if usage is not None:
                reservation.settle(getattr(usage, "total_tokens", 0) or 0)
            return value

    def _cancelled(self, index: int, item: Any) -> ItemResult:
        return ItemResult(index, False, item=item, cancelled=True)

    def _deliver(self, result: ItemResult) -> None:
        """Count and store the result first, so it is kept even if on_result is interrupted."""
        tally = self._tally
        tally.add(result)
        if self._keep:
            self._results[result.index] = result
        if self._line is not None:
            self._line.update(tally.succeeded + tally.failed + tally.cancelled, tally.succeeded,
                              tally.failed, tally.cost if tally.priced else None)
        if self._on_result is not None:
            self._on_result(result)

    def _close_line(self) -> None:
        if self._line is not None:
            self._line.close()

    def _result(self) -> BatchResult:
        tally = self._tally
        wall = max(self._clock() - self._started, 0.0)
        ran = tally.succeeded + tally.failed
        results = [r for r in self._results if r is not None] if self._keep else []
        return BatchResult(
            results=results, succeeded=tally.succeeded, failed=tally.failed,
            cancelled=tally.cancelled, total_cost_usd=tally.cost, wall_seconds=wall,
            throughput=ran / wall if wall > 0 else 0.0, p50=tally.percentile(50),
            p95=tally.percentile(95), p99=tally.percentile(99),
            errors_by_type=dict(tally.errors_by_type))
