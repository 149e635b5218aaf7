"""``llmroute demo`` runs the whole job offline and reports what it measured; ``--base-url``
runs the same steps against a real gateway, skipping those that need scripted failures."""
from __future__ import annotations

import io
import re
import subprocess
import sys
import time

import pytest

from llmroute.cli import main
from llmroute.cli.demo import STREAM_PROMPT, SKIPPED, _routed_model, run_demo
from llmroute.routes import load_routes
from llmroute.testing import FakeGateway

KEY = "sk-demo-test-0123456789abcdef"


class RecordingStream(io.StringIO):
    """A stdout that records each write and flush, and may claim to be a terminal."""

    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.tty = tty
        self.writes = []
        self.flushes = 0

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def _step(out: str, number: int) -> str:
    """The text of step ``number`` up to the next step or the report."""
    match = re.search(r"\n%d\. .*?(?=\n\d\. |\nReport per model)" % number, out, re.DOTALL)
    assert match, "step %d missing from:\n%s" % (number, out)
    return match.group(0)


def _report_rows(out: str):
    """{model: (requests, errors, tokens, cost, p50, p95)} from the report table."""
    table = out.split("Report per model", 1)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        fields = line.split()
        if len(fields) == 7:
            rows[fields[0]] = fields[1:]
    return rows


@pytest.fixture(scope="module")
def offline():
    """One offline run (12 batch items), its exit code and the stream it wrote to."""
    out = RecordingStream()
    code = run_demo(out, batch_size=12)
    return code, out


def test_offline_demo_exits_0_and_routes_falls_back_caps_and_batches(offline):
    code, out = offline
    text = out.getvalue()
    assert code == 0
    assert "math             -> claude-opus-4.6" in text
    assert "same key on both tries: True" in _step(text, 2)
    assert "routed_via=fallback" in _step(text, 3) and "routed_via=budget" in _step(text, 4)
    assert "12 ok, 0 failed" in _step(text, 7)
    assert SKIPPED not in text and "\x1b[" not in text  # nothing skipped, no colour


def test_json_step_shows_the_parse_error_sent_back_and_the_repaired_data(offline):
    step = _step(offline[1].getvalue(), 5)
    assert '"dates": ["2024-03-01"],}' in step  # the broken first reply, as received
    error = re.search(r"parse error: not valid JSON: (.+)", step).group(1)
    assert "line 1 column" in error
    # What the model was told is what the gateway received in the repair turn.
    assert "repair turn sent to the model: Your previous reply was not valid JSON: %s" % error \
        in step
    assert 'matches the schema: {"people": ["田中", "佐藤"], "dates": ["2024-03-01"]}' in step
    assert "repairs=1, 2 turns" in step


def test_stream_step_writes_each_delta_as_it_arrives(offline):
    out = offline[1]
    header = next(i for i, w in enumerate(out.writes) if w.startswith("\n6. "))
    footer = next(i for i, w in enumerate(out.writes) if re.match(r"  \d+ deltas, ", w))
    deltas = int(re.match(r"  (\d+) deltas", out.writes[footer]).group(1))
    body = [w for w in out.writes[header + 1:footer] if w not in ("  ", "\n")]
    assert deltas > 3 and len(body) == deltas  # one write per delta, not one joined answer
    assert "".join(body).startswith("[fake:claude-opus-4.6] Reply to: Write a short poem")
    assert out.flushes >= deltas
    assert "the first after" in out.writes[footer]


def test_batch_progress_off_a_terminal_is_its_final_line_only(offline):
    step = _step(offline[1].getvalue(), 7)
    progress = [line for line in step.splitlines() if line.startswith("  batch ")]
    assert len(progress) == 1 and "\r" not in step
    assert re.match(r"  batch 12/12 +100%  ok 12  failed 0  [\d.]+/s  elapsed \d+s  \$[\d.]+$",
                    progress[0])


def test_report_gives_requests_tokens_cost_and_p50_p95_per_model(offline):
    text = offline[1].getvalue()
    rows = _report_rows(text)
    assert {"claude-opus-4.6", "gpt-5.4", "gemini-2.5-flash", "deepseek-v3.2"} <= set(rows)
    for model, (requests, errors, tokens, cost, p50, p95) in rows.items():
        assert int(requests) > 0 and int(tokens) > 0 and cost.startswith("$"), model
        assert 0 < float(p50) <= float(p95), model
    assert rows["claude-opus-4.6"][1] == "1"  # the 503s of the fallback step: one failed call
    total = re.search(r"\n  total +(\d+) +(\d+) +(\d+) +\$", text)
    assert int(total.group(1)) == sum(int(r[0]) for r in rows.values())
    assert re.search(r"\nDone in \d+\.\d\d s; the gateway saw \d+ requests\.\n$", text)


def test_batch_progress_on_a_terminal_is_redrawn_in_place():
    out = RecordingStream(tty=True)
    assert run_demo(out, batch_size=5) == 0
    step = _step(out.getvalue(), 7)
    assert "\r  batch " in step
    assert re.search(r"\r  batch 5/5 +100%[^\r\n]*\n  batch: 5 items", step)


def test_demo_refuses_a_bad_batch_size(capsys):
    assert main(["demo", "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--batch-size must be greater than 0" in err


def test_help_explains_itself_with_an_example(capsys):
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "llmroute demo --base-url https://" in out
    assert "LLMROUTE_API_KEY" in out


def test_python_dash_m_llmroute_demo_runs_offline_well_under_30_s():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "llmroute", "demo", "--batch-size", "4"],
                          capture_output=True, text=True, timeout=30)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "Report per model" in done.stdout and done.stderr == ""
    assert wall < 30


