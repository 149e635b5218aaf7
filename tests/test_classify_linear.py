"""Classification runs in linear time: no pattern backtracks quadratically on adversarial text.

Each family is text built to hit one shape that makes a backtracking regex quadratic (a long
run of letters after an ``_``, of spaces after ``import x``, of capitals after ``Error``, ...).
The test compares 1 MB against 100 KB: linear work takes ~10x as long, quadratic ~100x, so the
bound of 15x separates them with room for a loaded machine. Absolute times are printed by
``tests/bench/bench_classify.py``, not asserted here.
"""
from __future__ import annotations

import time
from typing import Callable, Dict

import pytest

from llmroute.classification import Classifier
from llmroute.classification._loading import load_tables
from llmroute.classification._tables import search

SMALL = 100_000
LARGE = 1_000_000
MAX_RATIO = 15.0


def _rep(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


#: name -> text of about n characters
FAMILIES: Dict[str, Callable[[int], str]] = {
    "letters": lambda n: _rep("a", n),
    "letters_after_underscore": lambda n: "_" + _rep("a", n),
    "hex_after_underscore": lambda n: "_" + _rep("deadbeef0123", n),
    "snake_case_run": lambda n: _rep("ab_", n),
    "capitals_after_error": lambda n: "Error " + _rep("A", n),
    "hangul": lambda n: _rep("가나다", n),
    "kana": lambda n: _rep("あいう", n),
    "han": lambda n: _rep("文字", n),
    "digits": lambda n: "in " + _rep("7", n),
    "digits_after_cjk_verb": lambda n: "写" + _rep("0", n),
    "dotted_digits": lambda n: _rep("1.", n),
    "whitespace": lambda n: "x" + _rep(" \t", n) + "x",
    "spaces_after_import": lambda n: "\nimport a" + _rep(" ", n) + "x",
    "letters_after_class": lambda n: "\nclass " + _rep("a", n),
    "blank_lines": lambda n: _rep("\n\n", n),
    "punctuation": lambda n: _rep("?.!:;,", n),
    "dashed_words": lambda n: "in " + _rep("a-", n),
    "repeated_words": lambda n: _rep("write a story about how many ", n),
    "sql_keywords": lambda n: _rep("SELECT ", n),
    "open_calls": lambda n: _rep("f(", n),
    "code": lambda n: _rep("def f(x):\n    return x == 1;  # os.path.join(a, b)\n", n),
}


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The least CPU time of ``repeats`` runs: CPU time, unlike the wall clock, does not grow
    when other processes share the cores."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _ratio(fn_small: Callable[[], object], fn_large: Callable[[], object],
           bound: float, floor: float) -> "tuple[float, float, float]":
    """(ratio, small, large) of the best times; measured again, up to four rounds, only
    while the ratio is over ``bound`` (one slow run on a busy machine is noise, a quadratic
    pattern is slow every time)."""
    t_small, t_large = _best_seconds(fn_small, 3), float("inf")
    for _ in range(4):
        t_large = min(t_large, _best_seconds(fn_large, 1))
        t_small = min(t_small, _best_seconds(fn_small, 1))
        ratio = t_large / max(t_small, floor)
        if ratio <= bound:
            break
    return ratio, t_small, t_large


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    clf = Classifier(long_context_tokens=10 ** 9)  # keep the text path, not the length shortcut
    clf.classify("warm up: compile the tables")
    return clf


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_classification_time_grows_linearly(classifier: Classifier, family: str) -> None:
    small, large = FAMILIES[family](SMALL), FAMILIES[family](LARGE)
    # The floor keeps a 100 KB time of a few microseconds from turning noise into a ratio.
    ratio, t_small, t_large = _ratio(lambda: classifier.classify(small),
                                     lambda: classifier.classify(large), MAX_RATIO, 0.002)
    assert ratio <= MAX_RATIO, "%s: 100 KB %.4fs, 1 MB %.4fs (%.1fx)" % (
        family, t_small, t_large, ratio)


def test_every_shipped_pattern_is_linear_on_adversarial_runs() -> None:
    """Each table and structural regex, alone, on runs that follow a matching start."""
    tables = load_tables()
    patterns = [(sc.cue.name, sc.pattern, sc.word_start) for sc in tables.structural]
    for table in tables.by_lang.values():
        patterns.extend((cue.name, p, ws) for p, cue, ws in table.patterns)
    runs = ("a", "A", "0", "_", " ", "a-", "가", "あ", "文")
    starts = ("", "_", "Error ", "\nimport a", "\nclass ", "in ", "how many ", "what this ",
              "1", "写", "この", "이 ")
    slow = []
    for name, pattern, word_start in patterns:
        for start in starts:
            for run in runs:
                small, large = start + _rep(run, 2_000) + ".", start + _rep(run, 20_000) + "."
                t_large = _best_seconds(lambda: search(pattern, large, 0, None, word_start), 1)
                if t_large < 0.003:  # linear: a quadratic pattern takes ~0.1 s here
                    continue
                ratio, _, t_large = _ratio(
                    lambda: search(pattern, small, 0, None, word_start),
                    lambda: search(pattern, large, 0, None, word_start), 30.0, 0.0001)
                if ratio > 30.0:
                    slow.append("%s on %r + %r*n: %.4fs at 20K" % (name, start, run, t_large))
    assert not slow, slow
