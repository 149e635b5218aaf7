"""Reports over a ledger: totals equal direct SQL sums, percentiles, CSV/JSON/table, the terminal
chart (80 columns, ASCII fallback, colour rules) and the HTML page parsed as SVG; the same
reports on PostgreSQL; and the ``usage`` command's outputs and exit codes."""
from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest

from llmroute.catalog import default_catalog
from llmroute.cli import main
from llmroute.costs import units_to_usd
from llmroute.ledger import Ledger, LedgerRow
from llmroute.ledger.chart import render_spend_chart, use_colour
from llmroute.ledger.html import render_html
from llmroute.ledger.reports import daily_spend, format_table, to_csv, to_json, usage_report

DAY = 86_400
T0 = 1_764_547_200  # 2025-12-01T00:00:00Z
DAYS = 5


def _fill(target, rows=1500, seed=7):
    """Every model has calls on every day; a few errors and an unpriced model."""
    catalog = default_catalog()
    models = list(catalog.names())
    rng = random.Random(seed)
    with Ledger(target) as ledger:
        for i in range(rows):
            model = models[i % len(models)]
            when = T0 + (i // len(models)) % DAYS * DAY + rng.randint(0, DAY - 1)
            if i % 50 == 0:
                ledger.record(LedgerRow(when, model, "APITimeoutError", latency_ms=30000.0,
                                        task="code", tag="cron"))
                continue
            p, c = rng.randint(10, 50_000), rng.randint(1, 4_000)
            ledger.record(LedgerRow(when, model, prompt_tokens=p, completion_tokens=c,
                                    cost_usd=catalog.spec(model).cost(p, c),
                                    latency_ms=float(rng.randint(100, 4000)),
                                    task=rng.choice(["code", "math", None]),
                                    tag=rng.choice(["cron", "web"])))
        ledger.record(LedgerRow(T0 + 10, "mystery-model", prompt_tokens=5, latency_ms=1.0))
    return target


@pytest.fixture
def ledger_file(tmp_path):
    return _fill(str(tmp_path / "usage.db"))


def _sql_sums(path, where="", params=()):
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT model, COUNT(*), SUM(cost_units), SUM(prompt_tokens), "
                            "SUM(completion_tokens) FROM llmroute_calls %s GROUP BY model"
                            % where, params).fetchall()
    finally:
        conn.close()
    return {m: (n, units_to_usd(cost or 0), p, c) for m, n, cost, p, c in rows}


def test_totals_by_model_equal_a_direct_sql_sum(ledger_file):
    with Ledger(ledger_file, create=False) as ledger:
        report = usage_report(ledger, by="model")
    sums = _sql_sums(ledger_file)
    assert {g.key: (g.requests, g.cost_usd, g.prompt_tokens, g.completion_tokens)
            for g in report.groups} == sums
    assert report.total.cost_usd == sum((v[1] for v in sums.values()), Decimal(0))
    assert report.total.requests == 1501 and report.total.errors == 30
    mystery = [g for g in report.groups if g.key == "mystery-model"][0]
    assert mystery.unpriced == 1 and mystery.cost_usd == 0
    costs = [g.cost_usd for g in report.groups]
    assert costs == sorted(costs, reverse=True)


def test_percentiles_are_nearest_rank_over_the_group(tmp_path):
    with Ledger(str(tmp_path / "p.db")) as ledger:
        for ms in range(1, 101):
            ledger.record(LedgerRow(T0, "m", latency_ms=float(ms)))
        ledger.flush()
        group = usage_report(ledger).groups[0]
    assert (group.p50_ms, group.p95_ms, group.p99_ms) == (50.0, 95.0, 99.0)


@pytest.mark.parametrize("by, keys", [
    ("day", ["2025-12-01", "2025-12-02", "2025-12-03", "2025-12-04", "2025-12-05"]),
    ("task", ["", "code", "math"]),
    ("tag", ["", "cron", "web"]),
])
def test_groupings(ledger_file, by, keys):
    with Ledger(ledger_file, create=False) as ledger:
        report = usage_report(ledger, by=by)
        assert sorted(g.key for g in report.groups) == keys
        assert sum((g.cost_usd for g in report.groups), Decimal(0)) == ledger.spent_usd()
        with pytest.raises(ValueError, match="by must be one of"):
            usage_report(ledger, by="hour")


