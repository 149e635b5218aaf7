"""Router: classify a prompt, pick models from its route, try them in turn, say why.

One routed call: classify → the task's route → per-model params and static filters (feature,
context window, ``max_cost_usd``) → order by priority → for each candidate: cooldown check,
``Budget`` hold, ``Client.chat``; a failure that another model may not share (5xx, a
connection error or timeout, 404, an unknown model on 400 or 404, 429 past the cap, a bad 2xx
body) moves on, one that every model would share (other 400s, 401, 403, 422) is raised at once.
A failure after the request was sent may have been billed, so its hold is kept at the worst case. A model that is skipped is never sent a request. The router is shared
by threads: routes are immutable, health has its own lock, no lock spans a request.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from . import _candidates as cand
from . import _checks as checks
from ._options import CALL_OPTIONS
from .client import Client
from .costs import Budget, BudgetHold
from .errors import (AllModelsFailedError, APIConnectionError, APIStatusError,
                     BudgetExceededError, ContextLengthExceededError, InternalServerError,
                     InvalidResponseError, ModelNotFoundError, NotFoundError, RateLimitError,
                     RateLimitTimeout, ToolCallError)
from .health import CooldownPolicy, HealthBoard, LatencyStats, ModelHealth
from .results import ChatResult
from .routes import TASKS, RoutesSpec, RouteTable, load_routes
from .tokens import estimate_tokens

__all__ = ["Router", "RouteResult"]

log = logging.getLogger(__name__)

#: Failures that say the model (not the request) is unwell: they count toward a cooldown.
_UNHEALTHY = (InternalServerError, APIConnectionError, NotFoundError, RateLimitError,
              InvalidResponseError)
#: Statuses without a class of their own that another model may well not share.
_FALLBACK_STATUSES = frozenset({408, 409})
#: Disposition of a model the gateway does not know: fall back and cool it down at once.
_MISSING = "missing"
#: Cues shown in a reason line: enough to see why, short enough for one log line.
_REASON_CUES = 3

Messages = Sequence[Mapping[str, Any]]
Prompt = Union[str, Messages]


@dataclass(frozen=True)
class RouteResult(ChatResult):
    """A ``ChatResult`` plus how it was routed: the ``task``, its ``classification`` (``None``
    when the task was given), a one-line ``reason``, ``routed_via`` ("primary", "fallback",
    "context_fit", "budget") and ``tried``: (model, error or skip reason) of each model passed
    over, in order."""

    task: Any = None  # a TaskType, or the str label of a custom task
    classification: Any = None
    reason: str = ""
    routed_via: str = "primary"
    tried: Tuple[Tuple[str, str], ...] = ()


class _Passed(NamedTuple):
    """A model passed over: how (``kind`` becomes ``routed_via``), why in full (``detail``)
    and for the reason line (``short``), and the error it failed with (``None`` when it was
    skipped or its budget hold refused: nothing was sent)."""

    model: str
    kind: str
    detail: str
    short: str
    error: Optional[BaseException] = None


class _Attempt(NamedTuple):
    """One model's turn: its ``result``, or how it was ``passed`` over."""

    result: Optional[ChatResult]
    passed: Optional[_Passed]


def _as_messages(prompt: Prompt) -> List[Mapping[str, Any]]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("prompt is empty")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, bytes) or not isinstance(prompt, Sequence) or not prompt:
        raise ValueError("prompt must be a non-empty string or a non-empty list of messages, "
                         "got %r" % (type(prompt).__name__,))
    for message in prompt:
        if not isinstance(message, Mapping) or "role" not in message:
            raise ValueError("each message must be a dict with a 'role', got %r" % (message,))
    return list(prompt)


def _check_priority(priority: Any) -> str:
    return checks.choice("priority", priority, cand.PRIORITIES)


def _check_cap(value: Any) -> Optional[Decimal]:
    return checks.money("max_cost_usd", value, allow_none=True)


def _check_deadline(deadline: Any) -> Optional[float]:
    return checks.number("deadline", deadline, above=0, allow_none=True)


def _task_name(task: Any, known: Sequence[str]) -> str:
    name = getattr(task, "value", task)
    if not isinstance(name, str) or name not in known:
        raise ValueError("unknown task %r; known tasks: %s" % (task, ", ".join(known)))
    return name


