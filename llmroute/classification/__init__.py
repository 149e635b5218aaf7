"""Keyword task classification in four languages: the classifier, its tables and its evaluation.

The keyword tables load and compile on the first classification, not at import.
"""
from __future__ import annotations

from .classifier import DEFAULT_LONG_CONTEXT_TOKENS, Classification, Classifier, classify
from .labels import TASK_LABELS, TaskType

__all__ = ["TaskType", "TASK_LABELS", "Classification", "Classifier", "classify",
           "DEFAULT_LONG_CONTEXT_TOKENS"]
