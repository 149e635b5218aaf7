"""Evaluation: metrics on small known cases, the JSONL loader's errors, the report layout, and
the classifier's figures on the project's dev set against the comparison's baseline."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from llmroute.classification import Classifier
from llmroute.classification.evaluate import Item, evaluate, format_report, load_jsonl

DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "prompts-dev.jsonl"
BASELINE = Path(__file__).resolve().parent / "bench" / "baseline_classifier.py"


def _items(*rows):
    return [Item(text, label, lang) for text, label, lang in rows]


def _answers(mapping):
    return lambda text: mapping[text]


def test_perfect_predictions_score_one():
    items = _items(("a", "code", "en"), ("b", "math", "ko"))
    report = evaluate(items, _answers({"a": "code", "b": "math"}))
    assert report.n == 2 and report.accuracy == 1.0 and report.macro_f1 == 1.0


def test_macro_f1_averages_per_label_f1():
    items = _items(("a", "code", "en"), ("b", "code", "en"), ("c", "math", "en"),
                   ("d", "math", "en"))
    report = evaluate(items, _answers({"a": "code", "b": "math", "c": "math", "d": "math"}))
    # code: P=1, R=.5, F1=2/3; math: P=2/3, R=1, F1=.8
    assert report.per_label["code"].f1 == pytest.approx(2 / 3)
    assert report.per_label["math"].f1 == pytest.approx(0.8)
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert report.accuracy == 0.75
    assert report.confusion["code"] == {"code": 1, "math": 1}


def test_a_label_predicted_but_absent_from_gold_counts_as_zero():
    items = _items(("a", "code", "en"), ("b", "math", "en"))
    report = evaluate(items, _answers({"a": "code", "b": "long_context"}))
    assert "long_context" in report.labels
    assert report.per_label["long_context"].support == 0
    assert report.per_label["long_context"].f1 == 0.0
    assert report.macro_f1 == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert report.confusion["math"]["long_context"] == 1
    assert report.confusion["long_context"] == {"code": 0, "math": 0, "long_context": 0}


def test_per_language_figures_and_a_question_mark_for_items_without_lang(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"text": "a", "label": "code", "lang": "en"},
        {"text": "b", "label": "math"},
        {"text": "c", "label": "math", "lang": "zh"}]) + "\n", encoding="utf-8")
    items = load_jsonl(str(path))
    assert [it.lang for it in items] == ["en", "?", "zh"] and items[1].line == 2
    report = evaluate(items, _answers({"a": "code", "b": "code", "c": "math"}))
    assert report.per_lang["?"] == (1, 0.0, 0.0)
    assert report.per_lang["en"] == (1, 1.0, 1.0)


def test_report_prints_macro_f1_on_its_own_line_and_the_tables():
    items = _items(("a", "code", "en"), ("b", "math", "en"))
    text = format_report(evaluate(items, _answers({"a": "code", "b": "code"})))
    assert re.search(r"^macro-F1: 0\.333$", text, re.M)
    assert re.search(r"^items: 2$", text, re.M) and re.search(r"^accuracy: 0\.500$", text, re.M)
    assert "precision  recall" in text and "support" in text
    assert "rows gold, columns predicted" in text
    assert re.search(r"^\s+en\s+n=2", text, re.M)


@pytest.mark.parametrize("content,message", [
    ('{"text": "a", "label": "code"}\n{oops\n', "line 2: not valid JSON"),
    ('["text", "label"]\n', "line 1: expected a JSON object"),
    ('{"label": "code"}\n', 'line 1: "text" must be a string'),
    ('{"text": "a", "label": ""}\n', 'line 1: "label" must be a non-empty string'),
    ("\n\n", "holds no items"),
])
def test_malformed_files_raise_value_error_with_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_jsonl(str(path))


def test_a_missing_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        load_jsonl(str(tmp_path / "absent.jsonl"))


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('\n{"text": "a", "label": "code"}\n', encoding="utf-8")
    assert load_jsonl(str(path))[0].line == 2


def _baseline():
    spec = importlib.util.spec_from_file_location("baseline_classifier", BASELINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.baseline_classify


@pytest.mark.skipif(not DEV_SET.exists(), reason="dev set not present at %s" % DEV_SET)
def test_dev_set_macro_f1_is_at_least_0_90_and_0_30_above_the_baseline():
    items = load_jsonl(str(DEV_SET))
    clf = Classifier()
    ours = evaluate(items, lambda text: clf.classify(text).task.value)
    baseline = evaluate(items, _baseline())
    assert ours.macro_f1 >= 0.90, format_report(ours)
    assert ours.macro_f1 - baseline.macro_f1 >= 0.30
    for lang, (_, _, f1) in ours.per_lang.items():
        assert f1 >= 0.85, (lang, f1)


def test_baseline_follows_the_comparison_rules():
    baseline = _baseline()
    assert baseline("Please prove that 2 is prime and write a function") == "math"
    assert baseline("이 함수를 요약해 줘") == "code"
    assert baseline("Summarize it, then write more") == "summarization"
    assert baseline("Write an essay") == "creative_writing"
    assert baseline("Extract the names") == "general"


def test_per_source_groups_by_the_part_before_the_hash(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "a", "label": "code", "source": "org/repo/file.jsonl#1"},
            {"text": "b", "label": "math", "source": "org/repo/file.jsonl#2"},
            {"text": "c", "label": "math", "source": "authored#7"},
            {"text": "d", "label": "math"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = evaluate(load_jsonl(str(path)), _answers({"a": "code", "b": "code", "c": "math",
                                                       "d": "math"}))
    assert report.per_source["org/repo/file.jsonl"][:2] == (2, 0.5)
    assert report.per_source["authored"][:2] == (1, 1.0)
    assert report.per_source["?"][0] == 1
    assert "per source (worst accuracy first):" in format_report(report)


def test_calibration_buckets_confidence_and_reports_the_confident_share():
    items = _items(("a", "code", "en"), ("b", "math", "en"), ("c", "math", "en"),
                   ("d", "general", "en"))
    answers = {"a": ("code", 0.95), "b": ("code", 0.85), "c": ("math", 0.3),
               "d": ("general", 1.0)}
    report = evaluate(items, _answers(answers))
    assert report.calibration == {0.2: (1, 1.0), 0.8: (1, 0.0), 0.9: (2, 1.0)}
    assert report.confident(0.8) == (0.75, 2 / 3)
    text = format_report(report)
    assert "calibration (confidence bucket -> accuracy):" in text
    assert "[0.9, 1.0] n=2     accuracy 1.000" in text
    assert "confidence >= 0.8: 75.0% of items, accuracy 0.667" in text


def test_labels_come_from_the_one_list():
    import llmroute.classification.evaluate as ev
    from llmroute.classification import TASK_LABELS, TaskType

    assert TASK_LABELS == tuple(t.value for t in TaskType)
    report = evaluate(_items(("a", "translation", "en"), ("b", "code", "en")),
                      _answers({"a": "translation", "b": "long_context"}))
    assert report.labels == ("code", "long_context", "translation")  # built-ins first
    assert not any(isinstance(v, tuple) and "summarization" in v
                   for k, v in vars(ev).items() if not k.startswith("__"))
