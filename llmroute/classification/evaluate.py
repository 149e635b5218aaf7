"""Score a task classifier against a labelled JSONL file: accuracy, macro-F1, confusion matrix.

Each line is ``{"text": ..., "label": ..., "lang": ...}`` (``lang`` optional; items without it
are grouped under ``"?"``). Macro-F1 averages the per-label F1 over every label that is either
gold or predicted, so a label the classifier invents but the file never uses counts as 0.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["Item", "LabelStats", "EvalReport", "load_jsonl", "evaluate", "format_report"]


@dataclass(frozen=True)
class Item:
    """One labelled prompt."""

    text: str
    label: str
    lang: str = "?"
    line: int = 0


@dataclass(frozen=True)
class LabelStats:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    """What :func:`evaluate` measured; ``confusion[gold][predicted]`` counts items."""

    n: int
    accuracy: float
    macro_f1: float
    labels: Tuple[str, ...]
    per_label: Mapping[str, LabelStats] = field(hash=False)
    per_lang: Mapping[str, Tuple[int, float, float]] = field(hash=False)  # n, acc, macro-F1
    confusion: Mapping[str, Mapping[str, int]] = field(hash=False)
    predictions: Tuple[str, ...] = ()


def load_jsonl(path: str) -> List[Item]:
    """Read a labelled JSONL file; raises ``ValueError`` naming the file and line at fault."""
    items = []
    try:
        fh = open(os.fspath(path), encoding="utf-8")
    except OSError as err:
        raise ValueError("cannot read %s: %s" % (path, err.strerror or err)) from err
    with fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ValueError("%s line %d: not valid JSON (%s)" % (path, number, err.msg)) \
                    from err
            if not isinstance(row, dict):
                raise ValueError("%s line %d: expected a JSON object" % (path, number))
            text, label = row.get("text"), row.get("label")
            if not isinstance(text, str):
                raise ValueError("%s line %d: \"text\" must be a string" % (path, number))
            if not isinstance(label, str) or not label:
                raise ValueError("%s line %d: \"label\" must be a non-empty string"
                                 % (path, number))
            lang = row.get("lang")
            items.append(Item(text, label, lang if isinstance(lang, str) and lang else "?",
                              number))
    if not items:
        raise ValueError("%s holds no items" % (path,))
    return items


def _macro(gold: Sequence[str], pred: Sequence[str]) -> Tuple[Dict[str, LabelStats], float]:
    labels = sorted(set(gold) | set(pred))
    stats = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == label and p == label)
        predicted = sum(1 for p in pred if p == label)
        support = sum(1 for g in gold if g == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        stats[label] = LabelStats(precision, recall, f1, support)
    macro = sum(s.f1 for s in stats.values()) / len(stats) if stats else 0.0
    return stats, macro


def evaluate(items: Iterable[Item], predict: Callable[[str], str]) -> EvalReport:
    """Run ``predict(text) -> label`` over ``items`` and measure it."""
    items = list(items)
    if not items:
        raise ValueError("nothing to evaluate")
    gold = [it.label for it in items]
    pred = [str(predict(it.text)) for it in items]
    per_label, macro = _macro(gold, pred)
    labels = tuple(sorted(set(gold) | set(pred), key=_label_order))
    confusion: Dict[str, Dict[str, int]] = {g: {p: 0 for p in labels} for g in labels}
    for g, p in zip(gold, pred):
        confusion[g][p] += 1
    per_lang = {}
    for lang in sorted({it.lang for it in items}):
        idx = [i for i, it in enumerate(items) if it.lang == lang]
        g = [gold[i] for i in idx]
        p = [pred[i] for i in idx]
        per_lang[lang] = (len(idx), sum(a == b for a, b in zip(g, p)) / len(idx), _macro(g, p)[1])
    accuracy = sum(g == p for g, p in zip(gold, pred)) / len(items)
    return EvalReport(len(items), accuracy, macro, labels, per_label, per_lang, confusion,
                      tuple(pred))


_ORDER = ("code", "math", "summarization", "creative_writing", "extraction", "general",
          "function_calling", "long_context")


def _label_order(label: str) -> Tuple[int, str]:
    return (_ORDER.index(label) if label in _ORDER else len(_ORDER), label)


_SHORT = {"summarization": "summ", "creative_writing": "creat", "extraction": "extr",
          "general": "gen", "function_calling": "func", "long_context": "long"}


def format_report(report: EvalReport, title: Optional[str] = None) -> str:
    """The report as plain text; ``macro-F1: 0.912`` sits on a line of its own."""
    out = []
    if title:
        out.append(title)
    out.append("items: %d" % report.n)
    out.append("accuracy: %.3f" % report.accuracy)
    out.append("macro-F1: %.3f" % report.macro_f1)
    out.append("")
    out.append("per language:")
    for lang, (n, acc, f1) in report.per_lang.items():
        out.append("  %-4s n=%-5d accuracy %.3f  macro-F1 %.3f" % (lang, n, acc, f1))
    out.append("")
    width = max(len(label) for label in report.labels)
    out.append("%-*s  precision  recall     F1  support" % (width, "label"))
    for label in report.labels:
        s = report.per_label[label]
        out.append("%-*s  %9.3f  %6.3f  %5.3f  %7d" % (width, label, s.precision, s.recall,
                                                      s.f1, s.support))
    out.append("")
    out.append("confusion (rows gold, columns predicted):")
    heads = [_SHORT.get(label, label)[:6] for label in report.labels]
    out.append("%-*s  %s" % (width, "", " ".join("%6s" % h for h in heads)))
    for gold in report.labels:
        row = report.confusion[gold]
        out.append("%-*s  %s" % (width, gold, " ".join("%6d" % row[p] for p in report.labels)))
    return "\n".join(out)
