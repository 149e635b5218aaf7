"""A custom task end to end: classified in four languages, routed by its own route, written to
batch output with its label; the Router checks routes and custom tasks both ways."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from llmroute import Client, RetryPolicy
from llmroute.classification import Classifier, TaskType
from llmroute.cli.batch import add_parser, run_batch
from llmroute.router import Router

ROOT = Path(__file__).resolve().parents[1]
TASKS_FILE = ROOT / "tests" / "data" / "tasks-translation.json"
TASKS = json.loads(TASKS_FILE.read_text(encoding="utf-8"))
ROUTE = ["gemini-2.5-flash", "gpt-4.1"]
KEY = "sk-test-custom-tasks-0123"
PROMPTS = {
    "en": "Translate this paragraph into Spanish: the museum opens at nine.",
    "ko": "이 문장을 영어로 번역해 줘: 오늘은 날씨가 좋네요.",
    "ja": "次の文を英語に翻訳してください。「駅はどこですか」",
    "zh": "请把这句话翻译成日语：我明天去北京。",
}


@pytest.fixture
def client(gw):
    with Client(gw.base_url, KEY, retry=RetryPolicy(max_retries=0)) as c:
        yield c


@pytest.fixture
def router(client):
    return Router(client, classifier=Classifier(tasks=TASKS), routes={"translation": ROUTE})


@pytest.mark.parametrize("lang", sorted(PROMPTS))
def test_a_custom_task_is_routed_by_its_route_in_each_language(router, gw, lang):
    result = router.complete(PROMPTS[lang])
    assert result.task == "translation" and not isinstance(result.task, TaskType)
    assert result.model == ROUTE[0] and result.routed_via == "primary"
    assert result.reason.startswith("translation prompt (matched: translation:%s:" % lang)
    assert [r.json["model"] for r in gw.requests] == [ROUTE[0]]


def test_a_custom_task_falls_back_along_its_route(router, gw):
    from llmroute.testing import Reply

    gw.script(ROUTE[0], Reply(status=503))
    result = router.complete(PROMPTS["ko"])
    assert (result.task, result.model, result.routed_via) == ("translation", ROUTE[1],
                                                             "fallback")


def test_built_in_tasks_keep_their_type_and_routes_beside_a_custom_one(router):
    result = router.complete("Write a haiku about autumn rain")
    assert result.task is TaskType.CREATIVE_WRITING
    assert result.model == router.routes["creative_writing"].models[0]
    assert router.complete(PROMPTS["en"], task="translation").task == "translation"


def test_a_custom_task_without_a_route_is_refused(client):
    with pytest.raises(ValueError, match="custom task 'translation' has no route"):
        Router(client, classifier=Classifier(tasks=TASKS))
    with pytest.raises(ValueError, match="custom task 'translation' has no route"):
        Router(client, classifier=Classifier(tasks=TASKS), routes={"code": ["gpt-4.1"]})


def test_a_route_for_a_task_the_classifier_cannot_give_is_refused(client, tmp_path):
    with pytest.raises(ValueError, match="unknown task 'translation' in routes"):
        Router(client, routes={"translation": ROUTE})
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": {"translation": ROUTE}}), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown task 'translation'"):
        Router(client, routes=str(path))
    with pytest.raises(ValueError, match="unknown task 'sql'"):
        Router(client, classifier=Classifier(tasks=TASKS),
               routes={"translation": ROUTE, "sql": ["gpt-4.1"]})


def test_a_custom_label_equal_to_a_built_in_is_refused(client):
    class Impostor:
        custom_labels = ("code",)

        def classify(self, text=None, *, tools=None, messages=None):
            raise AssertionError("not reached")

    with pytest.raises(ValueError, match="'code' has the name of a built-in task"):
        Router(client, classifier=Impostor(), routes={"code": ROUTE})
    with pytest.raises(ValueError, match="built-in task"):
        Classifier(tasks={"code": {"en": {"program": 2.0}}})


def test_an_unknown_given_task_is_refused(router):
    with pytest.raises(ValueError, match="unknown task 'sql'"):
        router.complete("hi", task="sql")


def _batch(*argv):
    parser = argparse.ArgumentParser(prog="llmroute")
    add_parser(parser.add_subparsers(dest="command"))
    err = io.StringIO()
    return run_batch(parser.parse_args(["batch", *map(str, argv)]), stderr=err), err.getvalue()


def test_batch_takes_tasks_and_routes_files_and_writes_the_custom_label(gw, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    monkeypatch.setenv("LLMROUTE_BASE_URL", gw.base_url)
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": {"translation": ROUTE}}), encoding="utf-8")
    source = tmp_path / "in.jsonl"
    rows = [{"id": lang, "prompt": text} for lang, text in sorted(PROMPTS.items())]
    rows.append({"id": "poem", "prompt": "Write a haiku about autumn rain"})
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                      encoding="utf-8")
    out = tmp_path / "out.jsonl"
    ledger = tmp_path / "usage.sqlite"
    code, err = _batch(source, "-o", out, "--tasks", TASKS_FILE, "--routes", routes,
                       "--workers", 2, "--no-progress", "--ledger", ledger)
    assert code == 0, err
    records = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    for lang in PROMPTS:
        assert records[lang]["task"] == "translation" and records[lang]["model"] == ROUTE[0]
    assert records["poem"]["task"] == "creative_writing"
    from llmroute.ledger import open_shared

    book = open_shared(str(ledger))  # the process's writer for this file: flush what it holds
    book.flush()
    rows = book.fetch("SELECT model, task, routed_via FROM llmroute_calls")
    assert sorted(rows) == sorted([(ROUTE[0], "translation", "primary")] * 4 + [
        (records["poem"]["model"], "creative_writing", "primary")])


def test_batch_refuses_custom_tasks_without_their_routes(gw, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    monkeypatch.setenv("LLMROUTE_BASE_URL", gw.base_url)
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "prompt": "번역해 줘: 안녕"}\n', encoding="utf-8")
    code, err = _batch(source, "-o", tmp_path / "out.jsonl", "--tasks", TASKS_FILE)
    assert code == 2 and "custom task 'translation' has no route" in err


def test_a_route_table_takes_custom_tasks_it_is_told_of():
    from llmroute.routes import RouteTable, default_routes

    table = RouteTable({"translation": ROUTE}, base=default_routes(), tasks=("translation",))
    assert table["translation"].models == tuple(ROUTE) and table.custom_tasks == ("translation",)
    assert list(table)[-1] == "translation"
    with pytest.raises(ValueError, match="unknown task 'translation'"):
        RouteTable({"translation": ROUTE}, base=default_routes())
    with pytest.raises(ValueError, match="no route for custom task translation"):
        RouteTable({}, base=default_routes(), tasks=("translation",))
    with pytest.raises(ValueError, match="built-in task"):
        RouteTable({}, base=default_routes(), tasks=("code",))


def test_router_from_file_takes_routes_for_custom_tasks(client, gw, tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": {"translation": ROUTE}}), encoding="utf-8")
    router = Router.from_file(client, path, classifier=Classifier(tasks_file=str(TASKS_FILE)))
    result = router.complete(PROMPTS["ja"])
    assert (result.task, result.model) == ("translation", ROUTE[0])


def test_a_route_for_a_custom_task_says_so():
    from llmroute.routes import Route

    assert Route("translation", tuple(ROUTE), {}, custom=True).task == "translation"
    with pytest.raises(ValueError, match="unknown task 'translation' in Route"):
        Route("translation", tuple(ROUTE), {})
    with pytest.raises(ValueError, match="built-in task"):
        Route("code", tuple(ROUTE), {}, custom=True)
