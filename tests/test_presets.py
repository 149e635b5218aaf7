"""Task presets: the comparison's figures, read-only copies, no model column."""
from __future__ import annotations

import pytest

from llmroute import presets

EXPECTED = {  # preset: (max_tokens, temperature, top_p), from COMPARISON.md
    "document_analysis": (4096, 0.3, 0.95),
    "json_reliable": (2048, 0.1, 0.99),
    "reasoning": (8192, 0.4, 0.95),
    "function_calling": (1024, 0.1, 0.95),
    "code_gen": (4096, 0.2, 0.95),
    "chat": (2048, 0.7, 0.95),
}


def test_names_list_the_six_presets_in_table_order():
    assert presets.names() == tuple(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_carries_the_table_sampling_and_no_model(name):
    params = presets.get(name)
    assert (params["max_tokens"], params["temperature"], params["top_p"]) == EXPECTED[name]
    assert "model" not in params


def test_presets_carry_their_extras():
    assert presets.get("reasoning")["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert presets.get("json_reliable")["response_format"] == {"type": "json_object"}
    assert presets.get("function_calling")["tool_choice"] == "auto"
    assert "tools" not in presets.get("function_calling")  # the caller brings the tools
    code = presets.get("code_gen")
    assert (code["presence_penalty"], code["frequency_penalty"]) == (0.1, 0.2)
    chat = presets.get("chat")
    assert (chat["presence_penalty"], chat["frequency_penalty"]) == (0.0, 0.0)
    assert presets.get("document_analysis")["stop"] == ["\n\n---", "END OF DOCUMENT"]


def test_get_returns_a_read_only_copy_that_cannot_change_the_preset():
    params = presets.get("reasoning")
    with pytest.raises(TypeError):
        params["temperature"] = 1.0
    params["thinking"]["budget_tokens"] = 1  # a nested value belongs to this copy only
    assert presets.get("reasoning")["thinking"]["budget_tokens"] == 4096
    mutable = dict(presets.get("chat"))
    mutable["temperature"] = 0.0
    assert presets.get("chat")["temperature"] == 0.7


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown preset 'chatty'.*code_gen"):
        presets.get("chatty")


def test_presets_mapping_is_read_only_and_cannot_reach_get():
    with pytest.raises(TypeError):
        presets.PRESETS["chat"]["temperature"] = 1.5
    with pytest.raises(TypeError):
        presets.PRESETS["new"] = {}
    assert tuple(presets.PRESETS) == presets.names()
    # A nested value of PRESETS is its own copy: changing it leaves get() (and routes) alone.
    presets.PRESETS["document_analysis"]["stop"].append("MINE")
    try:
        assert presets.get("document_analysis")["stop"] == ["\n\n---", "END OF DOCUMENT"]
    finally:
        presets.PRESETS["document_analysis"]["stop"].remove("MINE")


@pytest.mark.parametrize("name", [None, 3, ["chat"], ""])
def test_a_name_that_is_not_a_preset_is_a_value_error(name):
    with pytest.raises(ValueError, match="unknown preset"):
        presets.get(name)
