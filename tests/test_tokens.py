"""Token estimates and window fitting: the heuristic's counts, what is kept, what goes together,
and that trimming stays linear in the number of messages."""
from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Mapping

import pytest

from llmroute.tokens import (MESSAGE_OVERHEAD_TOKENS, REQUEST_OVERHEAD_TOKENS, estimate_tokens,
                             fit_messages)

FRAME = MESSAGE_OVERHEAD_TOKENS


def user(text):
    return {"role": "user", "content": text}


def system(text):
    return {"role": "system", "content": text}


def assistant(text=None, calls=0):
    message = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [{"id": "call_%d" % i, "type": "function",
                                  "function": {"name": "lookup", "arguments": '{"q": 1}'}}
                                 for i in range(calls)]
    return message


def tool(text, call=0):
    return {"role": "tool", "tool_call_id": "call_%d" % call, "content": text}


# estimate_tokens ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, tokens", [
    ("", 0),
    ("hello", 2),                   # 5 letters: ceil(5 / 4)
    ("a b c d", 4),                 # never fewer than one token per word
    ("internationalization", 5),    # 20 letters / 4
    ("你好世界", 4),                 # Han: one token per character
    ("カタカナ", 4),                 # Katakana
    ("ひらがな", 4),                 # Hiragana
    ("안녕하세요", 5),               # Hangul syllables
    ("ｶﾀｶﾅ", 4),                    # half-width Katakana
    ("hello 世界", 4),              # mixed: 2 Han + "hello" (2)
    ("价格是 42 dollars", 3 + 1 + 2),  # Han, a number word, a Latin word
])
def test_text_estimates_follow_the_heuristic(text, tokens):
    assert estimate_tokens(text) == tokens


def test_cjk_counts_one_token_per_character_however_long():
    assert estimate_tokens("字" * 1000) == 1000
    assert estimate_tokens("字" * 500 + " " + "word " * 100) == 500 + 100


def test_none_is_zero_and_a_message_list_adds_framing():
    assert estimate_tokens(None) == 0
    assert estimate_tokens([]) == REQUEST_OVERHEAD_TOKENS
    assert estimate_tokens([user("hello")]) == REQUEST_OVERHEAD_TOKENS + FRAME + 2
    assert estimate_tokens((user("hello"), user("hello"))) == REQUEST_OVERHEAD_TOKENS + 2 * (
        FRAME + 2)


def test_content_parts_count_their_text_only():
    parts = [{"type": "text", "text": "hello"},
             {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}}]
    assert estimate_tokens([{"role": "user", "content": parts}]) == estimate_tokens(
        [user("hello")])
    assert estimate_tokens([{"role": "user", "content": [{"type": "text", "text": "你好"}]}]) \
        == REQUEST_OVERHEAD_TOKENS + FRAME + 2


