"""Robustness on wording the tables were not written from, and confidence that means something.

``tests/data/probe-heldout*.jsonl`` are prompts authored for this test (not taken from the dev
set): Korean and Japanese writing and role-play requests in many verb endings and politeness
levels, questions that contain numbers without asking for a computation, extraction questions
about a pasted passage, and a few controls, in all four languages.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from llmroute.classification import Classifier
from llmroute.classification.evaluate import evaluate, load_jsonl

ROOT = Path(__file__).resolve().parents[1]
PROBES = sorted((ROOT / "tests" / "data").glob("probe-heldout*.jsonl"))
DEV = ROOT.parent / "shared" / "data"
needs_dev = pytest.mark.skipif(not (DEV / "prompts-dev.jsonl").exists(),
                               reason="shared/data/prompts-dev.jsonl missing")


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


def _report(clf: Classifier, path: Path):
    return evaluate(load_jsonl(str(path)), lambda t: (clf.classify(t).label,
                                                      clf.classify(t).confidence))


@pytest.mark.parametrize("path", PROBES, ids=[p.name for p in PROBES])
def test_held_out_probes_reach_macro_f1_090_and_080_accuracy_in_every_language(clf, path):
    report = _report(clf, path)
    assert report.macro_f1 >= 0.90
    for lang, (n, accuracy, _) in report.per_lang.items():
        assert accuracy >= 0.80, (lang, n, accuracy)


@pytest.mark.parametrize("path", PROBES, ids=[p.name for p in PROBES])
def test_number_questions_do_not_drift_to_math_nor_writing_to_general(clf, path):
    import json

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    numbers = [r for r in rows if r["kind"] == "numbers"]
    writing = [r for r in rows if r["kind"] == "writing"]
    if not numbers and not writing:
        pytest.skip("%s holds no number questions nor writing requests" % path.name)
    assert sum(clf.classify(r["text"]).label == "math" for r in numbers) <= len(numbers) // 10
    assert sum(clf.classify(r["text"]).label == "general" for r in writing) <= len(writing) // 10


def test_probe_files_are_not_copied_from_the_dev_set():
    if not (DEV / "prompts-dev.jsonl").exists():
        pytest.skip("shared/data/prompts-dev.jsonl missing")
    dev = {" ".join(it.text.split())[:40] for it in load_jsonl(str(DEV / "prompts-dev.jsonl"))}
    for path in PROBES + sorted((ROOT / "tests" / "data").glob("*-heldout*.jsonl")):
        for item in load_jsonl(str(path)):
            assert " ".join(item.text.split())[:40] not in dev, item.text


@pytest.mark.parametrize("name,floor", [("untuned-heldout.jsonl", 0.75),
                                        ("limits-heldout-f.jsonl", 0.80)])
def test_harder_probe_sets_stay_above_their_floor(clf, name, floor):
    """``untuned-heldout.jsonl`` was written after the first rules and scored before any were
    changed for it (macro-F1 0.55 with the tables before issue 13, 0.82 at first sight);
    ``limits-heldout-f.jsonl`` holds questions *about* writing and acting ("How do I write a
    good cover letter?", "演员是怎么记住台词的？"), where a genre word still pulls toward
    creative_writing (0.72 before; 0.95 since how/why questions without a request to write
    discount genre words). Guards against regressions."""
    report = _report(clf, ROOT / "tests" / "data" / name)
    assert report.macro_f1 >= floor and report.accuracy >= floor


@needs_dev
@pytest.mark.parametrize("name", ["prompts-dev.jsonl", "prompts-dev-authored.jsonl"])
def test_confident_predictions_are_most_and_right(clf, name):
    report = _report(clf, DEV / name)
    share, accuracy = report.confident(0.8)
    assert share >= 0.60 and accuracy >= 0.95, (share, accuracy)
    # and confidence orders accuracy: the top bucket is at least as right as the bottom one
    buckets = list(report.calibration.values())
    assert buckets[-1][1] >= buckets[0][1]