def _as_task_type(name: str) -> Any:
    """A built-in label as its TaskType; a custom task's label stays the string."""
    from .classification import TaskType
    return TaskType(name) if name in TASKS else name


def _custom_labels(classifier: Any) -> Tuple[str, ...]:
    """The custom task labels ``classifier`` can give (``Classifier.custom_labels``; none for
    the default classifier or a plain function). Raises ``ValueError`` for one that is a
    built-in label."""
    labels = tuple(getattr(classifier, "custom_labels", ()) or ())
    clash = [label for label in labels if label in TASKS]
    if clash:
        raise ValueError("classifier: custom task %r has the name of a built-in task"
                         % (clash[0],))
    return labels


def _check_routes_match(routes: Mapping[str, Any], custom: Tuple[str, ...]) -> None:
    """Both directions: a route for a task the classifier cannot give, or a custom task of
    the classifier without a route, is a ``ValueError``."""
    extra = [task for task in routes if task not in TASKS and task not in custom]
    if extra:
        raise ValueError("unknown task %r in routes: the classifier cannot give it (known "
                         "tasks: %s)" % (extra[0], ", ".join(TASKS + custom)))
    missing = [task for task in custom if task not in routes]
    if missing:
        raise ValueError("the classifier's custom task %r has no route: give "
                         "routes={%r: [model, ...]}" % (missing[0], missing[0]))


def _describe(error: BaseException) -> str:
    return "%s: %s" % (type(error).__name__, error)


def _short(error: BaseException) -> str:
    status = getattr(error, "status_code", None)
    name = type(error).__name__
    return "%s %s" % (name, status) if isinstance(error, APIStatusError) else name


def _maybe_billed(error: BaseException) -> bool:
    """Whether a failed call may still have been billed: a 2xx arrived (a bad body, bad tool
    arguments) or the request reached the server before the connection failed. The transport
    sets ``request_sent`` on connection errors; without it, assume it was sent."""
    if isinstance(error, (InvalidResponseError, ToolCallError)):
        return True
    if isinstance(error, APIConnectionError):
        return bool(getattr(error, "request_sent", True))
    return False


def _disposition(error: BaseException) -> Optional[str]:
    """How a failure moves on: "unhealthy" (counts toward a cooldown), "context_fit" (try a
    larger window), "missing" (the gateway does not know the model: skip it for a cooldown),
    "fallback" (try the next model), or ``None``: raise it, every model would."""
    if isinstance(error, ModelNotFoundError):
        return _MISSING
    if isinstance(error, ContextLengthExceededError):
        return cand.CONTEXT_FIT
    if isinstance(error, _UNHEALTHY):
        return "unhealthy"
    if isinstance(error, APIStatusError) and type(error) is APIStatusError and (
            error.status_code in _FALLBACK_STATUSES or error.status_code >= 500):
        return "unhealthy"
    if isinstance(error, (RateLimitTimeout, ToolCallError)):
        return cand.FALLBACK  # our own limiter's wait, or one bad answer: not the model's health
    return None


