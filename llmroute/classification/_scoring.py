"""The classifier's scoring steps: gather cues (keywords per language, structure, the prompt's
shape), combine them into one score per label, and turn the lead into a confidence.

Each step is a small pure function over a :class:`Prompt`; the cues it finds go into one
:class:`Evidence` per classification, which keeps the strongest value of each cue.
"""
from __future__ import annotations

import math
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ._prompt import MIN_PASSAGE_CHARS, WORD_PROBLEM_NUMBERS, Prompt
from ._structure import structural_cues
from ._tables import WORD_CHARS, Table, Tables, search

__all__ = ["Evidence", "match_table", "note_structure", "note_prompt_shape", "combine",
           "rank", "confidence"]

#: Weight of a keyword found in a long pasted passage, relative to the instruction ...
_PASSAGE_FACTOR = 0.3
#: ... and in a short one (a few words after "Build a plot around this:" still steer).
_SHORT_PASSAGE_FACTOR = 0.6
_SHORT_PASSAGE_CHARS = 200
#: Evidence from the passage and from structure (code, formulas) adds up to at most this much
#: per label, so an explicit instruction ("summarize this log") outweighs what is pasted.
_CONTENT_CAP = 4.0
#: Extraction needs something to extract from: without a passage its cues count this much.
_NO_PASSAGE_EXTRACTION = 0.5
#: The score "general" starts with: weaker evidence than this is no evidence.
_GENERAL_BASE = 1.2
_GENERAL_BASE_WITH_PASSAGE = 0.5
#: A negated cue ("don't summarize") counts this fraction of its weight against its label.
_NEGATED_FACTOR = -0.6
#: Each further cue of a label counts this much less than the one before (diminishing returns).
_DECAY = 0.8
#: A quantity question ("how many", "多少") over at least WORD_PROBLEM_NUMBERS numbers is a
#: word problem.
_WORD_PROBLEM_WEIGHT = 1.5
#: A prompt that opens with code is about that code whatever its docstring says.
_OPENS_WITH_CODE = 2.0
#: A question asked about a pasted passage leans to extraction (reading comprehension), more
#: so when it asks who/when/where/which (then with or without a question mark, as Korean and
#: Japanese requests often end in "알려 줘" / "教えて" instead) ...
_QUESTION_PASSAGE_CHARS = 80
_QUESTION_ON_PASSAGE = 1.5
_WH_QUESTION_ON_PASSAGE = 2.5
#: In a how/why question with no request to write, genre words count this much.
_TOPIC_IN_EXPLANATION = 0.4
#: ... and a short question over two or more numbers leans to math.
_NUMERIC_QUESTION = 1.5
#: Scale of the score margin in the confidence: margin 2 ~ 0.63, margin 5 ~ 0.92.
_CONFIDENCE_SCALE = 2.0


class Evidence:
    """The cues found in one prompt: cue name -> (label, value, from the instruction?).

    A cue seen twice keeps its strongest value (a negated sighting wins over a plain one)."""

    def __init__(self, prompt: Prompt) -> None:
        self.prompt = prompt
        self.passage_factor = _SHORT_PASSAGE_FACTOR if prompt.passage < _SHORT_PASSAGE_CHARS \
            else _PASSAGE_FACTOR
        self.best: Dict[str, Tuple[str, float, bool]] = {}
        #: whether a cue that needs numbers ("how many") was asked in the instruction
        self.quantity_question = False
        #: whether the instruction holds a question word ("who", "언제", "どこ", "哪") ...
        self.interrogative = False
        #: ... or a how/why word ("how", "왜", "どうして", "怎么")
        self.explanation = False
        #: labels whose request forms (the tables' patterns) fired, as opposed to topic words
        self.forms: set = set()

    def note(self, label: str, name: str, value: float, pos: int, scale: bool = True,
             inst: Optional[bool] = None) -> None:
        """Record a cue at ``pos``; a keyword in the passage counts ``passage_factor`` as much
        (``scale=False`` for structure, which means the same wherever it stands)."""
        if inst is None:
            inst = self.prompt.in_instruction(pos)
        if scale and not inst:
            value *= self.passage_factor
        old = self.best.get(name)
        if old is None or abs(value) > abs(old[1]) or (value < 0 < old[1]):
            self.best[name] = (label, value, inst)

    def matched(self) -> Tuple[str, ...]:
        """Cue names, strongest first."""
        return tuple(name for name, _ in sorted(self.best.items(), key=lambda kv: -abs(kv[1][1])))


