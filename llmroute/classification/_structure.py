"""Structural cues for the task classifier: what keywords miss (code fences, stack traces,
equations, calls, code syntax), from the regexes of ``keywords/structural.json`` and a few
counts that a regex cannot express. Every scan is linear in the length of the text.
"""
from __future__ import annotations

import re
from typing import Callable, List, Tuple

from ._tables import WORD_CHARS, Tables, search

__all__ = ["structural_cues"]

_A = re.ASCII


def _has(*parts: str) -> Callable[[str], bool]:
    return lambda text: any(p in text for p in parts)


# -- structural detection -------------------------------------------------------------------

#: Code syntax is counted over lines: statement ends, operators, keyword-led lines.
_SYNTAX_END = re.compile(r"[;{}][ \t]*(?:\n|$)")
_SYNTAX_OPS = re.compile(r"[=!<>]=|&&|\|\||->|=>|::|\+\+")
_HAS_OPS = _has("==", "!=", "<=", ">=", "&&", "||", "->", "=>", "::", "++")
_SYNTAX_KW = re.compile(r"\n[ \t]*(?:if|for|while|return|elif|else|try|except|catch|switch|const|"
                        r"let|var|func|fn|public|private|print|echo)\b[^\n]*[:;{(=]", _A)
#: A call on one line, ``x_or_y(7, 3)``, ``os.path.join(a)``, ``print(x)``: a name of at most
#: 40 characters with ``_`` or ``.`` in it, or of 3+ lower-case letters, then ``(...)``. Every
#: run is bounded and the look-ahead pins the name's end, so a scan is linear in the text.
_CALL = re.compile(r"(?<![A-Za-z0-9_])(?=[A-Za-z_][\w.]{0,39}\()"
                   r"(?:[a-z_][a-z0-9_]{2,39}|[A-Za-z_][\w.]{0,38}(?:_|\.\w)[\w.]{0,37})"
                   r"\([^)\n]{0,80}\)", _A)
#: Code syntax needs this many statement ends, operators or keyword-led lines to count fully.
_SYNTAX_ENOUGH = 8


def structural_cues(tables: Tables, text: str,
                    has_digit: bool = True) -> List[Tuple[str, str, float, int]]:
    """(label, cue, weight, position of first match) of the structural cues in ``text``: the
    table's regexes (each behind its gate; those about numbers only when ``has_digit``) and
    the counts that a regex cannot express."""
    found = []
    gated = "\n" + text  # so a gate "\ndef " also sees a prompt that starts with "def "
    # Gates are looked for in the text's ASCII characters alone when it has others: a
    # substring search over a short ASCII string is several times faster than over CJK text,
    # and dropping characters can only add false hits (which the regex then rejects).
    ascii_view = gated if gated.isascii() else gated.encode("ascii", "ignore").decode("ascii")

    def has(gate: str) -> bool:
        return gate in ascii_view if gate.isascii() else gate in gated

    for sc in tables.structural:
        if (has_digit or not sc.digits) and (not sc.gate or any(has(g) for g in sc.gate)):
            m = search(sc.pattern, text, word_start=sc.word_start)
            if m is not None:
                found.append((sc.cue.label, sc.cue.name, sc.cue.weight, m.start()))
    lines = 0
    if ";" in ascii_view or "{" in ascii_view or "}" in ascii_view:
        lines += _count(_SYNTAX_END, text, _SYNTAX_ENOUGH)
    if lines < _SYNTAX_ENOUGH and _HAS_OPS(ascii_view):
        lines += _count(_SYNTAX_OPS, text, _SYNTAX_ENOUGH - lines)
    if lines < _SYNTAX_ENOUGH and "\n" in text:
        lines += _count(_SYNTAX_KW, gated, _SYNTAX_ENOUGH - lines)
    if lines >= 2:
        found.append(("code", "code:syntax", 1.0 if lines < 4 else 2.0 if lines < 8 else 3.0, 0))
    pos = _math_function(text, ascii_view)
    if pos >= 0:
        found.append(("math", "math:function", 2.0, pos))
    calls = _calls(text)
    if calls:
        found.append(("code", "code:call", 1.0 if len(calls) < 3 else 2.0, calls[0]))
    return found


#: After a function name: what makes ``sin(x)``, ``log_2 8``, ``sin x``, ``lim_{x->0}`` math.
_FUNC_TAIL = {name: re.compile(tail, _A) for names, tail in (
    (("sin", "cos", "tan"), r"\s*(?:\(|\^|[0-9]|[a-zθ]\b)"),
    (("log", "ln", "exp", "sqrt"), r"\s*(?:\(|_|\^|[0-9])"),
    (("lim",), r"\s*_")) for name in names}


def _math_function(text: str, ascii_view: str) -> int:
    """Position of a function of analysis (``sin x``, ``log_2``, ``lim_``), else -1; a find()
    per name is much faster than a regex scan for names that hide in words ("business")."""
    for name, tail in _FUNC_TAIL.items():
        if name not in ascii_view:
            continue
        i = text.find(name)
        while i >= 0:
            if (not i or text[i - 1] not in WORD_CHARS) and tail.match(text, i + len(name)):
                return i
            i = text.find(name, i + 1)
    return -1


def _count(pattern: "re.Pattern[str]", text: str, limit: int) -> int:
    """How many times ``pattern`` occurs in ``text``, counting no further than ``limit``."""
    n = 0
    for _ in pattern.finditer(text):
        n += 1
        if n >= limit:
            break
    return n


def _calls(text: str, limit: int = 3) -> List[int]:
    """Positions of up to ``limit`` calls like ``x_or_y(7, 3)`` (see ``_CALL``)."""
    if "(" not in text:
        return []
    found: List[int] = []
    for m in _CALL.finditer(text):
        found.append(m.start())
        if len(found) >= limit:
            break
    return found
