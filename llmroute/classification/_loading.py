"""Reading the classifier's cue tables: the shipped JSON data, a user's file, keywords and
custom tasks; validated when a Classifier is built, compiled when it first classifies.

A language table (``keywords/<lang>.json``)::

    {"lang": "en", "script": "latin",
     "negate_before": ["don't", ...], "negate_after": [...], "interrogatives": ["who", ...],
     "explanation_words": ["how", "why", ...],
     "cues":     {"code": {"python": 2.0, "how many": {"w": 1.5, "needs": "numbers"}}, ...},
     "patterns": {"math": {"how-many": {"re": "\\bhow (?:many|much)", "w": 2.0}}, ...},
     "combos":   {"code": {"write+function": {"all": ["write", "function"], "w": 2.0}}}}

``cues`` are literals (lower case; Latin ones match whole words with an optional plural
``s``/``es``, CJK ones match as substrings), ``patterns`` are regular expressions (ASCII
``\\b``/``\\w``) for what a literal cannot say, ``combos`` fire when all their terms occur close
together. ``structural.json`` holds the cues that keywords miss (code fences, stack traces,
equations). A custom task is ``{label: {lang: {phrase: weight}}}`` (or, per language, an object
with ``"cues"``/``"patterns"``/``"combos"`` for that label).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ._tables import Combo, Cue, StructuralCue, Table, Tables, literal_regex, word_regex
from .labels import TEXT_LABELS, check_custom_label

__all__ = ["UserTables", "read_user_tables", "build_tables", "load_tables", "LANGUAGE_SCRIPTS"]

_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keywords")
_LANGUAGE_FILES = ("en.json", "ko.json", "zh.json", "ja.json")
_STRUCTURAL_FILE = "structural.json"
_SCRIPTS = ("latin", "cjk")
#: The shipped languages and their scripts (a custom task's tables name one of these).
LANGUAGE_SCRIPTS = {"en": "latin", "ko": "cjk", "zh": "cjk", "ja": "cjk"}
#: How close (in characters) the terms of a combo must be, unless the combo says otherwise.
DEFAULT_COMBO_NEAR = 40
_CJK_RE = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]")
_FLAGS = {"ascii": re.ASCII, "ignorecase": re.IGNORECASE, "multiline": re.MULTILINE}
_TABLE_KEYS = ("cues", "patterns", "combos")


# -- reading and validating -------------------------------------------------------------------

def _read_json(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as err:
        raise ValueError("cannot read keywords file %r: %s" % (path, err)) from err
    except json.JSONDecodeError as err:
        raise ValueError("keywords file %r is not valid JSON: %s" % (path, err)) from err
    if not isinstance(data, dict):
        raise ValueError("keywords file %r must hold a JSON object" % (path,))
    return data


def _check_label(label: Any, where: str, labels: Sequence[str]) -> str:
    if label not in labels:
        raise ValueError("%s: unknown label %r (expected one of %s)"
                         % (where, label, ", ".join(labels)))
    return label


def _entry(value: Any, where: str) -> Tuple[float, Optional[str], Mapping[str, Any]]:
    """(weight, needs, raw object) of an entry given as a number or ``{"w": ..., ...}``."""
    raw = value if isinstance(value, dict) else {}
    w = raw.get("w", 1.0) if isinstance(value, dict) else value
    if isinstance(w, bool) or not isinstance(w, (int, float)) or w != w:
        raise ValueError("%s: weight must be a number, got %r" % (where, w))
    needs = raw.get("needs")
    if needs not in (None, "numbers"):
        raise ValueError("%s: 'needs' must be \"numbers\", got %r" % (where, needs))
    return float(w), needs, raw


def _phrase(phrase: Any, where: str) -> str:
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError("%s: a cue must be a non-empty string" % where)
    return " ".join(phrase.lower().split())


def _compile_pattern(source: Any, where: str, flags: int = re.ASCII) -> "re.Pattern[str]":
    if not isinstance(source, str) or not source:
        raise ValueError("%s: 're' must be a non-empty string" % where)
    try:
        compiled = re.compile(source, flags)
    except re.error as err:
        raise ValueError("%s: bad regular expression: %s" % (where, err)) from err
    if compiled.groups:
        raise ValueError("%s: use (?:...) instead of capturing groups" % where)
    return compiled


def _section(data: Mapping[str, Any], key: str, where: str,
             labels: Sequence[str]) -> Iterable[Tuple[str, Mapping]]:
    section = data.get(key, {})
    if not isinstance(section, dict):
        raise ValueError("%s: %r must be an object of labels" % (where, key))
    for label, entries in section.items():
        _check_label(label, "%s: %s" % (where, key), labels)
        if not isinstance(entries, dict):
            raise ValueError("%s: %s[%r] must be an object" % (where, key, label))
        yield label, entries


class _Draft:
    """A language table while tables are read and merged; frozen by :meth:`compile`."""

    def __init__(self, lang: str, script: str) -> None:
        if script not in _SCRIPTS:
            raise ValueError("table %r: script must be one of %s" % (lang, _SCRIPTS))
        self.lang, self.script = lang, script
        self.literals: Dict[Tuple[str, str], Tuple[float, Optional[str]]] = {}
        self.patterns: Dict[Tuple[str, str], Tuple["re.Pattern[str]", float, Optional[str],
                                                   bool]] = {}
        self.combos: Dict[Tuple[str, str], Tuple[Tuple[str, ...], int, float]] = {}
        self.negate_before: List[str] = []
        self.negate_after: List[str] = []
        self.interrogatives: List[str] = []
        self.explanation_words: List[str] = []

    def add(self, data: Mapping[str, Any], where: str, labels: Sequence[str]) -> None:
        """Merge a table object; an entry already present takes the new weight (0 disables)."""
        for key in ("negate_before", "negate_after", "interrogatives", "explanation_words"):
            words = data.get(key, [])
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise ValueError("%s: %r must be a list of strings" % (where, key))
            getattr(self, key).extend(w.lower() for w in words)
        for label, entries in _section(data, "cues", where, labels):
            for phrase, value in entries.items():
                spot = "%s: cue %r" % (where, phrase)
                w, needs, _ = _entry(value, spot)
                self.literals[(label, _phrase(phrase, spot))] = (w, needs)
        for label, entries in _section(data, "patterns", where, labels):
            for name, value in entries.items():
                spot = "%s: pattern %r" % (where, name)
                if not isinstance(value, dict):
                    raise ValueError("%s: must be an object with 're' and 'w'" % spot)
                w, needs, _ = _entry(value, spot)
                source = value.get("re")
                # A leading \b is checked after the match (see Table.patterns).
                word_start = isinstance(source, str) and source.startswith("\\b")
                compiled = _compile_pattern(source[2:] if word_start else source, spot)
                self.patterns[(label, str(name))] = (compiled, w, needs, word_start)
        for label, entries in _section(data, "combos", where, labels):
            for name, value in entries.items():
                spot = "%s: combo %r" % (where, name)
                terms = value.get("all") if isinstance(value, dict) else None
                if (not isinstance(terms, list) or len(terms) < 2
                        or not all(isinstance(t, str) and t.strip() for t in terms)):
                    raise ValueError("%s: 'all' must list two or more terms" % spot)
                w, _, raw = _entry(value, spot)
                near = raw.get("near", DEFAULT_COMBO_NEAR)
                if isinstance(near, bool) or not isinstance(near, int) or near <= 0:
                    raise ValueError("%s: 'near' must be a positive integer" % spot)
                self.combos[(label, str(name))] = (tuple(_phrase(t, spot) for t in terms), near, w)

    def claim(self, label: str) -> None:
        """Give ``label`` its phrases alone: a phrase a custom task lists ("translate") stops
        counting for the built-in label that had it (general), since the user said what it
        means here."""
        mine = {phrase for (owner, phrase) in self.literals if owner == label}
        for key in [k for k in self.literals if k[1] in mine and k[0] in TEXT_LABELS]:
            del self.literals[key]

    def compile(self) -> Table:
        def cue(label: str, name: str, w: float, needs: Optional[str] = None) -> Cue:
            return Cue("%s:%s:%s" % (label, self.lang, name), label, w, needs)

        literals: Dict[str, List[Cue]] = {}
        for (label, phrase), (w, needs) in self.literals.items():
            literals.setdefault(phrase, [])
            if w:  # a weight-0 literal still matches, so it shadows its substrings
                literals[phrase].append(cue(label, phrase, w, needs))
        combos = []
        for (label, name), (terms, near, w) in self.combos.items():
            for term in terms:
                literals.setdefault(term, [])
            if w:
                combos.append(Combo(cue(label, name, w), terms, near))
        return Table(
            lang=self.lang, script=self.script,
            literal_re=literal_regex(sorted(literals), self.script),
            literals={k: tuple(v) for k, v in literals.items()},
            patterns=tuple((p, cue(label, name, w, needs), ws) for (label, name), (p, w, needs, ws)
                           in self.patterns.items() if w),
            combos=tuple(combos),
            negate_before=word_regex(self.negate_before, self.script),
            negate_after=word_regex(self.negate_after, self.script),
            interrogative=word_regex(self.interrogatives, self.script),
            explanation=word_regex(self.explanation_words, self.script))


def _structural(data: Mapping[str, Any], where: str, labels: Sequence[str]) -> List[StructuralCue]:
    entries = data.get("structural", [])
    if not isinstance(entries, list):
        raise ValueError("%s: 'structural' must be a list" % where)
    found = []
    for i, e in enumerate(entries):
        spot = "%s: structural[%d]" % (where, i)
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise ValueError("%s: must be an object with a 'name'" % spot)
        label = _check_label(e.get("label"), spot, labels)
        w, _, _ = _entry(e, spot)
        flags = 0
        for flag in e.get("flags", []):
            if flag not in _FLAGS:
                raise ValueError("%s: unknown flag %r" % (spot, flag))
            flags |= _FLAGS[flag]
        gate = e.get("gate", [])
        if not isinstance(gate, list) or not all(isinstance(g, str) and g for g in gate):
            raise ValueError("%s: 'gate' must be a list of non-empty strings" % spot)
        found.append(StructuralCue(Cue(e["name"], label, w), _compile_pattern(e.get("re"), spot,
                                                                              flags),
                                   tuple(gate), bool(e.get("word_start", False)),
                                   bool(e.get("digits", False))))
    return found


# -- public entry -----------------------------------------------------------------------------

@dataclass(frozen=True)
class UserTables:
    """What a user gave, read and validated (the shipped tables are merged in later).

    ``custom_labels`` are the custom tasks' labels, in the order given; ``tasks`` holds each
    one's tables per language in the language-table shape."""

    custom_labels: Tuple[str, ...] = ()
    tasks: Tuple[Tuple[str, str, Mapping[str, Any]], ...] = ()  # (label, lang, table data)
    keywords_file: Optional[Tuple[str, Mapping[str, Any]]] = None  # (where, data)
    extra_keywords: Optional[Mapping[str, Any]] = field(default=None, hash=False)

    @property
    def labels(self) -> Tuple[str, ...]:
        """Every label a text can get: the built-in ones, then the custom ones."""
        return TEXT_LABELS + self.custom_labels