def test_csv_and_json_carry_exact_costs_and_the_table_aligns(ledger_file):
    with Ledger(ledger_file, create=False) as ledger:
        report = usage_report(ledger, since="2025-12-02", until="2025-12-04")
        expected = ledger.spent_usd("2025-12-02", "2025-12-04")
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert rows[-1]["model"] == "total" and Decimal(rows[-1]["cost_usd"]) == expected
    data = json.loads(json.dumps(to_json(report)))
    assert Decimal(data["total"]["cost_usd"]) == expected and data["since"] == "2025-12-02"
    lines = format_table(report).splitlines()
    assert lines[0] == "period: 2025-12-02 to 2025-12-04 (UTC, until exclusive)"
    assert len({len(line) for line in lines[1:4]}) == 1  # header, rule and first row align


def test_terminal_chart_has_one_bar_per_day_fits_80_columns_and_falls_back_to_ascii(
        ledger_file):
    with Ledger(ledger_file, create=False) as ledger:
        daily = daily_spend(ledger)
    text = render_spend_chart(daily)
    bars = [line for line in text.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert len(bars) == DAYS
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "█ claude-opus-4.6" in text or "█ gpt-5.4" in text
    ascii_text = render_spend_chart(daily, blocks=False)
    ascii_text.encode("ascii")
    assert "\x1b[" not in text and "\x1b[" in render_spend_chart(daily, colour=True)
    assert render_spend_chart([]) == "no spend in this period"


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Tty()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Tty())


def _svgs(page):
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, re.S)]


def test_html_page_has_one_bar_per_day_and_model_and_totals_equal_the_sql_sum(ledger_file):
    with Ledger(ledger_file, create=False) as ledger:
        report = usage_report(ledger)
        page = render_html(report, daily_spend(ledger), source=ledger_file)
        total = ledger.spent_usd()
    assert "<script" not in page.lower() and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", "") and "https://" not in page
    spend, tokens, latency = _svgs(page)
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in spend.iter(ns + "rect") if r.get("class") == "bar"]
    models = {g.key for g in report.groups}
    assert len(bars) == DAYS * len(models)
    assert {(b.get("data-day"), b.get("data-model")) for b in bars} == {
        ("2025-12-%02d" % d, m) for d in range(1, DAYS + 1) for m in models}
    assert sum((Decimal(b.get("data-cost")) for b in bars), Decimal(0)) == total
    assert all(b.find(ns + "title") is not None for b in bars)
    assert len([r for r in tokens.iter(ns + "rect")]) == 2 * len(models)
    assert len([r for r in latency.iter(ns + "rect")]) == 3 * len(models)
    assert str(total) in page  # the totals table shows the exact sum


def test_reports_on_postgresql_match_sqlite(tmp_path, postgres_dsn):
    sqlite_path = _fill(str(tmp_path / "same.db"))
    _fill(postgres_dsn)
    with Ledger(sqlite_path, create=False) as lite, Ledger(postgres_dsn, create=False) as pg:
        for by in ("model", "day", "task", "tag"):
            assert usage_report(pg, by=by) == usage_report(lite, by=by)
        assert daily_spend(pg, since="2025-12-02") == daily_spend(lite, since="2025-12-02")
        assert pg.prune("2025-12-03") == lite.prune("2025-12-03")
        assert pg.spent_usd() == lite.spent_usd()


# The usage command ----------------------------------------------------------------------------

def test_usage_json_totals_equal_a_direct_sql_sum(ledger_file, capsys):
    assert main(["usage", "--ledger", ledger_file, "--by", "model", "--format", "json",
                 "--since", "2025-12-02"]) == 0
    data = json.loads(capsys.readouterr().out)
    sums = _sql_sums(ledger_file, "WHERE ts_us >= ?", (1_764_633_600 * 1_000_000,))
    assert {g["key"]: Decimal(g["cost_usd"]) for g in data["groups"]} == {
        m: v[1] for m, v in sums.items()}
    assert Decimal(data["total"]["cost_usd"]) == sum((v[1] for v in sums.values()), Decimal(0))


def test_usage_chart_and_html(ledger_file, tmp_path, capsys):
    page = tmp_path / "report.html"
    assert main(["usage", "--ledger", ledger_file, "--chart", "--html", str(page)]) == 0
    captured = capsys.readouterr()
    assert "spend per day (UTC), stacked by model" in captured.out
    assert "wrote %s" % page in captured.err
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_usage_prune_before(ledger_file, capsys):
    assert main(["usage", "--ledger", ledger_file, "--prune-before", "2025-12-03"]) == 0
    assert "deleted 601 row(s)" in capsys.readouterr().out
    with Ledger(ledger_file, create=False) as ledger:
        assert ledger.count(until="2025-12-03") == 0


