"""FakeGateway's shared state: the scripted replies and the request log with its counters.

Each structure has one lock and public methods; the gateway owns one of each and the server
reaches them only through the gateway's ``Backstage`` (see ``_server.Backend``).
"""
from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional


class Script:
    """Replies queued per model and for any model, played first in, first out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _by_model and _any
        self._by_model: Dict[str, Deque[Any]] = {}
        self._any: Deque[Any] = collections.deque()

    def add(self, model: Optional[str], replies: Iterable[Any]) -> None:
        """Queue ``replies`` for ``model`` (``None``: whichever model is asked next)."""
        with self._lock:
            if model is None:
                self._any.extend(replies)
            else:
                self._by_model.setdefault(model, collections.deque()).extend(replies)

    def next(self, model: Optional[str]) -> Optional[Any]:
        """The model's next reply, else the any-model one, else ``None``."""
        with self._lock:
            queue = self._by_model.get(model or "")
            if queue:
                return queue.popleft()
            if self._any:
                return self._any.popleft()
            return None

    def pending(self) -> int:
        """How many replies are still queued (all models)."""
        with self._lock:
            return len(self._any) + sum(len(q) for q in self._by_model.values())

    def clear(self) -> None:
        with self._lock:
            self._by_model.clear()
            self._any.clear()


class Ticket:
    """Where one request's record lives, so it can be updated unless ``reset()`` intervened."""

    __slots__ = ("record", "generation", "index", "finished")

    def __init__(self, record: Any, generation: int, index: int) -> None:
        self.record, self.generation, self.index = record, generation, index
        self.finished = False  # whether it still counts as in flight


class Recorder:
    """The request log, the disconnect count, the models seen and the in-flight counters.

    ``in_flight`` counts requests from arrival until their answer is complete (or abandoned);
    ``max_in_flight`` is the most counted at once since creation or ``reset()``.
    """

    def __init__(self, declared: Iterable[str] = ()) -> None:
        # Guards every field below; waited on by wait_for().
        self._cond = threading.Condition()
        self._declared = list(declared)
        self._records: List[Any] = []
        self._generation = 0
        self._disconnects = 0
        self._models: Dict[str, None] = dict.fromkeys(self._declared)
        self._in_flight = 0
        self._max_in_flight = 0

    def add(self, record: Any) -> Ticket:
        """Log ``record`` (a ``RecordedRequest``) and count it in flight until ``finish``."""
        with self._cond:
            self._records.append(record)
            if record.model is not None:
                self._models.setdefault(record.model, None)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._cond.notify_all()
            return Ticket(record, self._generation, len(self._records) - 1)

    def update(self, ticket: Ticket, **changes: Any) -> None:
        """Replace fields of the ticket's record (``answered_status``, ``disconnected``)."""
        with self._cond:
            if ticket.generation != self._generation:
                return  # reset() ran meanwhile: that record is gone
            self._records[ticket.index] = dataclasses.replace(
                self._records[ticket.index], **changes)
            if changes.get("disconnected"):
                self._disconnects += 1
            self._cond.notify_all()

    def finish(self, ticket: Ticket) -> None:
        """Stop counting the ticket's request in flight; later calls do nothing."""
        with self._cond:
            if not ticket.finished:
                ticket.finished = True
                self._in_flight -= 1
                self._cond.notify_all()

    def note_model(self, model: str) -> None:
        """Add ``model`` to the models seen (a scripted one, before any request)."""
        with self._cond:
            self._models.setdefault(model, None)

    def records(self) -> List[Any]:
        with self._cond:
            return list(self._records)

    def models(self) -> List[str]:
        with self._cond:
            return list(self._models)

    @property
    def count(self) -> int:
        with self._cond:
            return len(self._records)

    @property
    def disconnects(self) -> int:
        with self._cond:
            return self._disconnects

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._cond:
            return self._max_in_flight

    def wait_for(self, predicate: Callable[["Recorder"], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (it reads the properties above); ``False`` on
        timeout. The condition is re-entrant, so the properties may be read inside."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def reset(self) -> None:
        """Forget records, disconnects and models seen; the peak restarts at what is in flight."""
        with self._cond:
            self._records = []
            self._generation += 1
            self._disconnects = 0
            self._models = dict.fromkeys(self._declared)
            self._max_in_flight = self._in_flight
