"""The route table: for each task, an ordered list of models and the request parameters to use.

The default table ships as ``llmroute/data/routes.json`` and is read on first use. A route is
written as a list of models or as ``{"models": [...], "preset": name, "params": {...}}``: the
params start from the preset (or, when overriding a default route, from that route's params)
and are overlaid by ``params``, where ``null``/``None`` removes a key. User routes replace the
default ones task by task; tasks they do not name keep their default route.
"""
from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import InitVar, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

from . import presets
from .classification.labels import TASK_LABELS, check_custom_label

__all__ = ["TASKS", "Route", "RouteTable", "default_routes", "load_routes"]

#: The built-in task labels, each of which has a route (``llmroute.TaskType``'s values); a
#: table may add routes for custom task labels (``RouteTable(..., tasks=("translation",))``).
TASKS = TASK_LABELS

_DEFAULT_PATH = Path(__file__).with_name("data") / "routes.json"
# "comment" lets a JSON file say why a route is what it is; it is read and ignored.
_ROUTE_KEYS = frozenset({"models", "preset", "params", "comment"})

RoutesSpec = Union[None, str, "os.PathLike[str]", Mapping[str, Any], "RouteTable"]


@dataclass(frozen=True)
class Route:
    """One task's models, most preferred first, and its read-only request parameters.

    ``custom=True`` makes it the route of a custom task label (``Classifier(tasks=...)``);
    otherwise ``task`` must be one of ``TASKS``."""

    task: str
    models: Tuple[str, ...]
    params: Mapping[str, Any]
    custom: InitVar[bool] = False

    def __post_init__(self, custom: bool = False) -> None:
        if custom:
            check_custom_label(self.task, "Route")
        else:
            _check_task(self.task, "Route")
        object.__setattr__(self, "models", _check_models(self.task, self.models, "Route"))
        if not isinstance(self.params, Mapping):
            raise ValueError("Route params must be a mapping, got %r" % (self.params,))
        # Shared by every thread of a router: a caller's dict must not change it afterwards.
        object.__setattr__(self, "params", MappingProxyType(copy.deepcopy(dict(self.params))))

    def request_params(self) -> Dict[str, Any]:
        """A fresh deep copy of the params, safe to change and send."""
        return copy.deepcopy(dict(self.params))


def _check_task(task: Any, where: str, known: Tuple[str, ...] = TASKS) -> str:
    if not isinstance(task, str) or task not in known:
        raise ValueError("unknown task %r in %s; known tasks: %s"
                         % (task, where, ", ".join(known)))
    return task


def _check_models(task: str, models: Any, where: str) -> Tuple[str, ...]:
    if isinstance(models, (str, bytes)) or not isinstance(models, (list, tuple)):
        raise ValueError("route %r in %s: models must be a list of model names, got %r"
                         % (task, where, models))
    if not models:
        raise ValueError("route %r in %s has an empty model list: give at least one model"
                         % (task, where))
    for model in models:
        if not isinstance(model, str) or not model.strip():
            raise ValueError("route %r in %s: model names must be non-empty strings, got %r"
                             % (task, where, model))
    if len(set(models)) != len(models):
        raise ValueError("route %r in %s lists a model twice: %r" % (task, where, list(models)))
    return tuple(models)


def _build_route(task: str, spec: Any, base: Optional[Route], where: str) -> Route:
    """One route from its list or dict form, overlaid on ``base`` (the route it replaces)."""
    if isinstance(spec, Route):
        if spec.task != task:
            raise ValueError("route %r in %s is a Route for %r: give it under its own task"
                             % (task, where, spec.task))
        return spec
    if isinstance(spec, (list, tuple)):
        spec = {"models": spec}
    if not isinstance(spec, Mapping):
        raise ValueError("route %r in %s must be a list of models or a dict with 'models', "
                         "got %r" % (task, where, spec))
    unknown = set(spec) - _ROUTE_KEYS
    if unknown:
        raise ValueError("route %r in %s has unknown key(s) %s; allowed: models, preset, params"
                         % (task, where, ", ".join(sorted(map(str, unknown)))))
    if "models" in spec:
        models = _check_models(task, spec["models"], where)
    elif base is not None:
        models = base.models
    else:
        raise ValueError("route %r in %s needs a 'models' list" % (task, where))
    if "preset" in spec:
        params = dict(presets.get(spec["preset"]))
    else:
        params = base.request_params() if base is not None else {}
    overlay = spec.get("params") or {}
    if not isinstance(overlay, Mapping):
        raise ValueError("route %r in %s: params must be a dict, got %r" % (task, where, overlay))
    for key, value in overlay.items():
        if not isinstance(key, str):
            raise ValueError("route %r in %s: param names must be strings" % (task, where))
        if value is None:
            params.pop(key, None)
        else:
            _check_json_value(value, "route %r in %s: param %r" % (task, where, key))
            params[key] = copy.deepcopy(value)
    return Route(task, models, MappingProxyType(params), custom=task not in TASKS)


