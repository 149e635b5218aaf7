"""The package as shipped: dependencies, no async, a quiet and light import."""
from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

import llmroute

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(llmroute.__file__).resolve().parent


def _requirement_names(text):
    return {re.split(r"[<>=!~;\[ ]", line.strip())[0].lower()
            for line in text.splitlines() if line.strip()}


def test_runtime_dependencies_are_requests_and_urllib3_only():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert _requirement_names(config["options"]["install_requires"]) == {"requests", "urllib3"}
    extras = config["options.extras_require"]
    assert _requirement_names(extras["test"]) == {"pytest", "responses", "redis", "psycopg"}
    assert _requirement_names(extras["redis"]) == {"redis"}
    assert _requirement_names(extras["postgres"]) == {"psycopg"}


def test_installed_metadata_requires_only_requests_and_urllib3():
    from importlib import metadata

    try:
        requires = metadata.requires("llmroute") or []
    except metadata.PackageNotFoundError:
        pytest.skip("llmroute is not installed (a bare checkout): no metadata to check")
    runtime = {r for r in requires if "extra ==" not in r}
    assert _requirement_names("\n".join(runtime)) == {"requests", "urllib3"}


def test_no_async_anywhere_in_the_package():
    pattern = re.compile(r"^\s*(async\s+def|await\s|import\s+asyncio|from\s+asyncio)"
                         r"|import\s+(aiohttp|httpx)|from\s+(aiohttp|httpx)", re.M)
    offenders = [str(p) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text("utf-8"))]
    assert offenders == []


def test_package_data_is_present():
    assert (PACKAGE / "py.typed").exists()
    assert (PACKAGE / "data" / "catalog.json").exists()


def test_import_loads_no_optional_or_edge_module():
    code = ("import sys, llmroute; bad = [m for m in ('argparse', 'sqlite3', 'redis', "
            "'asyncio', 'llmroute.cli', 'llmroute.testing', 'http.server') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_public_names_are_exported():
    for name in llmroute.__all__:
        assert hasattr(llmroute, name), name
