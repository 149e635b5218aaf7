"""Custom task types: labels of your own with their keyword tables, validated up front."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import llmroute.classification.classifier as classifier_module
from llmroute.classification import TASK_LABELS, Classifier, TaskType
from llmroute.cli import EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[1]
TASKS_FILE = ROOT / "tests" / "data" / "tasks-translation.json"
TASKS = json.loads(TASKS_FILE.read_text(encoding="utf-8"))

TRANSLATION_PROMPTS = [
    ("en", "Translate this paragraph into Spanish: the museum opens at nine."),
    ("ko", "이 문장을 영어로 번역해 줘: 오늘은 날씨가 좋네요."),
    ("ja", "次の文を英語に翻訳してください。「駅はどこですか」"),
    ("zh", "请把这句话翻译成日语：我明天去北京。"),
]


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(tasks=TASKS)


@pytest.mark.parametrize("lang,text", TRANSLATION_PROMPTS)
def test_a_custom_task_is_classified_in_each_language(clf, lang, text):
    result = clf.classify(text)
    assert result.task == "translation" and isinstance(result.task, str)
    assert not isinstance(result.task, TaskType)
    assert result.label == "translation" and result.text_label == "translation"
    assert any(name.startswith("translation:%s:" % lang) for name in result.matched)
    assert "translation" in result.scores


@pytest.mark.parametrize("text,task", [
    ("Write a haiku about the sea", TaskType.CREATIVE_WRITING),
    ("def add(a, b):\n    return a + b\n\nWhy does this fail?", TaskType.CODE),
    ("What is 17 * 23?", TaskType.MATH),
])
def test_built_in_tasks_keep_their_type_beside_custom_ones(clf, text, task):
    assert clf.classify(text).task is task


def test_tools_and_length_still_decide_before_a_custom_task():
    clf = Classifier(tasks=TASKS, long_context_tokens=50)
    assert clf.classify("Translate into French: hello", tools=[{"type": "function"}]).task \
        is TaskType.FUNCTION_CALLING
    long_text = "Translate into French: " + "the cat sat on the mat. " * 40
    result = clf.classify(long_text)
    assert result.task is TaskType.LONG_CONTEXT and result.text_task == "translation"


def test_tasks_file_gives_the_same_classifier_as_tasks(clf):
    from_file = Classifier(tasks_file=str(TASKS_FILE))
    assert from_file.custom_labels == ("translation",)
    assert from_file.labels == TASK_LABELS + ("translation",)
    for _, text in TRANSLATION_PROMPTS:
        assert from_file.classify(text).scores == clf.classify(text).scores


def test_custom_task_with_patterns_and_only_some_languages():
    clf = Classifier(tasks={"sql": {"en": {"cues": {"sql": 2.0},
                                           "patterns": {"join": {"re": "\\bleft join\\b",
                                                                 "w": 3.0}}}}})
    assert clf.classify("Explain what a LEFT JOIN returns in SQL").task == "sql"


@pytest.mark.parametrize("tasks,message", [
    ({"code": {"en": {"program": 2.0}}}, "built-in task"),
    ({"Translation": {"en": {"translate": 2.0}}}, "lower-case name"),
    ({"": {"en": {"translate": 2.0}}}, "lower-case name"),
    ({"legal review": {"en": {"contract": 2.0}}}, "lower-case name"),
    ({"translation": {"fr": {"traduire": 2.0}}}, "unknown language 'fr'"),
    ({"translation": {"en": {}}}, "non-empty"),
    ({"translation": {}}, "map languages"),
    ({"translation": {"en": {"translate": "high"}}}, "weight must be a number"),
    ({"translation": {"en": {"translate": True}}}, "weight must be a number"),
    ({"translation": {"en": {"   ": 2.0}}}, "non-empty string"),
    ({"translation": {"en": {"patterns": {"x": {"re": "(a)", "w": 1}}}}}, "capturing"),
    ({"translation": {"en": {"cues": {"a": 1}, "extra": {}}}}, "unknown keys"),
    ({}, "must map task labels"),
    (["translation"], "must map task labels"),
])
def test_bad_tasks_are_refused_at_construction(tasks, message):
    with pytest.raises(ValueError, match=message):
        Classifier(tasks=tasks)


def test_the_same_task_in_tasks_and_tasks_file_is_refused():
    with pytest.raises(ValueError, match="given twice"):
        Classifier(tasks=TASKS, tasks_file=str(TASKS_FILE))


@pytest.mark.parametrize("content,message", [
    (None, "cannot read"), ("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_a_bad_tasks_file_is_refused_naming_it(tmp_path, content, message):
    path = tmp_path / "tasks.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        Classifier(tasks_file=str(path))


def test_extra_keywords_may_name_a_custom_label_but_not_an_unknown_one():
    clf = Classifier(tasks=TASKS, extra_keywords={"translation": {"localise": 4.0}})
    assert clf.classify("Please localise this menu for our Paris shop").task == "translation"
    with pytest.raises(ValueError, match="unknown label 'translation'"):
        Classifier(extra_keywords={"translation": {"localise": 4.0}})


def test_tables_compile_once_on_first_classification_whatever_the_threads(monkeypatch):
    calls = []
    real = classifier_module.build_tables

    def counting(user, use_default_tables=True):
        calls.append(1)
        return real(user, use_default_tables)

    monkeypatch.setattr(classifier_module, "build_tables", counting)
    clf = Classifier(tasks=TASKS)
    assert calls == []  # validated, not compiled
    barrier = threading.Barrier(8)
    results = []

    def work():
        barrier.wait()
        results.append(clf.classify("이 문장을 영어로 번역해 줘").task)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == ["translation"] * 8 and calls == [1]


def test_importing_the_package_reads_no_table():
    code = (
        "import sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == 'open' "
        "and str(args[0]).endswith('.json') else None)\n"
        "import llmroute.classification\n"
        "from llmroute.classification import Classifier\n"
        "Classifier()\n"
        "print(len(opened))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_eval_command_takes_a_tasks_file(tmp_path, capsys):
    data = tmp_path / "eval.jsonl"
    rows = [{"text": t, "label": "translation", "lang": lang} for lang, t in TRANSLATION_PROMPTS]
    rows.append({"text": "Write a limerick about a cat", "label": "creative_writing",
                 "lang": "en"})
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    assert main(["classify", "--eval", str(data), "--tasks", str(TASKS_FILE), "--json"]) \
        == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["macro_f1"] == 1.0 and report["per_label"]["translation"]["support"] == 4
    assert main(["classify", "--tasks", str(TASKS_FILE), "번역 부탁해요: 안녕하세요"]) == EXIT_OK
    assert "task: translation" in capsys.readouterr().out


def test_eval_command_refuses_a_bad_tasks_file(tmp_path, capsys):
    bad = tmp_path / "tasks.json"
    bad.write_text('{"code": {"en": {"x": 1}}}', encoding="utf-8")
    assert main(["classify", "--tasks", str(bad), "hello"]) == EXIT_USAGE
    assert "built-in task" in capsys.readouterr().err