class Router:
    """Routes each prompt to the model its task calls for, with fallbacks, budgets and
    cooldowns. Raises ``ValueError`` for bad routes, priority or caps.

    ``health_backend`` (a Redis URL or client) shares the cooldowns with every process of
    ``namespace``: a model failing for one worker is skipped by all until its probe succeeds.
    A ``classifier`` with custom tasks (``Classifier(tasks=...)``) needs a route for each of
    them, and a route for a task the classifier cannot give is refused (``ValueError``);
    ``RouteResult.task`` is then the custom label, a ``str``.
    """

    def __init__(self, client: Client, *, routes: RoutesSpec = None,
                 priority: str = "balanced", max_cost_usd: Any = None,
                 budget: Optional[Budget] = None,
                 cooldown: Optional[CooldownPolicy] = CooldownPolicy(),
                 classifier: Any = None, clock: Optional[Callable[[], float]] = None,
                 health_backend: Any = None, namespace: str = "default") -> None:
        if not isinstance(client, Client):
            raise ValueError("client must be an llmroute.Client, got %r" % (client,))
        if budget is not None and not isinstance(budget, Budget):
            raise ValueError("budget must be a Budget or None, got %r" % (budget,))
        if cooldown is not None and not isinstance(cooldown, CooldownPolicy):
            raise ValueError("cooldown must be a CooldownPolicy or None, got %r" % (cooldown,))
        if classifier is not None and not (callable(classifier)
                                           or callable(getattr(classifier, "classify", None))):
            raise ValueError("classifier must be callable or have a classify() method, got %r"
                             % (classifier,))
        checks.callable_("clock", clock, allow_none=True)
        self.client = client
        custom = _custom_labels(classifier)
        if routes is None or isinstance(routes, Mapping):  # in the classifier's terms
            _check_routes_match(routes or {}, custom)
        self.routes: RouteTable = load_routes(routes, tasks=custom)
        _check_routes_match(self.routes, custom)
        self.priority = _check_priority(priority)
        self.max_cost_usd = _check_cap(max_cost_usd)
        self.budget = budget
        self._clock = clock if clock is not None else client.transport.clock
        policy = cooldown if cooldown is not None else CooldownPolicy()
        if health_backend is None:
            self._health = HealthBoard(policy, clock=self._clock)
        else:  # cooldowns shared by every process of the namespace (see backends.redis_health)
            self._health = HealthBoard(policy, clock=self._clock, backend=health_backend,
                                       namespace=namespace)
        self._classifier = classifier

    @classmethod
    def from_file(cls, client: Client, path: Union[str, "os.PathLike[str]"],
                  **kwargs: Any) -> "Router":
        """A router whose routes are read from a JSON file over the defaults."""
        custom = _custom_labels(kwargs.get("classifier"))
        return cls(client, routes=RouteTable.from_file(path, base=load_routes(tasks=()),
                                                       tasks=custom), **kwargs)

    # Observation --------------------------------------------------------------------------------
    def health(self) -> Mapping[str, ModelHealth]:
        """Circuit state of every routed model (read-only snapshot)."""
        return self._health.health(self.routes.models())

    def stats(self) -> Mapping[str, LatencyStats]:
        """Recent latency percentiles and error counts of every routed model."""
        return self._health.stats(self.routes.models())

    def complete_json(self, prompt_or_messages: Prompt, *, schema: Optional[Mapping[str, Any]] = None,
                      max_repairs: int = 2, **kwargs: Any) -> Any:
        """``complete`` for a JSON answer, parsed, checked and repaired (``structured.complete_json``).

        The task defaults to ``extraction``, whose route puts the model with the best JSON
        record in the comparison first; repair turns go through the same route.
        """
        from .structured import complete_json
        return complete_json(self, prompt_or_messages, schema=schema, max_repairs=max_repairs,
                             **kwargs)

    def __repr__(self) -> str:
        return "Router(priority=%r, max_cost_usd=%s, budget=%r, cooldown=%r)" % (
            self.priority, self.max_cost_usd, self.budget, self._health.policy)

    # Routing ------------------------------------------------------------------------------------
    def _classify(self, messages: Messages, tools: Any) -> Any:
        classifier = self._classifier
        if classifier is None:
            from .classification import classify as classifier
        elif hasattr(classifier, "classify"):
            classifier = classifier.classify
        return classifier(None, tools=tools, messages=messages)

    def _task(self, messages: Messages, task: Any, tools: Any) -> Tuple[str, Any, str]:
        """(task name, Classification or None, how the task was decided, for the reason)."""
        if task is not None:
            name = _task_name(task, tuple(self.routes))
            return name, None, "task %s (given)" % name
        try:
            found = self._classify(messages, tools)
        except ValueError as err:  # e.g. no user message: nothing to read, route as general
            log.debug("classification failed (%s); routing as general", err)
            return "general", None, "general prompt (unclassifiable: %s)" % err
        name = _task_name(found.task, tuple(self.routes))
        if tools and name != "function_calling":
            return "function_calling", found, "function_calling (tools given)"
        cues = ", ".join(found.matched[:_REASON_CUES]) or "no cues"
        return name, found, "%s prompt (matched: %s)" % (name, cues)

    def ensure_pool(self, size: int) -> None:
        """Grow the client's connection pool to ``size`` (``llmroute.batch`` calls this)."""
        self.client.ensure_pool(size)

    def complete(self, prompt_or_messages: Prompt, *, task: Any = None,
                 priority: Optional[str] = None, max_cost_usd: Any = None,
                 **params: Any) -> RouteResult:
        """Route one chat completion and return its ``RouteResult``.

        ``task`` (a TaskType or its value) skips classification; ``params`` are request
        params that override the route's (``None`` removes one) plus ``Client.chat`` options.
        Raises ``BudgetExceededError`` when every model is over the cap or budget (nothing is
        sent), ``AllModelsFailedError`` when every model failed or was skipped, the error
        itself for 400/401/403/422, and ``ValueError`` for bad arguments.
        """
        messages = _as_messages(prompt_or_messages)
        priority = _check_priority(priority if priority is not None else self.priority)
        cap = _check_cap(max_cost_usd) if max_cost_usd is not None else self.max_cost_usd
        options = {k: params.pop(k) for k in list(params) if k in CALL_OPTIONS}
        deadline = _check_deadline(options.pop("deadline", None))
        # The clock starts before classification: the deadline bounds the whole routed call.
        end = self._clock() + deadline if deadline is not None else None
        name, classification, how = self._task(messages, task, params.get("tools"))
        prompt_tokens = estimate_tokens(messages)
        ordered, why_first = self._ordered_candidates(name, params, messages, prompt_tokens,
                                                      priority, cap)
        passed: List[_Passed] = []
        result = self._try_in_turn(name, ordered, messages, prompt_tokens, options, end, passed)
        if result is None:
            raise self._all_failed(name, passed, cap)
        return self._result(result, name, classification, how, why_first, passed)

    def _ordered_candidates(self, task: str, params: Mapping[str, Any], messages: Messages,
                            prompt_tokens: int, priority: str, cap: Optional[Decimal]
                            ) -> Tuple[List[cand.Candidate], str]:
        """The route's models with their params and static skips, in ``priority`` order, and
        why the first one leads."""
        route = self.routes[task]
        candidates = cand.build_candidates(route, params, messages, prompt_tokens,
                                           self.client.catalog, cap)
        p50s = self._health.p50s(route.models) if priority == "speed" else {}
        return cand.order_candidates(candidates, priority, task, p50s)

    def _try_in_turn(self, task: str, ordered: Sequence[cand.Candidate], messages: Messages,
                     prompt_tokens: int, options: Mapping[str, Any], end: Optional[float],
                     passed: List[_Passed]) -> Optional[ChatResult]:
        """Call each candidate not skipped until one answers; its result, or ``None`` when
        every one was passed over (each appended to ``passed``, in order)."""
        need_window = 0  # after a context-length error: only larger windows are worth a try
        for candidate in ordered:
            model = candidate.model
            skip, kind = self._skip_now(candidate, need_window, end)
            probe = False
            if skip is None:
                skip, probe = self._health.acquire(model)  # a cooling model: fall back
                kind = cand.FALLBACK
            if skip is not None:
                log.debug("route %s: skipping %s: %s", task, model, skip)
                passed.append(_Passed(model, kind, skip, skip))
                continue
            call_options = self._call_options(options, end, model, passed, task)
            attempt = self._attempt(candidate, messages, call_options, probe)
            if attempt.result is not None:
                return attempt.result
            failure = attempt.passed
            if failure.kind == cand.CONTEXT_FIT:
                overflowed = candidate.spec.context_window if candidate.spec else None
                need_window = max(need_window,
                                  overflowed or prompt_tokens + candidate.max_tokens)
            if failure.error is not None:
                log.warning("route %s: %s failed (%s); falling back to the next model", task,
                            model, failure.short)
            passed.append(failure)
        return None

    def _skip_now(self, candidate: cand.Candidate, need_window: int, end: Optional[float]
                  ) -> Tuple[Optional[str], Optional[str]]:
        """(reason, kind) to pass ``candidate`` over at its turn, before its cooldown is
        checked: a static skip, a window no larger than one that overflowed, a spent deadline."""
        if candidate.skip is not None:
            return candidate.skip, candidate.skip_kind
        if need_window:
            window = candidate.spec.context_window if candidate.spec else None
            if not window or window <= need_window:
                return ("window %s is not larger than the one that overflowed (%d)"
                        % (window or "unknown", need_window), cand.CONTEXT_FIT)
        if end is not None and self._clock() >= end:
            return "the call's deadline has passed", cand.FALLBACK
        return None, None

    def _call_options(self, options: Mapping[str, Any], end: Optional[float], model: str,
                      passed: Sequence[_Passed], task: str) -> Dict[str, Any]:
        """The ``Client.chat`` options for one model, after the models ``passed`` over: what
        is left of the deadline, an idempotency key of its own for a fallback, and what the
        ledger's row says of the route (never sent)."""
        call_options = dict(options)
        call_options["ledger_task"] = task
        call_options["ledger_routed_via"] = passed[0].kind if passed else "primary"
        if end is not None:
            call_options["deadline"] = max(end - self._clock(), 0.001)
        if passed and options.get("idempotency_key"):
            # Another model is another request: a gateway must not replay the first's answer.
            call_options["idempotency_key"] = "%s:%s" % (options["idempotency_key"], model)
        return call_options

    def _attempt(self, candidate: cand.Candidate, messages: Messages,
                 options: Dict[str, Any], probe: bool) -> _Attempt:
        """Send to one model: its result, or how it is passed over after a fallback-worthy
        error or a refused budget hold; raises what must not fall back. Health and budget are
        settled here."""
        model = candidate.model
        hold: Optional[BudgetHold] = None
        try:
            if self.budget is not None:
                hold = self.budget.reserve(candidate.worst_case)
            result = self.client.chat(model, messages, **options, **candidate.params)
        except BudgetExceededError as err:
            self._health.finished(model, probe)
            return _Attempt(None, _Passed(model, cand.BUDGET, str(err), "over budget"))
        except BaseException as err:
            disposition = _disposition(err)
            if hold is not None:
                if _maybe_billed(err):
                    hold.commit(None)  # perhaps billed, at an unknown cost: keep the worst case
                else:
                    hold.release()
            if disposition == _MISSING:
                self._health.missing(model, _describe(err), probe)
            elif disposition == "unhealthy":
                self._health.failed(model, _describe(err), probe)
            else:
                self._health.finished(model, probe, _describe(err))
            if disposition is None:
                raise
            kind = cand.CONTEXT_FIT if disposition == cand.CONTEXT_FIT else cand.FALLBACK
            return _Attempt(None, _Passed(model, kind, _describe(err), _short(err), err))
        if hold is not None:
            hold.commit(result.cost_usd)
        self._health.succeeded(model, result.latency_ms, probe)
        return _Attempt(result, None)

    def _result(self, result: ChatResult, task: str, classification: Any, how: str,
                why_first: str, passed: Sequence[_Passed]) -> RouteResult:
        if passed:
            routed_via = passed[0].kind
            why = "%s after %s" % (routed_via.replace("_", " "), "; ".join(
                "%s (%s)" % (p.model, p.short) for p in passed))
        else:
            routed_via, why = "primary", why_first
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(ChatResult)}
        return RouteResult(
            **fields, task=_as_task_type(task), classification=classification,
            reason="%s → %s, %s" % (how, result.model, why), routed_via=routed_via,
            tried=tuple((p.model, p.detail) for p in passed))

    def _all_failed(self, task: str, passed: Sequence[_Passed],
                    cap: Optional[Decimal]) -> Exception:
        listing = "; ".join("%s: %s" % (p.model, p.detail) for p in passed)
        if passed and all(p.kind == cand.BUDGET for p in passed):
            budget = self.budget
            return BudgetExceededError(
                "no model of the %s route fits the cost limits; nothing was sent: %s"
                % (task, listing), limit_usd=budget.limit_usd if budget else cap,
                spent_usd=budget.spent_usd if budget else None)
        return AllModelsFailedError(
            "all %d models of the %s route failed or were skipped: %s"
            % (len(passed), task, listing),
            errors=[(p.model, p.error if p.error is not None else p.detail) for p in passed])
