"""llmroute.cli: one module per command (add_parser + run), one source for exit codes, the
usage error and the one-line error printer."""
from __future__ import annotations

import argparse
import importlib
import io

import pytest

import llmroute.cli as cli
from llmroute.cli import _common


def test_every_command_module_declares_its_parser_and_its_runner():
    parser = cli.build_parser()
    help_text = parser.format_help()
    for name in cli.COMMANDS:
        module = importlib.import_module("llmroute.cli." + name)
        assert callable(module.add_parser) and callable(module.run), name
        assert name in help_text
        subparsers = argparse.ArgumentParser().add_subparsers()
        declared = module.add_parser(subparsers)
        assert declared.get_default("func") is module.run


def test_exit_codes_and_the_usage_error_have_one_source():
    from llmroute.cli import batch

    assert (cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED) == (0, 1, 2, 130)
    assert cli.EXIT_USAGE is _common.EXIT_USAGE
    assert batch.UsageError is _common.UsageError
    for name in ("EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED"):
        assert getattr(batch, name) is getattr(_common, name)


def test_print_error_writes_one_line_even_for_a_message_of_several():
    stream = io.StringIO()
    _common.print_error("llmroute batch", ValueError("first\nsecond  line"), stream)
    assert stream.getvalue() == "llmroute batch: error: first second line\n"


@pytest.mark.parametrize("argv", [["nope"], ["batch"], ["demo", "--batch-size", "x"]])
def test_bad_usage_returns_2_with_one_line_pointing_to_help(argv, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--help)" in err and "Traceback" not in err
    assert err.startswith("llmroute")


@pytest.mark.parametrize("command", [None] + list(cli.COMMANDS))
def test_every_command_has_help_with_an_example_and_exits_0(command, capsys):
    argv = ([command] if command else []) + ["--help"]
    assert cli.main(argv) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "usage:" in out and "llmroute" in out
    assert "example" in out.lower(), "%s --help shows no example" % (command or "llmroute")


def test_version_is_the_packages(capsys):
    import llmroute

    assert cli.main(["--version"]) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == "llmroute %s" % llmroute.__version__


def test_an_error_escaping_a_command_is_one_line_and_exit_1_unless_debug(monkeypatch, capsys):
    import llmroute.cli.classify as command

    def boom(args):
        raise llmroute.APIConnectionError("gateway unreachable\nsecond line")

    import llmroute
    monkeypatch.setattr(command, "run", boom)
    assert cli.main(["classify", "hello"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err == "llmroute classify: error: APIConnectionError: gateway unreachable second line\n"
    with pytest.raises(llmroute.APIConnectionError):
        cli.main(["classify", "--debug", "hello"])


def test_ctrl_c_in_a_command_exits_130(monkeypatch, capsys):
    import llmroute.cli.classify as command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "run", interrupted)
    assert cli.main(["classify", "hello"]) == cli.EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err


def test_a_bug_in_a_command_is_one_line_and_exit_1_and_its_traceback_only_with_debug(
        monkeypatch, capsys):
    import llmroute.cli.classify as command

    def buggy(args):
        raise KeyError("sk-live-0123456789abcdef")  # a bug, and a key-shaped text in it

    monkeypatch.setattr(command, "run", buggy)
    assert cli.main(["classify", "hello"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("llmroute classify: error: internal error, KeyError:")
    assert "sk-live-0123456789abcdef" not in err and "--debug" in err
    with pytest.raises(KeyError):
        cli.main(["classify", "--debug", "hello"])


def test_print_text_escapes_what_the_stream_encoding_cannot_hold():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    _common.print_text("modèle-😀", stream)
    stream.flush()
    assert raw.getvalue() == b"mod\\xe8le-\\U0001f600\n"
