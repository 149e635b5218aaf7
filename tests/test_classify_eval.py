"""The classifier's quality, measured on the development set, against the comparison's own."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import llmroute
from llmroute.classification import TaskType, classify
from llmroute.classification.evaluate import evaluate, load_jsonl

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "prompts-dev.jsonl"
needs_dev = pytest.mark.skipif(not DEV.exists(), reason="shared/data/prompts-dev.jsonl missing")


def _baseline():
    spec = importlib.util.spec_from_file_location(
        "baseline_classifier", ROOT / "tests" / "bench" / "baseline_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.baseline_classify


@needs_dev
def test_dev_macro_f1_is_at_least_090_and_beats_the_baseline_by_030():
    items = load_jsonl(str(DEV))
    ours = evaluate(items, lambda text: classify(text).task.value)
    theirs = evaluate(items, _baseline())
    assert ours.macro_f1 >= 0.90
    assert ours.macro_f1 - theirs.macro_f1 >= 0.30


@needs_dev
def test_eval_command_prints_macro_f1_per_language_and_confusion_matrix():
    done = subprocess.run([sys.executable, "-m", "llmroute", "classify", "--eval", str(DEV)],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    line = next(l for l in lines if l.startswith("macro-F1: "))
    assert float(line.split()[1]) >= 0.90
    for lang in ("en", "ko", "zh", "ja"):
        assert any(l.strip().startswith(lang) and "macro-F1" in l for l in lines)
    assert "confusion" in done.stdout.lower()


@pytest.mark.parametrize("text, task", [
    ("방정식 2x + 3 = 11을 풀어 주세요.", "math"),
    ("Write a short story about a lonely mathematician who finds a cat.", "creative_writing"),
    ("Summarize this code review meeting for the team: we agreed to split the module.",
     "summarization"),
    ("Traceback (most recent call last):\n  File \"a.py\", line 3\nKeyError: 'x' — why?", "code"),
    ("请总结下面这篇文章的主要内容：今天公司召开了年度大会，讨论了明年的计划。", "summarization"),
    ("次の文章から人名をすべて抜き出してください：田中さんと佐藤さんが会った。", "extraction"),
    ("What is a good name for a golden retriever puppy?", "general"),
])
def test_clear_cases_in_four_languages(text, task):
    assert classify(text).task == TaskType(task)


def test_tools_make_it_function_calling_and_cues_explain_why():
    result = classify("What's the weather in Paris?", tools=[{"type": "function"}])
    assert result.task == TaskType.FUNCTION_CALLING
    explained = classify("Calculate 17 * 23")
    assert explained.matched and 0 <= explained.confidence <= 1
    assert llmroute.estimate_tokens("x " * 10) > 0
