"""Keyword task classification in four languages: the classifier, its tables and its evaluation.

The task labels (``TaskType``, ``TASK_LABELS``) load with the package; the classifier loads on
first use (PEP 562), and its keyword tables load and compile on the first classification.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .labels import TASK_LABELS, TaskType

if TYPE_CHECKING:  # pragma: no cover - for type checkers and readers
    from .classifier import DEFAULT_LONG_CONTEXT_TOKENS, Classification, Classifier, classify

__all__ = ["TaskType", "TASK_LABELS", "Classification", "Classifier", "classify",
           "DEFAULT_LONG_CONTEXT_TOKENS"]

_LAZY = ("Classification", "Classifier", "classify", "DEFAULT_LONG_CONTEXT_TOKENS")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import classifier

        value = getattr(classifier, name)
        globals()[name] = value
        return value
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def __dir__() -> Any:
    return sorted(set(globals()) | set(__all__))