def _check_json_value(value: Any, what: str, depth: int = 0) -> None:
    """Refuse what cannot be sent as JSON: NaN, infinity, and nesting past any sane depth."""
    if depth > 32:
        raise ValueError("%s is nested too deeply to be a request parameter" % (what,))
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("%s must be finite (NaN and infinity are not JSON), got %r"
                         % (what, value))
    if isinstance(value, Mapping):
        for item in value.values():
            _check_json_value(item, what, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_json_value(item, what, depth + 1)


class RouteTable(Mapping[str, Route]):
    """An immutable mapping task -> Route; every task of ``TASKS`` has a route, and so does
    every custom task label in ``tasks`` (a route for any other label is a ``ValueError``)."""

    def __init__(self, routes: Mapping[str, Any], *, base: Optional["RouteTable"] = None,
                 where: str = "routes", tasks: Sequence[str] = ()) -> None:
        if not isinstance(where, str):
            raise ValueError("where must be a string naming the source, got %r" % (where,))
        if not isinstance(routes, Mapping):
            raise ValueError("%s must map task names to routes, got %r" % (where, routes))
        if base is not None and not isinstance(base, RouteTable):
            raise ValueError("base must be a RouteTable or None, got %r" % (base,))
        custom = _custom_tasks(tasks, base)
        known = TASKS + custom
        table: Dict[str, Route] = dict(base.items()) if base is not None else {}
        for task, spec in routes.items():
            _check_task(task, where, known)
            table[task] = _build_route(task, spec, table.get(task), where)
        missing = [task for task in known if task not in table]
        if missing:
            raise ValueError("%s has no route for %s%s" % (
                where, "custom task " if missing[0] in custom else "", ", ".join(missing)))
        self.custom_tasks: Tuple[str, ...] = custom
        self._routes: Mapping[str, Route] = MappingProxyType(
            {task: table[task] for task in known})

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"], *,
                  base: Optional["RouteTable"] = None,
                  tasks: Sequence[str] = ()) -> "RouteTable":
        """Read ``{"routes": {...}}`` (or the bare ``{task: route}`` object) from a JSON file."""
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError("path must be a file path (str or os.PathLike), got %r" % (path,))
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as err:
            raise ValueError("cannot read routes file %s: %s" % (path, err)) from None
        except ValueError as err:
            raise ValueError("routes file %s is not valid JSON: %s" % (path, err)) from None
        if isinstance(data, Mapping) and "routes" in data:
            data = data["routes"]
        return cls(data, base=base, where=str(path), tasks=tasks)

    def models(self) -> Tuple[str, ...]:
        """Every model of every route, each once, in table order."""
        return tuple(dict.fromkeys(m for route in self._routes.values() for m in route.models))

    def __getitem__(self, task: str) -> Route:
        return self._routes[task]

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return "RouteTable(%s)" % ", ".join(
            "%s=%s" % (task, "→".join(route.models)) for task, route in self._routes.items())


def _custom_tasks(tasks: Any, base: Optional[RouteTable]) -> Tuple[str, ...]:
    """The custom labels a table takes: those of ``base``, then ``tasks`` (checked names)."""
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, (list, tuple)):
        raise ValueError("tasks must be a list of custom task labels, got %r" % (tasks,))
    found = list(base.custom_tasks) if base is not None else []
    for task in tasks:
        if task not in found:
            found.append(check_custom_label(task, "tasks"))
    return tuple(found)


_default: Optional[RouteTable] = None


def default_routes() -> RouteTable:
    """The shipped table, read once (racing first readers build equal tables; any one wins)."""
    global _default
    if _default is None:
        _default = RouteTable.from_file(_DEFAULT_PATH)
    return _default


def load_routes(routes: RoutesSpec = None, tasks: Sequence[str] = ()) -> RouteTable:
    """The default table overlaid by ``routes``: a mapping, a JSON file path or a RouteTable;
    ``tasks`` are the custom task labels it may (and must) route."""
    if routes is None:
        return RouteTable({}, base=default_routes(), tasks=tasks) if tasks else default_routes()
    if isinstance(routes, RouteTable):
        return routes
    if isinstance(routes, (str, os.PathLike)):
        return RouteTable.from_file(routes, base=default_routes(), tasks=tasks)
    if not isinstance(routes, Mapping):
        raise ValueError("routes must map task names to routes (or be None, a JSON file path "
                         "or a RouteTable), got %r" % (routes,))
    return RouteTable(routes, base=default_routes(), tasks=tasks)