def _needs(needs: Optional[str], numbers: int) -> float:
    if needs is None:
        return 1.0
    return 1.0 if numbers >= 2 else 0.5 if numbers == 1 else 0.0


def _note_cue(evidence: Evidence, cue, start: int, negated: bool = False) -> None:
    prompt = evidence.prompt
    value = cue.weight * _needs(cue.needs, prompt.numbers)
    if not value:
        return
    if cue.needs and prompt.in_instruction(start):
        evidence.quantity_question = True
    if negated:
        evidence.note(cue.label, cue.name + ":negated", value * _NEGATED_FACTOR, start)
    else:
        evidence.note(cue.label, cue.name, value, start)


def _match_literals(table: Table, evidence: Evidence) -> Dict[str, List[int]]:
    """Note the table's literal cues found in the prompt's regions; return where each
    matched literal starts (for the combos)."""
    positions: Dict[str, List[int]] = {}
    if table.literal_re is None:
        return positions
    low = evidence.prompt.low
    latin = table.script == "latin"
    for a, b in evidence.prompt.regions:
        for m in table.literal_re.finditer(low, a, b):
            start = m.start()
            if latin and start and low[start - 1] in WORD_CHARS:
                continue
            word = m.group()
            cues = table.lookup(word)
            if cues is None:
                continue
            positions.setdefault(word, []).append(start)
            if cues:
                negated = table.negated(low, start, m.end())
                for cue in cues:
                    _note_cue(evidence, cue, start, negated)
    return positions


def _match_patterns(table: Table, evidence: Evidence) -> None:
    """Note each of the table's regex cues at its first match in the prompt's regions."""
    low = evidence.prompt.low
    regions = evidence.prompt.regions
    for pattern, cue, word_start in table.patterns:
        for a, b in regions:
            m = search(pattern, low, a, b, word_start)
            if m is not None:
                _note_cue(evidence, cue, m.start())
                evidence.forms.add(cue.label)
                break


def _in_instruction(pattern: "Optional[re.Pattern[str]]", prompt: Prompt) -> bool:
    if pattern is None:
        return False
    return any(a < b and pattern.search(prompt.low, a, b) is not None
               for a, b in ((0, prompt.head_end), (prompt.tail_start, len(prompt.low))))


def _find_interrogative(table: Table, evidence: Evidence) -> None:
    prompt = evidence.prompt
    if not evidence.interrogative:
        evidence.interrogative = _in_instruction(table.interrogative, prompt)
    if not evidence.explanation and prompt.asks:
        evidence.explanation = _in_instruction(table.explanation, prompt)


def match_table(table: Table, evidence: Evidence) -> None:
    """Step 1, per language: the table's literals, its patterns, then its combos; and
    whether the instruction holds one of its question words."""
    positions = _match_literals(table, evidence)
    _match_patterns(table, evidence)
    _find_interrogative(table, evidence)
    if table.combos and positions:
        # every term of a combo occurs inside some matched literal: a cheap test first
        matched = "\x00".join(positions)
        for combo in table.combos:
            if all(term in matched for term in combo.terms):
                pos = table.combo_position(combo, positions)
                if pos is not None:
                    evidence.note(combo.cue.label, combo.cue.name, combo.cue.weight, pos)


def note_structure(tables: Tables, evidence: Evidence) -> None:
    """Step 2: code fences, stack traces, equations, ... over the original text."""
    prompt = evidence.prompt
    for label, name, weight, pos in structural_cues(tables, prompt.text, prompt.has_digit):
        evidence.note(label, name, weight, pos, scale=False)


