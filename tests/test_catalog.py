"""The model catalog: the shipped file, overrides from a file and LLMROUTE_CATALOG, exact Decimal
prices, unknown models, and bad files refused with an error naming the file and the entry."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from llmroute import _options
from llmroute.catalog import Catalog, ModelSpec, default_catalog

SHIPPED = {"claude-opus-4.6", "gpt-5.4", "claude-sonnet-4.5", "gpt-4.1", "gemini-2.5-flash",
           "deepseek-v3.2"}


def write(tmp_path, data, name="catalog.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# Loading -----------------------------------------------------------------------------------------
def test_the_shipped_catalog_has_every_model_priced_with_a_window():
    catalog = Catalog.default()
    assert set(catalog.names()) == SHIPPED and len(catalog) == len(SHIPPED)
    for spec in catalog:
        assert spec.priced and isinstance(spec.input_usd_per_mtok, Decimal)
        assert spec.context_window and spec.context_window >= 100_000
        assert spec.source  # every figure says where it came from
    assert [s.name for s in catalog.models()] == list(catalog.names())


def test_default_catalog_is_read_once_and_shared():
    assert default_catalog() is default_catalog()


def test_lookup_is_by_name_or_alias_case_insensitively():
    catalog = Catalog.default()
    assert catalog.get("gpt-5.4-turbo") is catalog.get("GPT-5.4") is catalog.spec("Gpt-5.4")
    assert "GPT-5.4-TURBO" in catalog and "nope" not in catalog and 5 not in catalog
    assert catalog.get("") is None and catalog.get(None) is None


def test_a_bare_list_and_an_object_with_models_both_load(tmp_path):
    entry = {"name": "local", "input_usd_per_mtok": 0, "output_usd_per_mtok": 0}
    assert Catalog.from_file(write(tmp_path, [entry], "a.json")).names() == ("local",)
    assert Catalog.from_file(write(tmp_path, {"models": [entry], "source_note": "mine"},
                                   "b.json")).names() == ("local",)


def test_a_file_extends_and_overrides_its_base(tmp_path):
    path = write(tmp_path, {"models": [
        {"name": "gpt-5.4", "input_usd_per_mtok": "1.5", "output_usd_per_mtok": 3,
         "aliases": ["five"]},
        {"name": "local", "context_window": 8192}]})
    catalog = Catalog.from_file(path, base=Catalog.default())
    assert set(catalog.names()) == SHIPPED | {"local"}
    gpt = catalog.spec("gpt-5.4")
    assert gpt.input_usd_per_mtok == Decimal("1.5") and gpt.context_window is None  # replaced
    assert catalog.get("five") is gpt
    assert catalog.get("gpt-5.4-turbo") is None  # the replaced entry's aliases go with it
    assert Catalog.default().get("gpt-5.4").input_usd_per_mtok == Decimal(15)  # base untouched


def test_llmroute_catalog_extends_the_default(tmp_path, monkeypatch):
    path = write(tmp_path, [{"name": "gpt-4.1", "input_usd_per_mtok": 1, "output_usd_per_mtok": 2},
                            {"name": "local"}])
    monkeypatch.setenv("LLMROUTE_CATALOG", str(path))
    catalog = Catalog.default()
    assert set(catalog.names()) == SHIPPED | {"local"}
    assert catalog.spec("gpt-4.1").cost(1_000_000, 1_000_000) == Decimal(3)


def test_an_empty_llmroute_catalog_means_the_default(monkeypatch):
    monkeypatch.setenv("LLMROUTE_CATALOG", "")
    assert set(Catalog.default().names()) == SHIPPED


def test_a_bad_llmroute_catalog_is_an_error_naming_the_variable_and_file(tmp_path, monkeypatch):
    missing = tmp_path / "missing.json"
    monkeypatch.setenv("LLMROUTE_CATALOG", str(missing))
    with pytest.raises(ValueError, match=r"^LLMROUTE_CATALOG: cannot read catalog file .*missing"):
        Catalog.default()


# Unknown models ----------------------------------------------------------------------------------
def test_an_unknown_model_costs_none_with_one_warning_per_model(caplog):
    catalog = Catalog.default()
    with caplog.at_level(logging.WARNING, logger="llmroute.catalog"):
        assert catalog.cost("mystery-model", 100, 100) is None
        assert catalog.cost("mystery-model", 5, 5) is None
        spec = catalog.spec("mystery-model")
        assert catalog.cost("other-mystery", 1, 1) is None
    assert spec.name == "mystery-model" and not spec.priced
    assert spec.worst_case_cost(10, 10) is None and spec.list_cost(10, 10) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "mystery-model" in warnings[0] and "other-mystery" in warnings[1]
    assert catalog.get("mystery-model") is None  # not added by the lookup


# Money -------------------------------------------------------------------------------------------
def test_prices_from_a_file_are_exact_decimals(tmp_path):
    path = write(tmp_path, '[{"name": "m", "input_usd_per_mtok": 0.1, '
                           '"output_usd_per_mtok": 0.2, "cached_input_usd_per_mtok": 0.01}]')
    spec = Catalog.from_file(path).spec("m")
    assert spec.input_usd_per_mtok == Decimal("0.1") and spec.output_usd_per_mtok == Decimal("0.2")
    assert spec.cost(1, 1) == Decimal("0.0000003")  # 0.1 + 0.2 is 0.3 here, not 0.30000000000000004
    assert spec.cost(1_000_000, 1_000_000) == Decimal("0.3")
    total = sum((spec.cost(1, 1) for _ in range(10_000)), Decimal(0))
    assert total == Decimal("0.003")  # ten thousand small costs add up without drift


def test_cached_tokens_are_billed_at_the_cached_price_when_known():
    spec = ModelSpec("m", input_usd_per_mtok=Decimal(10), output_usd_per_mtok=Decimal(20),
                     cached_input_usd_per_mtok=Decimal(1))
    assert spec.cost(1_000_000, 0, cached_tokens=400_000) == Decimal(6) + Decimal("0.4")
    uncached = ModelSpec("m", input_usd_per_mtok=Decimal(10), output_usd_per_mtok=Decimal(20))
    assert uncached.cost(1_000_000, 0, cached_tokens=400_000) == Decimal(10)
    assert spec.cost(100, 0, cached_tokens=10_000) == Decimal(100) / 1_000_000  # capped at prompt


def test_worst_case_is_every_token_uncached_and_every_output_token_used():
    spec = ModelSpec("m", input_usd_per_mtok=Decimal(2), output_usd_per_mtok=Decimal(8),
                     cached_input_usd_per_mtok=Decimal(0))
    assert spec.worst_case_cost(500_000, 250_000) == Decimal(1) + Decimal(2)


def test_a_float_price_in_code_is_taken_at_its_shortest_repr():
    spec = ModelSpec.from_dict({"name": "m", "input_usd_per_mtok": 0.1,
                                "output_usd_per_mtok": 1e-05})
    assert spec.input_usd_per_mtok == Decimal("0.1")
    assert spec.output_usd_per_mtok == Decimal("0.00001")


def test_reserved_output_tokens_come_from_the_call_then_the_catalog_then_the_default():
    catalog = Catalog([ModelSpec("capped", max_output_tokens=8000), ModelSpec("open")])
    reserve = _options.reserved_output_tokens
    assert reserve(catalog, "capped", {}) == 8000
    assert reserve(catalog, "capped", {"max_tokens": 100}) == 100
    assert reserve(catalog, "capped", {"max_tokens": 100, "max_completion_tokens": 50}) == 50
    assert reserve(catalog, "open", {}) == _options.DEFAULT_MAX_OUTPUT_TOKENS
    assert reserve(catalog, "unknown", {"max_tokens": None}) == _options.DEFAULT_MAX_OUTPUT_TOKENS
    for junk in (0, -5, True, "100", 1.5):  # not a usable limit: fall through to the catalog
        assert reserve(catalog, "capped", {"max_tokens": junk}) == 8000


# Bad files ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    ("{nope", r"catalog .*catalog\.json is not valid JSON"),
    ("", r"is not valid JSON"),
    ('{"modles": [{"name": "x"}]}', r'must hold a list of models.*"models" list'),
    ('{"models": {"name": "x"}}', r"must hold a list of models"),
    ("42", r"must hold a list of models"),
    ('["x"]', r"entry 0 must be an object, got 'x'"),
    ('[{"name": "ok"}, {"name": "x", "contxt_window": 5}]',
     r"entry 1: unknown catalog field\(s\) contxt_window for model 'x'"),
    ('[{"context_window": 5}]', r"entry 0: catalog entry without a name"),
    ('[{"name": "x", "context_window": true}]', r"entry 0: context_window of model 'x'"),
    ('[{"name": "x", "context_window": 0}]', r"entry 0: context_window of model 'x'"),
    ('[{"name": "x", "input_usd_per_mtok": -1}]', r"entry 0: input_usd_per_mtok of model 'x'"),
    ('[{"name": "x", "input_usd_per_mtok": NaN}]', r"input_usd_per_mtok of model 'x'"),
    ('[{"name": "x", "output_usd_per_mtok": "abc"}]', r"output_usd_per_mtok of model 'x'"),
    ('[{"name": "x", "aliases": "y"}]', r"aliases of model 'x' must be a list of strings"),
    ('[{"name": "x", "benchmarks": [1]}]', r"benchmarks of model 'x'"),
    ('[{"name": "x", "tokens_per_second": 0}]', r"tokens_per_second of model 'x'"),
])
def test_a_bad_file_is_a_value_error_naming_the_file_and_entry(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(ValueError, match=message) as info:
        Catalog.from_file(path)
    assert str(path) in str(info.value)


def test_a_missing_file_or_a_directory_is_a_value_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read catalog file .*missing\.json"):
        Catalog.from_file(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="cannot read catalog file"):
        Catalog.from_file(tmp_path)


def test_a_file_that_is_not_utf8_is_a_value_error(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'[{"name": "caf\xe9"}]')
    with pytest.raises(ValueError, match="not valid JSON"):
        Catalog.from_file(path)


def test_bad_arguments_are_value_errors_naming_them(tmp_path):
    with pytest.raises(ValueError, match="path"):
        Catalog.from_file(3)
    with pytest.raises(ValueError, match="base"):
        Catalog.from_file(write(tmp_path, []), base={"gpt-5.4": {}})
    with pytest.raises(ValueError, match="models"):
        Catalog({"name": "x"})
    with pytest.raises(ValueError, match="ModelSpec"):
        Catalog([{"name": "x"}])
    with pytest.raises(ValueError, match="name"):
        ModelSpec("")