@pytest.mark.parametrize("args, message", [
    (["--since", "2025-12-05", "--until", "2025-12-01"], "is after until"),
    (["--since", "last tuesday"], "since must be an ISO 8601 date"),
    (["--chart", "--format", "csv"], "--chart draws for a terminal"),
])
def test_usage_bad_arguments_exit_2_with_one_line(ledger_file, capsys, args, message):
    assert main(["usage", "--ledger", ledger_file] + args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_usage_refuses_a_file_that_is_not_a_ledger_or_is_newer(tmp_path, ledger_file, capsys):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all " * 100)
    assert main(["usage", "--ledger", str(junk)]) == 2
    assert "is not a ledger" in capsys.readouterr().err
    assert main(["usage", "--ledger", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    conn = sqlite3.connect(ledger_file)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    assert main(["usage", "--ledger", ledger_file]) == 2
    assert "newer than the 1 this llmroute reads" in capsys.readouterr().err
    assert main(["usage"]) == 2
    assert "no ledger" in capsys.readouterr().err


def _ledger_with(path, *models):
    """A ledger with one call per model, one day apart (the first today)."""
    now = time.time()
    with Ledger(str(path)) as ledger:
        for i, model in enumerate(models):
            ledger.record(LedgerRow(now - DAY * i, model, prompt_tokens=10, completion_tokens=5,
                                    cost_usd=Decimal("0.25") * (i + 1), latency_ms=12.0))
    return str(path)


def _usage_cli(*argv, env=None):
    """``python -m llmroute usage ...`` in a child process, with ``env`` added."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "llmroute", "usage", *argv],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, PYTHONPATH=str(root), **(env or {})))


@pytest.mark.parametrize("extra", [[], ["--chart"], ["--format", "csv"]])
def test_usage_prints_a_non_ascii_model_name_escaped_on_an_ascii_stdout(tmp_path, extra):
    path = _ledger_with(tmp_path / "u.db", "gpt-5.4", "modèle-😀")
    done = _usage_cli("--ledger", path, *extra, env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr[-300:]
    assert "gpt-5.4" in done.stdout and "mod\\xe8le-\\U0001f600" in done.stdout


def test_the_chart_legend_cuts_a_200_character_model_name_to_80_columns():
    rows = [("2026-11-01", "x" * 200, Decimal("1.50")), ("2026-11-01", "b", Decimal("1"))]
    chart = render_spend_chart(rows, blocks=False, colour=False, title="t")
    assert max(len(line) for line in chart.splitlines()) <= 80
    assert "# " + "x" * 75 + "..." in chart


def test_escape_sequences_in_a_model_name_are_shown_escaped_in_the_chart_and_the_table(
        tmp_path):
    evil = "evil\x1b[2J\x1b[31mred"
    chart = render_spend_chart([("2026-11-01", evil, Decimal("1"))], blocks=False, colour=False)
    with Ledger(_ledger_with(tmp_path / "e.db", evil), create=False) as ledger:
        table = format_table(usage_report(ledger))
    for text in (chart, table):
        assert "\x1b" not in text and "evil\\x1b[2J\\x1b[31mred" in text


def test_the_html_page_stays_well_formed_xml_with_control_characters_in_a_model_name(
        tmp_path):
    path = _ledger_with(tmp_path / "h.db", "ok-model", "bad\x1bmodel\x00", "<script>&")
    with Ledger(path, create=False) as ledger:
        page = render_html(usage_report(ledger, by="model"), daily_spend(ledger), source=path)
    assert "<script>" not in page and "\x1b" not in page and "\x00" not in page
    assert len(_svgs(page)) == 3  # each parses: no raw control character in any of them
    assert "bad\\x1bmodel\\x00" in page


def test_usage_json_csv_and_table_give_the_period_as_the_utc_moment(tmp_path, capsys):
    path = _ledger_with(tmp_path / "j.db", "gpt-5.4")
    period = ["--since", "2026-11-20T00:00+05:00", "--until", "2026-11-21T00:00:00.5Z"]
    assert main(["usage", "--ledger", path, *period, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["since"], data["until"]) == ("2026-11-19T19:00:00Z", "2026-11-21T00:00:00.500000Z")
    assert main(["usage", "--ledger", path, *period]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "period: 2026-11-19T19:00:00Z to 2026-11-21T00:00:00.500000Z (UTC, until exclusive)")
