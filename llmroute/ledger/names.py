"""How a recorded name (a model, task or tag) is shown in a table, a chart or an HTML page.

Names come from callers and gateways, so they may hold anything: an escape sequence that
repaints a terminal, a character XML forbids. ``shown_name`` is the one place that makes a name
safe to print and to escape into HTML/SVG, and cuts it to a width when a layout needs one.
"""
from __future__ import annotations

import unicodedata
from typing import Optional

__all__ = ["shown_name"]

#: Marks a name cut to fit (ASCII, so it prints on any terminal).
_CUT = "..."
# Categories never shown raw: controls (C0, DEL, C1: ESC starts terminal sequences; XML 1.0
# allows none but tab and newlines) and lone surrogates (no encoding takes them).
_UNSAFE_CATEGORIES = ("Cc", "Cs")
# Noncharacters XML 1.0 forbids outright.
_XML_FORBIDDEN = ("\ufffe", "\uffff")


def _safe(char: str) -> str:
    if unicodedata.category(char) in _UNSAFE_CATEGORIES or char in _XML_FORBIDDEN:
        code = ord(char)
        return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code
    return char


def shown_name(name: str, width: Optional[int] = None) -> str:
    """``name`` with each control character written as ``\\xNN`` (so ``\\x1b[2J`` shows as
    text), cut to ``width`` characters with a trailing ``...`` when it is longer."""
    text = "".join(_safe(c) for c in str(name))
    if width is not None and len(text) > width:
        return text[:max(width - len(_CUT), 0)] + _CUT[:width]
    return text