@pytest.fixture
def real_gateway():
    """A separate, unscripted FakeGateway standing in for a real one; it checks the key."""
    with FakeGateway(api_key=KEY) as gw:
        yield gw


def _assert_ran_for_real(out: str, gw: FakeGateway, batch_items: int) -> None:
    assert "the gateway at %s" % gw.base_url in out and "fake gateway at" not in out
    for number in (2, 3, 5):  # the 429, the fallback and the repair need a script
        assert SKIPPED in _step(out, number)
    assert "routed_via=budget" in _step(out, 4)
    assert re.search(r"  \d+ deltas, the first after", _step(out, 6))
    assert "batch %d/%d" % (batch_items, batch_items) in _step(out, 7)
    assert _report_rows(out) and "the gateway saw" not in out
    assert KEY not in out
    assert gw.requests and all(r.bearer_matches(KEY) for r in gw.requests)
    streamed = [r for r in gw.requests if r.stream]
    route = load_routes()["creative_writing"]
    assert [r.model for r in streamed] == [route.models[0]]  # the route's params came along
    assert streamed[0].json["temperature"] == route.request_params()["temperature"]
    assert all(r.answered_status == 200 for r in gw.requests)


def test_base_url_runs_the_demo_against_that_gateway_and_skips_scripted_steps(
        real_gateway, monkeypatch, capsys):
    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    assert main(["demo", "--base-url", real_gateway.base_url]) == 0
    captured = capsys.readouterr()
    _assert_ran_for_real(captured.out, real_gateway, 6)  # a small batch where calls are billed
    assert captured.err == ""
    # 6 routed prompts, the cost cap, the stream and the batch: nothing else was sent.
    assert len(real_gateway.requests) == 6 + 1 + 1 + 6


@pytest.mark.parametrize("prefix", ["LLMROUTE", "OPENAI"])
def test_environment_variables_point_the_demo_at_a_gateway(prefix, real_gateway, monkeypatch,
                                                           capsys):
    monkeypatch.setenv(prefix + "_BASE_URL", real_gateway.base_url)
    monkeypatch.setenv(prefix + "_API_KEY", KEY)
    assert main(["demo", "--batch-size", "2"]) == 0
    _assert_ran_for_real(capsys.readouterr().out, real_gateway, 2)


def test_offline_wins_over_a_gateway_in_the_environment(real_gateway, monkeypatch, capsys):
    monkeypatch.setenv("LLMROUTE_BASE_URL", real_gateway.base_url)
    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    assert main(["demo", "--offline", "--batch-size", "2"]) == 0
    assert "fake gateway at" in capsys.readouterr().out and not real_gateway.requests


def test_base_url_without_a_key_is_one_line_and_exit_2(real_gateway, capsys):
    assert main(["demo", "--base-url", real_gateway.base_url]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("llmroute demo: error: --base-url names a real gateway but "
                                   "no API key is set: set LLMROUTE_API_KEY")
    assert not real_gateway.requests


def test_a_base_url_that_is_not_http_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    assert main(["demo", "--base-url", "ftp://gateway.example/v1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must start with http:// or https://" in err


def test_a_gateway_refusing_the_key_fails_in_one_line_with_exit_1(real_gateway, monkeypatch,
                                                                   capsys):
    wrong = "sk-wrong-key-9876543210"
    monkeypatch.setenv("LLMROUTE_API_KEY", wrong)
    assert main(["demo", "--base-url", real_gateway.base_url]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("llmroute demo: error: ") and "401" in captured.err
    assert wrong not in captured.err + captured.out
    assert len(real_gateway.requests) == 1  # a 401 is every model's: no fallback, no retry


def test_a_gateway_failing_every_model_is_one_line_naming_each_with_exit_1(monkeypatch, capsys):
    from llmroute.testing import Reply

    broken = Reply(status=503, headers={"x-should-retry": "false"})  # no retry waits: quick
    with FakeGateway(responder=lambda request: broken) as failing:
        monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
        assert main(["demo", "--base-url", failing.base_url]) == 1
        code_route = load_routes()["code"].models
        assert [r.model for r in failing.requests] == list(code_route)  # step 1 stops there
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("llmroute demo: error: every model of the route failed: "
                          + ", ".join("%s (InternalServerError)" % m for m in code_route)
                          + "; the first said: HTTP 503 from %s" % code_route[0])


def test_the_stream_goes_to_the_model_the_router_would_pick_first(gw):
    from llmroute import Client, CooldownPolicy, RetryPolicy, Router
    from llmroute.testing import Reply

    messages = [{"role": "user", "content": STREAM_PROMPT}]
    with Client(gw.base_url, KEY, retry=RetryPolicy(max_retries=0)) as client:
        router = Router(client, cooldown=CooldownPolicy(failures=1))
        first = load_routes()["creative_writing"].models
        assert _routed_model(router, messages)[:2] == ("creative_writing", first[0])
        gw.script(first[0], Reply(status=503))
        assert router.complete(messages).routed_via == "fallback"  # first[0] now cools down
        task, model, params = _routed_model(router, messages)
        assert model == first[1] and params["max_tokens"] > 0
        assert _routed_model(router, messages)[1] == router.complete(messages).model