def note_prompt_shape(evidence: Evidence) -> None:
    """Step 3: what the prompt's shape says: it opens with code, it asks a question about a
    passage, it asks a short question over numbers, it is a word problem."""
    prompt = evidence.prompt
    if prompt.opens_with_code:
        evidence.note("code", "code:opens_with_code", _OPENS_WITH_CODE, 0, inst=True)
    asks = prompt.asks
    if prompt.passage_size >= _QUESTION_PASSAGE_CHARS and evidence.interrogative:
        evidence.note("extraction", "extraction:wh_question_on_passage",
                      _WH_QUESTION_ON_PASSAGE if asks else _QUESTION_ON_PASSAGE, 0, inst=True)
    elif asks and prompt.passage_size >= _QUESTION_PASSAGE_CHARS:
        evidence.note("extraction", "extraction:question_on_passage", _QUESTION_ON_PASSAGE, 0,
                      inst=True)
    elif asks and prompt.passage < MIN_PASSAGE_CHARS and prompt.instruction_numbers >= 2 \
            and (evidence.quantity_question or _has_cue(evidence, "math")):
        evidence.note("math", "math:numeric_question", _NUMERIC_QUESTION, 0, inst=True)
    # (not over a passage pasted apart from the question: "How many vendors are there?"
    # after a notice asks to read it; a word problem runs on in one paragraph)
    if evidence.explanation and prompt.passage < MIN_PASSAGE_CHARS \
            and "creative_writing" not in evidence.forms:
        # "How do actors remember their lines?": a genre word in a how/why question is its
        # topic; without a request to write ("write", "써 줘", "書いて") it asks to explain.
        for name, (label, value, inst) in list(evidence.best.items()):
            if label == "creative_writing" and value > 0:
                evidence.best[name] = (label, value * _TOPIC_IN_EXPLANATION, inst)
    if evidence.quantity_question and prompt.numbers >= WORD_PROBLEM_NUMBERS \
            and not prompt.pasted:
        evidence.note("math", "math:word_problem", _WORD_PROBLEM_WEIGHT, 0, inst=True)


def _has_cue(evidence: Evidence, label: str) -> bool:
    """Whether some cue of ``label`` fired: a question over numbers is math only when something
    else says so too (a quantity asked, an operation, a math word); without that its numbers
    are facts ("a 3.2 GHz CPU with 16 GB", "in 1969"), not operands."""
    return any(owner == label and value > 0 for owner, value, _ in evidence.best.values())


def _decayed(values: List[float]) -> float:
    """Sum with diminishing returns: the strongest cue counts fully, each next one less."""
    values.sort(reverse=True)
    return sum(v * _DECAY ** i for i, v in enumerate(values))


def combine(evidence: Evidence, labels: Sequence[str]) -> Dict[str, float]:
    """Step 4: one score per label: instruction cues with diminishing returns, passage and
    structure capped, negated cues subtracted, and a base for ``general``."""
    passage = evidence.prompt.passage
    inst_values: Dict[str, List[float]] = {label: [] for label in labels}
    content_values: Dict[str, List[float]] = {label: [] for label in labels}
    negative: Dict[str, float] = {label: 0.0 for label in labels}
    for label, value, inst in evidence.best.values():
        if label not in negative:  # a cue of a label this classifier does not produce
            continue
        if value < 0:
            negative[label] += value
        elif inst:
            if label == "extraction" and passage < MIN_PASSAGE_CHARS:
                value *= _NO_PASSAGE_EXTRACTION
            inst_values[label].append(value)
        else:
            content_values[label].append(value)
    scores = {label: _decayed(inst_values[label])
              + min(_CONTENT_CAP, _decayed(content_values[label])) + negative[label]
              for label in labels}
    # A pasted passage is there to be worked on; plain chat rarely comes with one.
    scores["general"] += _GENERAL_BASE if passage < _QUESTION_PASSAGE_CHARS \
        else _GENERAL_BASE_WITH_PASSAGE
    return scores


def rank(scores: Mapping[str, float], labels: Sequence[str]) -> List[Tuple[str, float]]:
    """Labels by score, best first; ties go to the label listed first."""
    order = {label: i for i, label in enumerate(labels)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def confidence(ranked: Sequence[Tuple[str, float]]) -> float:
    """Step 5: how far the winner leads the runner-up, mapped into [0, 1)."""
    margin = ranked[0][1] - ranked[1][1]
    return 1.0 - math.exp(-margin / _CONFIDENCE_SCALE)