def read_user_tables(extra_keywords: Optional[Mapping[str, Mapping[str, Any]]] = None,
                     keywords_file: Optional[str] = None,
                     tasks: Optional[Mapping[str, Any]] = None,
                     tasks_file: Optional[str] = None) -> UserTables:
    """Read and validate what a user gives a Classifier; the tables are compiled later.

    ``tasks`` / ``tasks_file`` (the same shape, as JSON) add custom labels:
    ``{"translation": {"en": {"translate": 3.0}, "ko": {"번역": 3.0}}}``; per language either
    ``{phrase: weight}`` or ``{"cues": {...}, "patterns": {...}, "combos": {...}}`` for that
    label. Raises ``ValueError`` naming the bad file, label, language, phrase, weight or
    pattern."""
    task_entries: List[Tuple[str, str, Mapping[str, Any]]] = []
    custom: List[str] = []
    sources = []
    if tasks is not None:
        sources.append((tasks, "tasks"))
    if tasks_file is not None:
        sources.append((_read_json(os.fspath(tasks_file)), "tasks file %r" % (tasks_file,)))
    for given, where in sources:
        for label, langs, entries in _task_tables(given, where):
            if label in custom:
                raise ValueError("%s: task %r is given twice" % (where, label))
            custom.append(label)
            task_entries.extend((label, lang, data) for lang, data in entries)
    file_data = None
    if keywords_file is not None:
        file_data = ("keywords file %r" % (keywords_file,), _read_json(os.fspath(keywords_file)))
    if extra_keywords is not None and not isinstance(extra_keywords, Mapping):
        raise ValueError("extra_keywords must map labels to {phrase: weight}")
    user = UserTables(tuple(custom), tuple(task_entries), file_data,
                      dict(extra_keywords) if extra_keywords else None)
    build_tables(user, use_default_tables=False)  # validates every entry, pattern and combo
    return user


