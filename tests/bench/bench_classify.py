"""Benchmark: the keyword classifier against the comparison's naive baseline, in one run.

Prints prompts per second over the dev set for both, the time of one classify() of a
2,000-character prompt (English and CJK), both macro-F1s and the ratios, then the time to
classify 100 KB and 1 MB of each adversarial family of ``tests/test_classify_linear.py``
(text shaped to make a backtracking regex quadratic). Every loop is bounded by a count and a
time budget; figures are the best of a few repeats, since a shared machine only ever makes a
run slower.

    python tests/bench/bench_classify.py [FILE.jsonl] [--no-adversarial]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from baseline_classifier import baseline_classify  # noqa: E402
from llmroute.classification import Classifier  # noqa: E402
from llmroute.classification.evaluate import evaluate, load_jsonl  # noqa: E402

DEFAULT_FILE = ROOT.parent / "shared" / "data" / "prompts-dev.jsonl"
REPEATS = 5          # best of this many passes
MAX_SECONDS = 20.0   # per measurement, whatever REPEATS says


def _best_rate(fn: Callable[[str], object], texts: Sequence[str]) -> float:
    """Prompts per second: the best of REPEATS passes over ``texts``."""
    best = 0.0
    deadline = time.perf_counter() + MAX_SECONDS
    for _ in range(REPEATS):
        start = time.perf_counter()
        for text in texts:
            fn(text)
        best = max(best, len(texts) / (time.perf_counter() - start))
        if time.perf_counter() > deadline:
            break
    return best


def _best_call_us(fn: Callable[[str], object], text: str, calls: int = 400) -> float:
    """Microseconds per call: the best of REPEATS batches of ``calls`` calls."""
    best = float("inf")
    deadline = time.perf_counter() + MAX_SECONDS
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            fn(text)
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
        if time.perf_counter() > deadline:
            break
    return best


def _median_call_us(fn: Callable[[str], object], text: str, calls: int = 200) -> float:
    """Median microseconds of ``calls`` single calls (the issue's measure: < 300 us)."""
    times = []
    deadline = time.perf_counter() + MAX_SECONDS
    for _ in range(calls):
        start = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    times.sort()
    return times[len(times) // 2] * 1e6


def _prompt_2000(instruction: str, body: str) -> str:
    text = instruction + "\n\n"
    while len(text) < 2000:
        text += body
    return text[:2000]


def _adversarial_rows() -> list:
    """Absolute times of the linear-time test's families: 100 KB and 1 MB, best of 3."""
    from _table import Row
    from test_classify_linear import FAMILIES

    clf = Classifier(long_context_tokens=10 ** 9)  # the text path, not the length shortcut
    clf.classify("warm up")
    bench = "classifier on adversarial text (linear time)"
    out = []
    worst = 0.0
    for name in sorted(FAMILIES):
        times = []
        for n in (100_000, 1_000_000):
            text = FAMILIES[name](n)
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                clf.classify(text)
                best = min(best, time.perf_counter() - start)
            times.append(best)
        worst = max(worst, times[1])
        out.append(Row(bench, "%s: 1 MB (100 KB; 1 MB / 100 KB)" % name,
                       "%.1f ms" % (times[1] * 1e3), "%.1f ms" % (times[0] * 1e3),
                       "%.1f×" % (times[1] / times[0]), "", "≤ 15×"))
    out.append(Row(bench, "slowest 1 MB classification", "%.1f ms" % (worst * 1e3), "", "", "",
                   "well under 1 s"))
    return out


SAMPLES = {
    "English": ("Summarize the article below in three bullet points.",
                "Officials said the new rail line will open next spring, cutting travel times "
                "between the two cities by almost an hour, while critics pointed to its cost. "),
    "Chinese": ("请总结下面这篇文章的主要内容。",
                "近年来，越来越多的年轻人选择回到家乡创业，他们利用电商平台销售家乡特产，带动了当地经济发展。"),
    "Japanese": ("次の記事を3行で要約してください。",
                 "政府は来年度から、高校の授業料を所得に関係なく無償化する方針を固めた。対象は全国の高校生である。"),
    "code": ("Why does this function return None?",
             "def total(rows):\n    for row in rows:\n        if row['paid'] == True:\n"
             "            s = s + row['amount']\n"),
}


def rows(path: Optional[str] = None, adversarial: bool = True) -> list:
    """Table rows: macro-F1 and prompts/s over the dev set, per-call time of 2,000 chars (best
    batch and the median of 200 single calls), and the adversarial families."""
    from _table import Row

    path = path or str(DEFAULT_FILE)
    items = load_jsonl(path)
    texts = [it.text for it in items]
    clf = Classifier()
    ours = lambda text: clf.classify(text).label  # noqa: E731
    clf.classify("warm up: load the tables")
    ours_f1 = evaluate(items, ours).macro_f1
    base_f1 = evaluate(items, baseline_classify).macro_f1
    ours_rate = _best_rate(ours, texts)
    base_rate = _best_rate(baseline_classify, texts)
    bench = "classifier vs first-match baseline (%d dev prompts)" % len(texts)
    out = [Row(bench, "macro-F1 (difference)", "%.3f" % ours_f1, "%.3f" % base_f1,
               "%+.3f" % (ours_f1 - base_f1), "", ""),
           Row(bench, "prompts/s over the file (best of %d)" % REPEATS, "%.0f/s" % ours_rate,
               "%.0f/s" % base_rate, "%.3f×" % (ours_rate / base_rate), "", "")]
    for name, (instruction, body) in SAMPLES.items():
        text = _prompt_2000(instruction, body)
        ours_us = _best_call_us(ours, text)
        base_us = _best_call_us(baseline_classify, text)
        out.append(Row(bench, "one 2,000-char prompt, %s (time per call)" % name,
                       "%.0f µs" % ours_us, "%.1f µs" % base_us,
                       "%.1f×" % (ours_us / base_us), "", ""))
        out.append(Row(bench, "one 2,000-char prompt, %s (median of 200 calls)" % name,
                       "%.0f µs" % _median_call_us(ours, text), "", "", "", "< 300 µs"))
    if adversarial:
        out.extend(_adversarial_rows())
    return out


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from _table import print_rows

    adversarial = "--no-adversarial" not in args
    args = [a for a in args if a != "--no-adversarial"]
    print_rows(rows(args[0] if args else None, adversarial))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
