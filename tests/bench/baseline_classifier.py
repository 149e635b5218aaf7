"""The comparison's own task classifier, exactly as COMPARISON.md describes it: the baseline.

Lower-case the prompt; the first rule that matches wins (plain substring tests): math, code,
summarization, creative writing, else general. It has no extraction label.

    python tests/bench/baseline_classifier.py FILE.jsonl   # prints its macro-F1
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

RULES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("math", ("积分", "미분", "방정식", "증명", "prove", "calculate")),
    ("code", ("함수", "코드", "function", "class", "implement")),
    ("summarization", ("요약", "요약해", "summarize", "요점")),
    ("creative_writing", ("이야기", "시의", "essay", "write")),
)


def baseline_classify(text: str) -> str:
    """The first label whose keywords occur in the lower-cased text, else "general"."""
    low = text.lower()
    for label, keywords in RULES:
        if any(keyword in low for keyword in keywords):
            return label
    return "general"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python tests/bench/baseline_classifier.py FILE.jsonl", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root
    from llmroute.classification.evaluate import evaluate, format_report, load_jsonl

    try:
        items = load_jsonl(args[0])
    except ValueError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    report = evaluate(items, baseline_classify)
    print(format_report(report, title="baseline classifier (COMPARISON.md rules)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