def _task_tables(given: Any, where: str) -> Iterable[Tuple[str, Tuple[str, ...],
                                                       List[Tuple[str, Mapping[str, Any]]]]]:
    """(label, languages, [(lang, table data)]) of each custom task in ``given``."""
    if not isinstance(given, Mapping) or not given:
        raise ValueError("%s must map task labels to {language: {phrase: weight}}" % where)
    for label, langs in given.items():
        check_custom_label(label, where)
        spot = "%s[%r]" % (where, label)
        if not isinstance(langs, Mapping) or not langs:
            raise ValueError("%s must map languages (%s) to cue tables"
                             % (spot, ", ".join(LANGUAGE_SCRIPTS)))
        entries = []
        for lang, table in langs.items():
            if lang not in LANGUAGE_SCRIPTS:
                raise ValueError("%s: unknown language %r (expected one of %s)"
                                 % (spot, lang, ", ".join(LANGUAGE_SCRIPTS)))
            if not isinstance(table, Mapping) or not table:
                raise ValueError("%s[%r] must be a non-empty {phrase: weight} object"
                                 % (spot, lang))
            if any(k in table for k in _TABLE_KEYS):
                unknown = [k for k in table if k not in _TABLE_KEYS]
                if unknown:
                    raise ValueError("%s[%r]: unknown keys %s (expected %s)"
                                     % (spot, lang, unknown, ", ".join(_TABLE_KEYS)))
                data = {k: {label: table[k]} for k in _TABLE_KEYS if k in table}
            else:
                data = {"cues": {label: dict(table)}}
            entries.append((lang, data))
        yield label, tuple(langs), entries


