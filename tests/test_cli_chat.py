"""``llmroute chat`` and ``llmroute models`` against the FakeGateway: output, report, exit codes."""
from __future__ import annotations

import argparse
import io
import json

import pytest

from llmroute.cli import UsageError, build_parser, main
from llmroute.testing import Reply

KEY = "sk-test-cli-0123456789"


def _parser() -> argparse.ArgumentParser:
    return build_parser()


class _Interrupting(io.StringIO):
    def read(self, *args):
        raise KeyboardInterrupt


def run(argv, stdin=""):
    """(exit code, stdout, stderr) of one command."""
    args = _parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    if args.command == "chat":
        source = stdin if isinstance(stdin, io.StringIO) else io.StringIO(stdin)
        code = args.func(args, stdin=source, stdout=out, stderr=err)
    else:
        code = args.func(args, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def env(gw, monkeypatch):
    monkeypatch.setenv("LLMROUTE_BASE_URL", gw.base_url)
    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    return gw


def test_routed_prompt_prints_the_answer_and_reports_on_stderr(env):
    code, out, err = run(["chat", "Solve the equation 2x + 3 = 11"])
    assert code == 0
    assert out == "[fake:claude-opus-4.6] Reply to: Solve the equation 2x + 3 = 11\n"
    assert "model: claude-opus-4.6" in err and "task: math" in err
    assert "tokens: " in err and "cost: $0.000" in err and "latency: " in err
    assert "why: math prompt (matched:" in err
    assert env.requests[0].model == "claude-opus-4.6"


def test_model_system_and_params_are_sent(env):
    code, out, err = run(["chat", "-m", "gpt-4.1", "--system", "Be terse.", "--max-tokens",
                          "20", "--temperature", "0.5", "hi"])
    assert code == 0 and out.startswith("[fake:gpt-4.1]")
    body = env.requests[0].json
    assert body["messages"] == [{"role": "system", "content": "Be terse."},
                                {"role": "user", "content": "hi"}]
    assert (body["max_tokens"], body["temperature"]) == (20, 0.5)
    assert "task: -" in err and "why: given with --model" in err


def test_prompt_dash_reads_stdin(env):
    code, out, _ = run(["chat", "-m", "gpt-5.4", "-"], stdin="from a pipe\n")
    assert code == 0
    assert env.requests[0].json["messages"][-1]["content"] == "from a pipe\n"


def test_stream_prints_deltas_and_the_report(env):
    env.script("gpt-5.4", Reply(stream_chunks=["one ", "two ", "three"]))
    code, out, err = run(["chat", "-m", "gpt-5.4", "--stream", "count"])
    assert (code, out) == (0, "one two three\n")
    assert env.requests[0].stream
    assert "model: gpt-5.4" in err and "(estimated)" not in err


def test_routed_stream_goes_to_the_first_model_of_the_route(env):
    code, out, err = run(["chat", "--route", "--stream", "Write a poem about the sea"])
    assert code == 0 and out.startswith("[fake:claude-opus-4.6]")
    assert "task: creative_writing" in err and "no fallback" in err


def test_json_with_a_schema_repairs_and_prints_the_parsed_answer(env, tmp_path):
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name", "age"], "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"}}}))
    env.script_any(Reply(content='{"name": "Ada"}'), Reply(content='{"name": "Ada", "age": 36}'))
    code, out, err = run(["chat", "--json", "--schema", str(schema), "Ada Lovelace, 36"])
    assert code == 0
    assert json.loads(out) == {"name": "Ada", "age": 36}
    assert "1 repair turn" in err and "task: extraction" in err
    assert len(env.requests) == 2


@pytest.mark.parametrize("argv, needle", [
    (["chat", "--schema", "x.json", "hi"], "--schema needs --json"),
    (["chat", "--json", "--stream", "hi"], "do not go together"),
    (["chat", "-m", "gpt-5.4", "--task", "code", "hi"], "--task only applies"),
    (["chat", "   "], "prompt is empty"),
    (["chat", "--json", "--schema", "/nonexistent/schema.json", "hi"], "cannot read --schema"),
    (["chat", "--task", "poetry", "hi"], "unknown task"),
])
def test_bad_usage_exits_2_with_one_line(env, argv, needle):
    code, out, err = run(argv)
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert env.requests == []


def test_missing_key_exits_2_naming_the_variable(gw, monkeypatch):
    monkeypatch.setenv("LLMROUTE_BASE_URL", gw.base_url)
    code, _, err = run(["chat", "hi"])
    assert code == 2 and "LLMROUTE_API_KEY" in err


def test_a_failed_call_exits_1_with_one_line_and_no_key(env):
    env.script("gpt-5.4", Reply(status=401))
    code, out, err = run(["chat", "-m", "gpt-5.4", "hi"])
    assert code == 1 and out == ""
    assert err.strip() == "llmroute chat: error: AuthenticationError: HTTP 401 from gpt-5.4: " \
                          "Invalid API key provided"
    assert KEY not in err


def test_debug_shows_the_traceback(env):
    env.script("gpt-5.4", Reply(status=401))
    code, _, err = run(["chat", "--debug", "-m", "gpt-5.4", "hi"])
    assert code == 1 and "Traceback" in err and KEY not in err


def test_interrupt_exits_130(env):
    code, _, err = run(["chat", "-m", "gpt-5.4", "-"], stdin=_Interrupting())
    assert code == 130 and "interrupted" in err


def test_dead_gateway_exits_1(monkeypatch):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    code, _, err = run(["chat", "--base-url", "http://127.0.0.1:%d/v1" % port, "--deadline", "0.3",
                        "-m", "gpt-5.4", "hi"])
    assert code == 1 and "APIConnectionError" in err


@pytest.mark.parametrize("argv", [["chat", "--max-tokens", "0", "hi"],
                                  ["chat", "--deadline", "nan", "hi"],
                                  ["chat", "--model", "x", "--route", "hi"],
                                  ["chat"],
                                  ["models", "--format", "xml"]])
def test_bad_options_exit_2_with_one_line(argv, capsys):
    with pytest.raises(UsageError):
        _parser().parse_args(argv)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("command", ["chat", "models"])
def test_help_explains_itself_with_an_example_and_exits_0(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "llmroute %s" % command in out


def test_top_level_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "chat" in out and "models" in out


def test_main_runs_chat_end_to_end(env, capsys):
    assert main(["chat", "-m", "gpt-5.4", "hello from main"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("[fake:gpt-5.4] Reply to: hello from main")
    assert "model: gpt-5.4" in captured.err


def test_python_m_llmroute_models_runs(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "llmroute", "models", "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "gpt-5.4" in {m["name"] for m in json.loads(out.stdout)}


# -- models ---------------------------------------------------------------------------------------

def test_models_table_lists_every_model_with_prices_and_windows():
    code, out, _ = run(["models"])
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split()[:2] == ["model", "context"]
    row = next(line for line in lines if line.startswith("gpt-5.4 "))
    assert "200K" in row and "15 / 30" in row and "60 / 120" in row and "function_calling" in row
    assert any(line.startswith("gemini-2.5-flash") and " 1M " in line for line in lines)


def test_models_json_keeps_money_exact():
    code, out, _ = run(["models", "--format", "json"])
    data = {m["name"]: m for m in json.loads(out)}
    assert code == 0
    assert data["deepseek-v3.2"]["input_usd_per_mtok"] == "0.42"
    assert data["gpt-5.4"]["context_window"] == 200000
    assert "math" in data["claude-opus-4.6"]["strengths"]


def test_models_catalog_file_adds_a_model_and_a_bad_file_exits_2(tmp_path):
    extra = tmp_path / "catalog.json"
    extra.write_text(json.dumps({"models": [{"name": "house-model", "context_window": 32000,
                                             "input_usd_per_mtok": 1, "output_usd_per_mtok": 2}]}))
    code, out, _ = run(["models", "--catalog", str(extra), "--format", "json"])
    assert code == 0 and "house-model" in {m["name"] for m in json.loads(out)}
    code, out, err = run(["models", "--catalog", str(tmp_path / "missing.json")])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