def test_tool_calls_count_their_name_and_arguments():
    call = {"id": "1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    # "get_weather": 11 letters -> 3; '{"city": "Paris"}': 16 non-space characters -> 4.
    assert estimate_tokens([message]) == REQUEST_OVERHEAD_TOKENS + FRAME + 3 + 4
    two = dict(message, tool_calls=[call, call])
    assert estimate_tokens([two]) == REQUEST_OVERHEAD_TOKENS + FRAME + 2 * (3 + 4)


def test_malformed_tool_calls_are_not_counted_and_do_not_raise():
    for calls in ("get_weather", [None], [{"function": "get_weather"}], [{"id": "1"}]):
        message = {"role": "assistant", "content": "hi", "tool_calls": calls}
        assert estimate_tokens([message]) == REQUEST_OVERHEAD_TOKENS + FRAME + 1


@pytest.mark.parametrize("value, named", [
    (b"hello", "text_or_messages"),
    (["hello"], "text_or_messages[0]"),
    ([user("a"), 3], "text_or_messages[1]"),
    (42, "text_or_messages"),
])
def test_anything_but_text_or_message_dicts_is_a_value_error_naming_it(value, named):
    with pytest.raises(ValueError, match=r"^%s " % named.replace("[", r"\[")) as info:
        estimate_tokens(value)
    assert isinstance(info.value, TypeError)  # callers written before the check caught that


def test_the_cjk_pattern_is_compiled_on_first_use_not_at_import():
    code = r"""
import re
compiled, real = [], re.compile
re.compile = lambda pattern, *a, **k: (compiled.append(pattern), real(pattern, *a, **k))[1]
import llmroute, llmroute.tokens as t
assert not [p for p in compiled if "4e00-" in str(p)], "compiled at import"
assert t.estimate_tokens("\u6f22\u5b57") == 2
assert [p for p in compiled if "4e00-" in str(p)], "never compiled"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr


# fit_messages ------------------------------------------------------------------------------------
def budget_of(window, max_tokens, margin=0.10):
    return int(window * (1 - margin)) - max_tokens


def test_messages_that_fit_come_back_whole_as_a_new_list():
    messages = [system("be brief"), user("hi"), assistant("hello"), user("bye")]
    fitted = fit_messages(messages, context_window=1000, max_tokens=100)
    assert fitted == messages and fitted is not messages


def test_oldest_turns_go_first_and_system_and_last_stay():
    messages = [system("rules " * 5), user("old " * 40), assistant("older reply " * 20),
                system("a second system note"), user("recent question"),
                assistant("recent answer"), user("last question")]
    window = 150
    fitted = fit_messages(messages, context_window=window, max_tokens=50)
    assert fitted == [messages[0], messages[3], messages[4], messages[5], messages[6]]
    assert estimate_tokens(fitted) <= budget_of(window, 50)
    # One more kept turn would not have fitted: nothing was dropped needlessly.
    assert estimate_tokens([messages[2]] + fitted) > budget_of(window, 50)


def test_the_input_list_is_not_changed():
    messages = [user("x " * 100), user("y")]
    before = list(messages)
    fit_messages(messages, context_window=40, max_tokens=0)
    assert messages == before


def test_a_tuple_of_messages_is_accepted():
    assert fit_messages((user("a"), user("b")), context_window=100, max_tokens=0) == [
        user("a"), user("b")]


def test_an_assistant_turn_goes_with_its_tool_results():
    messages = [system("s"), user("question"), assistant(calls=2), tool("result " * 30, 0),
                tool("result " * 30, 1), assistant("answer from the results"),
                user("follow-up question")]
    # The tool results cannot stay without the turn that called them: the turn goes whole,
    # and the newer answer built from it stays.
    fitted = fit_messages(messages, context_window=120, max_tokens=20)
    assert fitted == [messages[0], messages[5], messages[6]]


def test_the_last_message_keeps_the_turn_it_answers():
    messages = [system("s"), user("old " * 50), user("question"), assistant(calls=2),
                tool("first", 0), tool("second", 1)]
    # 92 tokens in all: the old user turn (54) goes first, then the question (6); the
    # tool-call turn (12) and its other result stay with the last message, whatever it costs.
    assert estimate_tokens(messages) == 92
    assert fit_messages(messages, context_window=100, max_tokens=20) == [
        messages[0], messages[2], messages[3], messages[4], messages[5]]
    assert fit_messages(messages, context_window=60, max_tokens=20) == [
        messages[0], messages[3], messages[4], messages[5]]


def test_when_the_last_tool_result_and_its_turn_do_not_fit_it_is_an_error():
    messages = [system("s"), user("q"), assistant(calls=1), tool("result " * 200, 0)]
    with pytest.raises(ValueError, match="do not fit"):
        fit_messages(messages, context_window=200, max_tokens=20)


def test_a_tool_message_without_any_assistant_turn_before_it_is_an_ordinary_turn():
    messages = [tool("stray " * 40), user("q")]
    assert fit_messages(messages, context_window=40, max_tokens=0) == [messages[1]]


def test_system_and_last_alone_not_fitting_is_a_value_error_with_the_figures():
    messages = [system("rules " * 100), user("x"), user("last " * 100)]
    with pytest.raises(ValueError) as info:
        fit_messages(messages, context_window=150, max_tokens=20)
    text = str(info.value)
    assert "do not fit" in text and "max_tokens=20" in text
    assert "%d" % budget_of(150, 20) in text


def test_max_tokens_above_the_window_is_an_error_even_for_one_message():
    with pytest.raises(ValueError, match="do not fit"):
        fit_messages([user("hi")], context_window=100, max_tokens=200)


def test_margin_shrinks_the_window():
    messages = [user("a " * 30), user("b")]
    assert fit_messages(messages, context_window=60, max_tokens=0, margin=0.0) == messages
    assert fit_messages(messages, context_window=60, max_tokens=0, margin=0.5) == [messages[1]]


def test_an_empty_list_fits_when_the_request_overhead_does():
    assert fit_messages([], context_window=100, max_tokens=10) == []


def _conversation(rng, turns):
    messages = [system("you are a careful assistant")]
    for _ in range(turns):
        kind = rng.random()
        if kind < 0.35:
            messages.append(user("question " * rng.randint(1, 30)))
        elif kind < 0.65:
            calls = rng.randint(1, 3)
            messages.append(assistant(calls=calls))
            for call in range(calls):
                messages.append(tool("result " * rng.randint(1, 30), call))
        elif kind < 0.9:
            messages.append(assistant("answer " * rng.randint(1, 30)))
        else:
            messages.append(system("note " * rng.randint(1, 5)))
    return messages


def _turn_owner(messages):
    """id of each tool message -> id of the assistant message it answers (nearest before)."""
    owner, current = {}, None
    for message in messages:
        if message["role"] == "assistant":
            current = message
        elif message["role"] == "tool" and current is not None:
            owner[id(message)] = id(current)
    return owner


def _must_stay(messages):
    """The system messages and the last message with the tool-call turn it answers."""
    last, owner = messages[-1], _turn_owner(messages)
    turn = {owner[id(last)]} if id(last) in owner else set()
    turn |= {tool_id for tool_id, assistant_id in owner.items() if assistant_id in turn}
    return [m for m in messages if m["role"] == "system" or m is last or id(m) in turn]


@pytest.mark.parametrize("seed", range(40))
def test_random_conversations_never_leave_a_tool_result_without_its_call(seed):
    rng = random.Random(seed)
    messages = _conversation(rng, rng.randint(1, 40))
    floor = int((estimate_tokens(_must_stay(messages)) + 50) / 0.9) + 1
    window = floor + rng.randint(0, 3000)
    fitted = fit_messages(messages, context_window=window, max_tokens=50)
    kept = {id(m) for m in fitted}
    owner = _turn_owner(messages)
    assert estimate_tokens(fitted) <= budget_of(window, 50)
    assert [m for m in messages if id(m) in kept] == fitted  # order kept, nothing added
    assert {id(m) for m in _must_stay(messages)} <= kept
    assert fitted[-1] is messages[-1]
    assert _turn_owner(fitted) == {t: a for t, a in owner.items() if t in kept}
    for tool_id, assistant_id in owner.items():
        assert (tool_id in kept) == (assistant_id in kept)  # a turn stays or goes whole
    with pytest.raises(ValueError, match="do not fit"):
        fit_messages(messages, context_window=floor - 2, max_tokens=50)  # 1 token short


class CountingMessage(Mapping):
    """A message dict that counts every read, to measure how much work trimming does."""

    def __init__(self, data, reads):
        self._data, self._reads = data, reads

    def __getitem__(self, key):
        self._reads[0] += 1
        return self._data[key]

    def __iter__(self):
        self._reads[0] += 1
        return iter(self._data)

    def __len__(self):
        return len(self._data)


def _reads_to_fit(turns):
    """Message reads to fit a conversation of ``turns`` rounds: one early turn that fanned out
    into ``turns`` tool results, then ``turns`` rounds of a question, a tool call, its result
    and an answer (10,003 messages for 2,000 rounds). The window is just small enough that
    the early question and the fan-out turn must go, so its results must go with it."""
    reads = [0]

    def counted(*messages):
        return [CountingMessage(m, reads) for m in messages]

    head = counted(system("rules"), user("first question"), assistant(calls=turns))
    fan_out = counted(*(tool("r", i) for i in range(turns)))
    rounds = []
    for i in range(turns):
        rounds += counted(user("question %d" % i), assistant(calls=1), tool("result %d" % i),
                          assistant("answer %d" % i))
    messages = head + fan_out + rounds
    rest = estimate_tokens(messages) - estimate_tokens(head[1:]) + REQUEST_OVERHEAD_TOKENS
    window = int((rest + 10) / 0.9) + 2
    reads[0] = 0
    fitted = fit_messages(messages, context_window=window, max_tokens=10)
    assert fitted == head[:1] + rounds
    return reads[0], len(messages)


def test_fitting_10000_messages_reads_each_message_a_bounded_number_of_times():
    reads, count = _reads_to_fit(2000)
    assert count == 10003
    # role, content, tool_calls: a few reads per message, never a scan per message.
    assert reads <= 8 * count


def test_trimming_work_grows_linearly_with_the_conversation():
    small, _ = _reads_to_fit(200)
    large, _ = _reads_to_fit(2000)
    assert 9 <= large / small <= 11  # ten times the messages, ten times the reads