def build_tables(user: UserTables, use_default_tables: bool = True) -> Tables:
    """The shipped tables (unless ``use_default_tables`` is false) with the user's merged in,
    compiled: custom tasks, then the keywords file, then ``extra_keywords``.

    A keywords file is either a full table (with ``"cues"``/``"patterns"``/``"combos"`` and a
    ``"lang"``: a shipped language is merged into, a new one needs ``"script"``; a
    ``"structural"`` list is added too) or a plain ``{label: {phrase: weight}}`` object, like
    ``extra_keywords``. A phrase already present for that label takes the new weight (``0``
    switches it off); a new one joins a user table of its script."""
    labels = user.labels
    drafts: Dict[str, _Draft] = {}
    structural: List[StructuralCue] = []
    if use_default_tables:
        for name in _LANGUAGE_FILES:
            data = _read_json(os.path.join(_DATA_DIR, name))
            lang = str(data.get("lang", name.split(".")[0]))
            drafts.setdefault(lang, _Draft(lang, str(data.get("script", "latin")))).add(
                data, "keywords table %s" % name, labels)
        structural = _structural(_read_json(os.path.join(_DATA_DIR, _STRUCTURAL_FILE)),
                                 "keywords table %s" % _STRUCTURAL_FILE, labels)
    for label, lang, data in user.tasks:
        draft = drafts.setdefault(lang, _Draft(lang, LANGUAGE_SCRIPTS[lang]))
        draft.add(data, "tasks[%r][%r]" % (label, lang), labels)
        draft.claim(label)
    if user.keywords_file is not None:
        where, data = user.keywords_file
        if any(k in data for k in _TABLE_KEYS + ("structural",)):
            lang = str(data.get("lang", "user"))
            script = str(data.get("script") or (drafts[lang].script if lang in drafts
                                                else LANGUAGE_SCRIPTS.get(lang, "")))
            if any(k in data for k in _TABLE_KEYS):
                if not script:
                    raise ValueError("%s: a new table needs \"script\": \"latin\" or \"cjk\""
                                     % where)
                drafts.setdefault(lang, _Draft(lang, script)).add(data, where, labels)
            structural.extend(_structural(data, where, labels))
        else:
            _merge_plain(drafts, data, where, labels)
    if user.extra_keywords:
        _merge_plain(drafts, user.extra_keywords, "extra_keywords", labels)
    return Tables({lang: d.compile() for lang, d in drafts.items()}, tuple(structural))


def load_tables(extra_keywords: Optional[Mapping[str, Mapping[str, Any]]] = None,
                keywords_file: Optional[str] = None,
                use_default_tables: bool = True) -> Tables:
    """Read, validate, merge and compile in one step (see :func:`build_tables`)."""
    return build_tables(read_user_tables(extra_keywords, keywords_file), use_default_tables)


def _merge_plain(drafts: Dict[str, _Draft], data: Mapping[str, Any], where: str,
                 labels: Sequence[str]) -> None:
    """Merge ``{label: {phrase: weight}}``: re-weight existing phrases, add new ones."""
    for label, entries in data.items():
        _check_label(label, where, labels)
        if not isinstance(entries, Mapping):
            raise ValueError("%s[%r] must map phrases to weights" % (where, label))
        for phrase, value in entries.items():
            spot = "%s[%r][%r]" % (where, label, phrase)
            phrase = _phrase(phrase, spot)
            w, needs, _ = _entry(value, spot)
            hits = [d for d in drafts.values() if (label, phrase) in d.literals]
            for draft in hits:
                draft.literals[(label, phrase)] = (w, needs)
            if not hits:
                script = "cjk" if _CJK_RE.search(phrase) else "latin"
                lang = "user" if script == "latin" else "user-cjk"
                drafts.setdefault(lang, _Draft(lang, script)).literals[(label, phrase)] = (
                    w, needs)
