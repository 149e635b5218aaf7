"""``llmroute demo`` runs the main job offline and reports what it measured."""
from __future__ import annotations

import subprocess
import sys

from llmroute.cli import main


def test_demo_routes_falls_back_and_batches(capsys):
    assert main(["demo", "--batch-size", "12"]) == 0
    out = capsys.readouterr().out
    assert "math             -> claude-opus-4.6" in out
    assert "routed_via=fallback" in out and "routed_via=budget" in out
    assert "12 ok, 0 failed" in out


def test_demo_refuses_a_bad_batch_size(capsys):
    assert main(["demo", "--batch-size", "0"]) == 2


def test_python_dash_m_llmroute_demo_runs():
    done = subprocess.run([sys.executable, "-m", "llmroute", "demo", "--batch-size", "4"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Totals by model" in done.stdout
