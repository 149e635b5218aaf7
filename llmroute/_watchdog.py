"""A deadline watchdog: one lazily started daemon thread that fires callbacks when moments pass.

A socket read bounded by a timeout is not bounded as a whole when http.client or urllib3 loop
over several reads inside one call (a chunk-size line or a gzip header trickling one byte at a
time). The transport registers the attempt's deadline while a body is read; when it passes,
the callback shuts the response's socket down, so the blocked read returns at once. The thread
starts on first use (never at import) and is reset in a forked child.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["watch", "cancel", "shutdown_socket", "expect_answer", "answer_deadline"]

log = logging.getLogger(__name__)

# Guards _heap, _live and _thread: the pending moments and the one thread waiting on them.
_cond = threading.Condition(threading.Lock())
_heap: List[Tuple[float, int]] = []  # (time.monotonic() moment, ticket)
_live: Dict[int, Callable[[], None]] = {}  # ticket -> callback, until fired or cancelled
_tickets = itertools.count(1)
_thread: Optional[threading.Thread] = None
# The deadline of the request this thread is sending, for the connection reading its headers.
_sending = threading.local()


def watch(end: float, clock: Callable[[], float], callback: Callable[[], None]) -> int:
    """Call ``callback`` once ``end`` (on ``clock``) passes, unless cancelled; a ticket.

    The moment is taken in real time (``time.monotonic``) now, as the clock may be injected.
    """
    global _thread
    moment = time.monotonic() + (end - clock())
    ticket = next(_tickets)
    with _cond:
        _live[ticket] = callback
        heapq.heappush(_heap, (moment, ticket))
        if _thread is None:
            _thread = threading.Thread(target=_run, name="llmroute-deadline-watchdog",
                                       daemon=True)
            _thread.start()
        elif _heap[0][1] == ticket:
            _cond.notify()  # the earliest moment changed: the thread waits less
    return ticket


def cancel(ticket: int) -> bool:
    """Forget a ticket; False if its callback already fired (or is firing)."""
    with _cond:
        return _live.pop(ticket, None) is not None


def expect_answer(deadline: Optional[Tuple[float, Callable[[], float]]]) -> None:
    """Set (or clear, with None) the ``(end, clock)`` of the request this thread sends next."""
    _sending.deadline = deadline


def answer_deadline() -> Optional[Tuple[float, Callable[[], float]]]:
    """The ``(end, clock)`` set by ``expect_answer`` on this thread, if any."""
    return getattr(_sending, "deadline", None)


def _run() -> None:
    while True:
        due: List[Callable[[], None]] = []
        with _cond:
            while _heap and _heap[0][1] not in _live:
                heapq.heappop(_heap)  # cancelled
            if not _heap:
                _cond.wait()
                continue
            wait = _heap[0][0] - time.monotonic()
            if wait > 0:
                _cond.wait(wait)
                continue
            while _heap and _heap[0][0] <= time.monotonic():
                callback = _live.pop(heapq.heappop(_heap)[1], None)
                if callback is not None:
                    due.append(callback)
        for callback in due:  # outside the lock; a callback's failure never stops the thread
            try:
                callback()
            except Exception:  # pragma: no cover - callbacks guard themselves
                log.debug("a deadline callback failed", exc_info=True)


def _reset_in_child() -> None:
    """A forked child has no watchdog thread: start afresh (on its first use)."""
    global _cond, _thread
    _cond = threading.Condition(threading.Lock())
    _heap.clear()
    _live.clear()
    _thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


def shutdown_socket(sock: Any) -> None:
    """Shut a socket down for both directions so a read blocked on it returns; never raises."""
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError, ValueError):
        pass
