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


def _adversarial() -> None:
    """Absolute times of the linear-time test's families: 100 KB and 1 MB, best of 3."""
    from test_classify_linear import FAMILIES

    clf = Classifier(long_context_tokens=10 ** 9)  # the text path, not the length shortcut
    clf.classify("warm up")
    print()
    print("%-28s %12s %12s %7s" % ("adversarial family", "100 KB", "1 MB", "ratio"))
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
        print("%-28s %9.1f ms %9.1f ms %7.1f" % (name, times[0] * 1e3, times[1] * 1e3,
                                                times[1] / times[0]))
    print("slowest 1 MB classification: %.1f ms" % (worst * 1e3))


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    adversarial = "--no-adversarial" not in args
    args = [a for a in args if a != "--no-adversarial"]
    path = args[0] if args else str(DEFAULT_FILE)
    items = load_jsonl(path)
    texts = [it.text for it in items]
    clf = Classifier()
    ours = lambda text: clf.classify(text).task.value  # noqa: E731
    clf.classify("warm up: load the tables")

    ours_f1 = evaluate(items, ours).macro_f1
    base_f1 = evaluate(items, baseline_classify).macro_f1
    ours_rate = _best_rate(ours, texts)
    base_rate = _best_rate(baseline_classify, texts)
    mean_len = sum(len(t) for t in texts) / len(texts)

    print("file: %s (%d prompts, mean %.0f chars)" % (path, len(texts), mean_len))
    print("%-34s %14s %14s %9s" % ("", "keyword clf", "naive baseline", "ratio"))
    print("%-34s %14.3f %14.3f %+9.3f" % ("macro-F1", ours_f1, base_f1, ours_f1 - base_f1))
    print("%-34s %14.0f %14.0f %9.3f" % ("prompts/s over the file", ours_rate, base_rate,
                                         ours_rate / base_rate))
    samples = {
        "2,000-char prompt, English": _prompt_2000(
            "Summarize the article below in three bullet points.",
            "Officials said the new rail line will open next spring, cutting travel times "
            "between the two cities by almost an hour, while critics pointed to its cost. "),
        "2,000-char prompt, Chinese": _prompt_2000(
            "请总结下面这篇文章的主要内容。",
            "近年来，越来越多的年轻人选择回到家乡创业，他们利用电商平台销售家乡特产，带动了当地经济发展。"),
        "2,000-char prompt, Japanese": _prompt_2000(
            "次の記事を3行で要約してください。",
            "政府は来年度から、高校の授業料を所得に関係なく無償化する方針を固めた。対象は全国の高校生である。"),
        "2,000-char prompt, code": _prompt_2000(
            "Why does this function return None?",
            "def total(rows):\n    for row in rows:\n        if row['paid'] == True:\n"
            "            s = s + row['amount']\n"),
    }
    for name, text in samples.items():
        ours_us = _best_call_us(ours, text)
        base_us = _best_call_us(baseline_classify, text)
        print("%-34s %11.0f us %11.1f us %9.1f" % (name + " (per call)", ours_us, base_us,
                                                   ours_us / base_us))
    print("ratio = keyword clf / baseline (F1: difference)")
    print()
    print("median of 200 single calls (target < 300 us):")
    for name, text in samples.items():
        print("  %-32s %8.0f us" % (name, _median_call_us(ours, text)))
    if adversarial:
        _adversarial()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
