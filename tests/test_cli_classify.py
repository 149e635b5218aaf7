"""``llmroute classify``: one prompt (text or JSON), --eval on a JSONL file, exit codes."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest

from llmroute.cli import EXIT_OK, EXIT_USAGE, main


def _write(tmp_path, rows, name="set.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)
                              for r in rows) + "\n", encoding="utf-8")
    return str(path)


def test_classify_prints_task_confidence_and_cues(capsys):
    assert main(["classify", "Write a haiku about autumn"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "task: creative_writing" in out
    assert re.search(r"^confidence: [01]\.\d\d$", out, re.M)
    assert "creative_writing:en:haiku" in out


def test_classify_json_output(capsys):
    assert main(["classify", "--json", "求 1 到 100 的和"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["task"] == "math" and data["text_task"] == "math"
    assert 0 <= data["confidence"] <= 1 and data["scores"]["math"] > 0
    assert any(cue.startswith("math:zh:") for cue in data["matched"])


def test_classify_reads_standard_input_for_a_dash(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Summarize this thread for me please"))
    assert main(["classify", "-"]) == EXIT_OK
    assert "task: summarization" in capsys.readouterr().out


def test_classify_with_a_keywords_file(tmp_path, capsys):
    path = tmp_path / "kw.json"
    path.write_text(json.dumps({"code": {"zorblang": 5.0}}), encoding="utf-8")
    assert main(["classify", "--keywords", str(path), "loops in zorblang?"]) == EXIT_OK
    assert "task: code" in capsys.readouterr().out


def test_eval_prints_the_report(tmp_path, capsys):
    path = _write(tmp_path, [
        {"text": "Write a poem about rain", "label": "creative_writing", "lang": "en"},
        {"text": "What is 12 * 7?", "label": "math", "lang": "en"},
        {"text": "帮我总结一下这篇文章：今天天气很好，我们去了公园。", "label": "summarization",
         "lang": "zh"},
        {"text": "Why is the sky blue?", "label": "general"}])
    assert main(["classify", "--eval", path]) == EXIT_OK
    out = capsys.readouterr().out
    assert re.search(r"^items: 4$", out, re.M)
    assert re.search(r"^accuracy: 1\.000$", out, re.M)
    assert re.search(r"^macro-F1: 1\.000$", out, re.M)
    assert re.search(r"^\s+\?\s+n=1", out, re.M) and re.search(r"^\s+zh\s+n=1", out, re.M)
    assert "confusion (rows gold, columns predicted)" in out


def test_eval_lists_misclassified_items_on_request(tmp_path, capsys):
    path = _write(tmp_path, [{"text": "Write a poem", "label": "math", "lang": "en"}])
    assert main(["classify", "--eval", path, "--errors", "5"]) == EXIT_OK
    assert "line 1 [en] math -> creative_writing: Write a poem" in capsys.readouterr().out


def test_eval_json_output(tmp_path, capsys):
    path = _write(tmp_path, [{"text": "Write a poem", "label": "creative_writing"}])
    assert main(["classify", "--eval", path, "--json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["macro_f1"] == 1.0 and data["per_language"]["?"]["items"] == 1
    assert data["confusion"]["creative_writing"]["creative_writing"] == 1


def test_a_malformed_line_is_a_usage_error_naming_its_line(tmp_path, capsys):
    path = _write(tmp_path, [{"text": "ok", "label": "general"}, "{broken"])
    assert main(["classify", "--eval", path]) == EXIT_USAGE
    assert "line 2" in capsys.readouterr().err


def test_a_missing_file_is_a_usage_error(tmp_path, capsys):
    assert main(["classify", "--eval", str(tmp_path / "nope.jsonl")]) == EXIT_USAGE
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["classify", "some text", "--eval", "x.jsonl"], "not both"),
    (["classify", "--errors", "-1", "--eval", "x.jsonl"], "--errors"),
    (["classify", "--long-context-tokens", "0", "hi"], "long_context_tokens"),
    (["classify", "--keywords", "/nonexistent/kw.json", "hi"], "cannot read keywords file"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_usage_exits_2_with_a_message(argv, message, capsys):
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_nothing_to_classify_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["classify", "-"]) == EXIT_USAGE
    assert "nothing to classify" in capsys.readouterr().err


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert main([]) == EXIT_USAGE
    assert "classify" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["classify", "--help"]) == EXIT_OK
    assert "--eval" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "llmroute", "classify", "--json",
                          "Extract every date from this email:\n\nMeet on 3 May, then 9 June."],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["task"] == "extraction"
