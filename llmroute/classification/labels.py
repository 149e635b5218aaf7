"""The task labels: the one list every part of llmroute reads (routes, evaluation, command line).

``TaskType`` names the built-in tasks; a custom task (``Classifier(tasks=...)``) is a plain
string label checked by :func:`check_custom_label`.
"""
from __future__ import annotations

import enum
import re
from typing import Any, Tuple, Union

__all__ = ["TaskType", "TASK_LABELS", "TEXT_LABELS", "REQUEST_LABELS", "Label",
           "check_custom_label", "label_order"]


class TaskType(str, enum.Enum):
    """What a prompt asks for; the value is the label string used in tables and reports."""

    CODE = "code"
    MATH = "math"
    SUMMARIZATION = "summarization"
    CREATIVE_WRITING = "creative_writing"
    EXTRACTION = "extraction"
    GENERAL = "general"
    FUNCTION_CALLING = "function_calling"
    LONG_CONTEXT = "long_context"

    def __str__(self) -> str:
        return self.value


#: Every built-in label, in the order reports list them.
TASK_LABELS: Tuple[str, ...] = tuple(t.value for t in TaskType)
#: The labels a text can get from its words; the other two come from the request itself.
REQUEST_LABELS: Tuple[str, ...] = (TaskType.FUNCTION_CALLING.value, TaskType.LONG_CONTEXT.value)
TEXT_LABELS: Tuple[str, ...] = tuple(t for t in TASK_LABELS if t not in REQUEST_LABELS)

#: A built-in TaskType or a custom label.
Label = Union[TaskType, str]

_CUSTOM_LABEL = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")


def check_custom_label(label: Any, where: str) -> str:
    """``label`` if it can name a custom task: lower-case ``[a-z][a-z0-9_]*`` (as route files
    and the ledger store it), at most 64 characters, not a built-in. Raises ``ValueError``."""
    if not isinstance(label, str) or not _CUSTOM_LABEL.match(label):
        raise ValueError("%s: a task label must be a lower-case name like \"translation\" "
                         "([a-z][a-z0-9_]*, up to 64 characters), got %r" % (where, label))
    if label in TASK_LABELS:
        raise ValueError("%s: %r is a built-in task; give the custom task another name "
                         "(extra keywords for a built-in go in extra_keywords=)" % (where, label))
    return label


def label_order(label: str) -> Tuple[int, str]:
    """Sort key: built-in labels in ``TASK_LABELS`` order, then custom ones by name."""
    return (TASK_LABELS.index(label) if label in TASK_LABELS else len(TASK_LABELS), label)
