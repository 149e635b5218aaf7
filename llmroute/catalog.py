"""Model catalog: prices, windows, aliases and strengths as data, with exact Decimal money.

The default catalog ships as ``llmroute/data/catalog.json`` and is read on first use, never at
import. ``Catalog.from_file(path)`` or the ``LLMROUTE_CATALOG`` variable override or extend it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Tuple, Union

from . import _checks as checks

__all__ = ["ModelSpec", "Catalog", "default_catalog"]

log = logging.getLogger(__name__)

_DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "catalog.json")
_MTOK = Decimal(1_000_000)
_PRICE_FIELDS = ("input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok",
                 "list_input_usd_per_mtok", "list_output_usd_per_mtok")


@dataclass(frozen=True)
class ModelSpec:
    """One model: what it costs per million tokens, what fits in it, what it is good at."""

    name: str
    context_window: Optional[int] = None
    max_output_tokens: Optional[int] = None
    input_usd_per_mtok: Optional[Decimal] = None
    output_usd_per_mtok: Optional[Decimal] = None
    cached_input_usd_per_mtok: Optional[Decimal] = None
    list_input_usd_per_mtok: Optional[Decimal] = None
    list_output_usd_per_mtok: Optional[Decimal] = None
    tokens_per_second: Optional[float] = None
    aliases: Tuple[str, ...] = ()
    strengths: Tuple[str, ...] = ()
    features: Tuple[str, ...] = ()
    benchmarks: Mapping[str, float] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        """Check every field, so a spec built in code is held to what a catalog file is."""
        checks.text("name", self.name)
        where = "of model %r" % self.name
        for key in ("context_window", "max_output_tokens"):
            checks.number("%s %s" % (key, where), getattr(self, key), minimum=1, integer=True,
                          allow_none=True)
        for key in _PRICE_FIELDS:
            price = checks.money("%s %s" % (key, where), getattr(self, key), allow_none=True)
            object.__setattr__(self, key, price)
        speed = checks.number("tokens_per_second " + where, self.tokens_per_second, above=0,
                              allow_none=True)
        object.__setattr__(self, "tokens_per_second", speed)
        for key in ("aliases", "strengths", "features"):
            values = getattr(self, key)
            if isinstance(values, str) or not isinstance(values, (list, tuple)):
                raise ValueError("%s %s must be a list of strings, got %r" % (key, where, values))
            for value in values:
                checks.text("%s %s" % (key, where), value)
            object.__setattr__(self, key, tuple(values))
        if not isinstance(self.benchmarks, Mapping):
            raise ValueError("benchmarks %s must map names to scores, got %r"
                             % (where, self.benchmarks))
        object.__setattr__(self, "benchmarks", {
            checks.text("benchmark name " + where, k): checks.number("benchmarks[%r] %s"
                                                                     % (k, where), v)
            for k, v in self.benchmarks.items()})
        if not isinstance(self.source, str):
            raise ValueError("source %s must be a string, got %r" % (where, self.source))

    @property
    def priced(self) -> bool:
        """True when both the input and the output price are known."""
        return self.input_usd_per_mtok is not None and self.output_usd_per_mtok is not None

    def cost(self, prompt_tokens: int, completion_tokens: int,
             cached_tokens: int = 0) -> Optional[Decimal]:
        """Exact cost in USD of one call's usage, or ``None`` when the model has no price.

        Cached prompt tokens are billed at ``cached_input_usd_per_mtok`` when it is known, else
        at the normal input price (the conservative reading).
        """
        if not self.priced:
            return None
        cached = min(max(cached_tokens or 0, 0), prompt_tokens)
        cached_price = self.cached_input_usd_per_mtok
        if cached_price is None:
            cached_price = self.input_usd_per_mtok
        total = ((prompt_tokens - cached) * self.input_usd_per_mtok
                 + cached * cached_price
                 + completion_tokens * self.output_usd_per_mtok)
        return total / _MTOK

    def list_cost(self, prompt_tokens: int, completion_tokens: int) -> Optional[Decimal]:
        """The same usage at the provider's list price as the source states it, if known."""
        if self.list_input_usd_per_mtok is None or self.list_output_usd_per_mtok is None:
            return None
        return (prompt_tokens * self.list_input_usd_per_mtok
                + completion_tokens * self.list_output_usd_per_mtok) / _MTOK

    def worst_case_cost(self, prompt_tokens: int, max_tokens: int) -> Optional[Decimal]:
        """The most a call can cost: every prompt token uncached, every output token used."""
        if not self.priced:
            return None
        return (prompt_tokens * self.input_usd_per_mtok
                + max_tokens * self.output_usd_per_mtok) / _MTOK

    def supports(self, feature: str) -> bool:
        return feature in self.features

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSpec":
        """Build a spec from a JSON object; unknown keys are a ``ValueError`` (typos cost money)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError("unknown catalog field(s) %s for model %r"
                             % (", ".join(sorted(unknown)), data.get("name")))
        if not data.get("name"):
            raise ValueError("catalog entry without a name: %r" % (dict(data),))
        values: Dict[str, Any] = dict(data)
        # JSON numbers arrive as int or (parse_float=Decimal) Decimal; a plain float from a
        # caller's dict is taken at its shortest repr, as a catalog file would have written it.
        for key in _PRICE_FIELDS:
            if isinstance(values.get(key), float):
                values[key] = str(values[key])
        for key in ("context_window", "max_output_tokens"):
            value = values.get(key)
            if isinstance(value, (Decimal, float)) and value == int(value):
                values[key] = int(value)
        if isinstance(values.get("tokens_per_second"), Decimal):
            values["tokens_per_second"] = float(values["tokens_per_second"])
        for key in ("aliases", "strengths", "features"):
            if values.get(key) is None:
                values[key] = ()
        benchmarks = values.get("benchmarks")
        if benchmarks is None:
            values["benchmarks"] = {}
        elif isinstance(benchmarks, Mapping):
            values["benchmarks"] = {k: float(v) if isinstance(v, Decimal) else v
                                    for k, v in benchmarks.items()}
        return cls(**values)


class Catalog:
    """Models by name and alias. Unknown names still work: ``get`` returns ``None`` and
    ``spec`` returns an unpriced spec, warning once per model."""

    def __init__(self, models: Iterable[ModelSpec] = ()) -> None:
        if isinstance(models, (str, bytes, Mapping)) or not hasattr(models, "__iter__"):
            raise ValueError("models must be an iterable of ModelSpec, got %r" % (models,))
        self._models: Dict[str, ModelSpec] = {}
        self._index: Dict[str, ModelSpec] = {}
        for spec in models:
            if not isinstance(spec, ModelSpec):
                raise ValueError("models must hold ModelSpec objects (ModelSpec.from_dict "
                                 "reads a dict), got %r" % (spec,))
            self._add(spec)
        # Guards _warned: the set of unknown model names already warned about.
        self._warned_lock = threading.Lock()
        self._warned: set = set()

    def _add(self, spec: ModelSpec) -> None:
        old = self._models.get(spec.name)
        if old is not None:
            for alias in old.aliases:
                self._index.pop(alias.lower(), None)
        self._models[spec.name] = spec
        self._index[spec.name.lower()] = spec
        for alias in spec.aliases:
            self._index[alias.lower()] = spec

    # Loading -----------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: Union[str, os.PathLike], *, base: Optional["Catalog"] = None
                  ) -> "Catalog":
        """Read a catalog JSON (``{"models": [...]}`` or a list); entries extend ``base``.

        Raises ``ValueError`` naming the file (and the entry) for a file that cannot be read,
        is not JSON, has no model list, or holds an entry that is not a valid model.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError("path must be a file path (str or os.PathLike), got %r" % (path,))
        if base is not None and not isinstance(base, Catalog):
            raise ValueError("base must be a Catalog or None, got %r" % (base,))
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f, parse_float=Decimal)
        except OSError as err:
            raise ValueError("cannot read catalog file %s: %s" % (path, err)) from None
        except ValueError as err:  # bad JSON or bad UTF-8
            raise ValueError("catalog %s is not valid JSON: %s" % (path, err)) from None
        entries = data.get("models") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            # A typo'd key must not load as an empty catalog that silently overrides nothing.
            raise ValueError("catalog %s must hold a list of models: a JSON list, or an object "
                             "with a \"models\" list" % (path,))
        specs = list(base.models()) if base is not None else []
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise ValueError("catalog %s: entry %d must be an object, got %r"
                                 % (path, index, entry))
            try:
                spec = ModelSpec.from_dict(entry)
            except ValueError as err:
                raise ValueError("catalog %s: entry %d: %s" % (path, index, err)) from None
            specs.append(spec)
        return cls(specs)  # in order: a later entry of a name replaces the base's

    @classmethod
    def default(cls) -> "Catalog":
        """The shipped catalog, extended by the file named in ``LLMROUTE_CATALOG`` if set."""
        catalog = cls.from_file(_DEFAULT_PATH)
        override = os.environ.get("LLMROUTE_CATALOG")
        if override:
            try:
                catalog = cls.from_file(override, base=catalog)
            except ValueError as err:
                raise ValueError("LLMROUTE_CATALOG: %s" % (err,)) from None
        return catalog

    # Lookup ------------------------------------------------------------------------------------
    def get(self, name: str) -> Optional[ModelSpec]:
        """The spec for a name or alias (case-insensitive), or ``None``."""
        if name is not None and not isinstance(name, str):
            raise ValueError("model name must be a string, got %r" % (name,))
        return self._index.get(name.lower()) if name else None

    def spec(self, name: str) -> ModelSpec:
        """The spec for ``name``; an unknown model gets an unpriced spec and one warning."""
        found = self.get(name)
        if found is not None:
            return found
        with self._warned_lock:
            first = name not in self._warned
            self._warned.add(name)
        if first:
            log.warning("model %r is not in the catalog: its cost is unknown (None)", name)
        return ModelSpec(name=name)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int,
             cached_tokens: int = 0) -> Optional[Decimal]:
        return self.spec(model).cost(prompt_tokens, completion_tokens, cached_tokens)

    def models(self) -> Tuple[ModelSpec, ...]:
        return tuple(self._models.values())

    def names(self) -> Tuple[str, ...]:
        return tuple(self._models)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return "Catalog(%s)" % ", ".join(self._models)


_default: Optional[Catalog] = None
_default_lock = threading.Lock()  # guards the lazy creation of _default


def default_catalog() -> Catalog:
    """The process-wide default catalog, read once on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Catalog.default()
    return _default
