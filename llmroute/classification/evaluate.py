"""Score a task classifier against a labelled JSONL file: accuracy, macro-F1, confusion matrix.

Each line is ``{"text": ..., "label": ..., "lang": ..., "source": ...}`` (``lang`` and
``source`` optional; items without a language are grouped under ``"?"``; a source
``owner/repo/file#id`` is grouped by its part before ``#``). Macro-F1 averages the per-label F1
over every label that is either gold or predicted, so a label the classifier invents but the
file never uses counts as 0. With confidences, the report also says how often the classifier
is right in each confidence bucket (calibration).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .labels import label_order

__all__ = ["Item", "LabelStats", "EvalReport", "load_jsonl", "evaluate", "format_report",
           "CONFIDENCE_BUCKETS", "HIGH_CONFIDENCE"]

#: Lower edges of the calibration table's confidence buckets.
CONFIDENCE_BUCKETS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)
#: The confidence from which a prediction counts as confident (see the README).
HIGH_CONFIDENCE = 0.8


@dataclass(frozen=True)
class Item:
    """One labelled prompt."""

    text: str
    label: str
    lang: str = "?"
    line: int = 0
    source: str = ""


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
    per_source: Mapping[str, Tuple[int, float, float]] = field(default_factory=dict, hash=False)
    #: bucket lower edge -> (items, accuracy); empty when the predictor gave no confidences
    calibration: Mapping[float, Tuple[int, float]] = field(default_factory=dict, hash=False)
    confidences: Tuple[float, ...] = ()

    def confident(self, threshold: float = HIGH_CONFIDENCE) -> Tuple[float, float]:
        """(share of items with confidence >= threshold, accuracy on those)."""
        if not self.confidences:
            return 0.0, 0.0
        gold = self.gold
        hits = [i for i, c in enumerate(self.confidences) if c >= threshold]
        if not hits:
            return 0.0, 0.0
        right = sum(1 for i in hits if self.predictions[i] == gold[i])
        return len(hits) / self.n, right / len(hits)

    gold: Tuple[str, ...] = ()


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
            lang, source = row.get("lang"), row.get("source")
            items.append(Item(text, label, lang if isinstance(lang, str) and lang else "?",
                              number, source if isinstance(source, str) else ""))
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


Prediction = Union[str, Tuple[str, float]]


def evaluate(items: Iterable[Item], predict: Callable[[str], Prediction]) -> EvalReport:
    """Run ``predict(text)`` over ``items`` and measure it; ``predict`` returns a label, or a
    ``(label, confidence)`` pair to get the calibration table too."""
    items = list(items)
    if not items:
        raise ValueError("nothing to evaluate")
    gold = [it.label for it in items]
    pred: List[str] = []
    conf: List[float] = []
    for it in items:
        got = predict(it.text)
        if isinstance(got, tuple):
            pred.append(str(got[0]))
            conf.append(float(got[1]))
        else:
            pred.append(str(got))
    if len(conf) != len(pred):
        conf = []
    per_label, macro = _macro(gold, pred)
    labels = tuple(sorted(set(gold) | set(pred), key=label_order))
    confusion: Dict[str, Dict[str, int]] = {g: {p: 0 for p in labels} for g in labels}
    for g, p in zip(gold, pred):
        confusion[g][p] += 1
    accuracy = sum(g == p for g, p in zip(gold, pred)) / len(items)
    return EvalReport(len(items), accuracy, macro, labels, per_label,
                      _grouped(items, gold, pred, lambda it: it.lang), confusion, tuple(pred),
                      _grouped(items, gold, pred, _source_group), _calibration(gold, pred, conf),
                      tuple(conf), tuple(gold))


def _source_group(item: Item) -> str:
    return item.source.split("#", 1)[0] if item.source else "?"


def _grouped(items: Sequence[Item], gold: Sequence[str], pred: Sequence[str],
             key: Callable[[Item], str]) -> Dict[str, Tuple[int, float, float]]:
    """group -> (items, accuracy, macro-F1)."""
    groups: Dict[str, List[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(key(it), []).append(i)
    out = {}
    for name in sorted(groups):
        idx = groups[name]
        g = [gold[i] for i in idx]
        p = [pred[i] for i in idx]
        out[name] = (len(idx), sum(a == b for a, b in zip(g, p)) / len(idx), _macro(g, p)[1])
    return out


def _calibration(gold: Sequence[str], pred: Sequence[str],
                 conf: Sequence[float]) -> Dict[float, Tuple[int, float]]:
    """bucket lower edge -> (items, accuracy) over the buckets of ``CONFIDENCE_BUCKETS``."""
    if not conf:
        return {}
    table = {}
    edges = CONFIDENCE_BUCKETS + (float("inf"),)
    for low, high in zip(edges, edges[1:]):
        idx = [i for i, c in enumerate(conf) if low <= c < high]
        if idx:
            table[low] = (len(idx), sum(1 for i in idx if gold[i] == pred[i]) / len(idx))
    return table


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
    if len(report.per_source) > 1:
        out.append("")
        # (by accuracy: a source of one label has macro-F1 <= 0.5 after a single miss)
        out.append("per source (worst accuracy first):")
        for name, (n, acc, f1) in sorted(report.per_source.items(),
                                         key=lambda kv: (kv[1][1], kv[1][2])):
            out.append("  n=%-4d accuracy %.3f  macro-F1 %.3f  %s" % (n, acc, f1, name))
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
    if report.calibration:
        out.append("")
        out.append("calibration (confidence bucket -> accuracy):")
        edges = list(CONFIDENCE_BUCKETS) + [1.0]
        for low, (n, acc) in report.calibration.items():
            high = edges[edges.index(low) + 1]
            out.append("  [%.1f, %.1f%s n=%-5d accuracy %.3f" % (
                low, high, "]" if high == 1.0 else ")", n, acc))
        share, acc = report.confident()
        out.append("confidence >= %.1f: %.1f%% of items, accuracy %.3f"
                   % (HIGH_CONFIDENCE, share * 100, acc))
    return "\n".join(out)
