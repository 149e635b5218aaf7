"""``llmroute classify``: label a prompt by task, or score the classifier on a labelled file."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict

from ._common import EXIT_OK, EXIT_USAGE, print_error

__all__ = ["add_parser", "run"]


def _fail(message: str) -> int:
    print_error("llmroute classify", message)
    return EXIT_USAGE


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Declare ``llmroute classify``."""
    p = subparsers.add_parser(
        "classify", help="label a prompt by task (code, math, summarization, ...)",
        description="Classify a prompt with the keyword classifier, or measure it on a "
                    "labelled JSONL file ({\"text\", \"label\", \"lang\"} per line).",
        epilog="examples:\n"
               "  llmroute classify \"방정식 2x + 3 = 11을 풀어 주세요\"\n"
               "  echo \"Summarize this article: ...\" | llmroute classify -\n"
               "  llmroute classify --eval prompts.jsonl --errors 10")
    p.add_argument("text", nargs="?", help="the prompt; '-' reads it from standard input")
    p.add_argument("--eval", metavar="FILE.jsonl",
                   help="score the classifier on a labelled file: accuracy, macro-F1 overall "
                        "and per language, per-label table, confusion matrix")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--keywords", metavar="FILE.json",
                   help="a keyword table that adds to or re-weights the shipped ones")
    p.add_argument("--tasks", metavar="FILE.json",
                   help="custom tasks: {label: {language: {phrase: weight}}}")
    p.add_argument("--long-context-tokens", type=int, default=None, metavar="N",
                   help="estimated prompt tokens from which a prompt is long_context")
    p.add_argument("--errors", type=int, default=0, metavar="N",
                   help="with --eval, also list up to N misclassified items")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``llmroute classify``; returns the exit code."""
    from ..classification import DEFAULT_LONG_CONTEXT_TOKENS, Classifier
    from ..classification.evaluate import evaluate, format_report, load_jsonl

    if args.eval and args.text is not None:
        return _fail("give either a prompt or --eval FILE, not both")
    if args.errors < 0:
        return _fail("--errors must be 0 or more")
    try:
        classifier = Classifier(
            keywords_file=args.keywords, tasks_file=args.tasks,
            long_context_tokens=DEFAULT_LONG_CONTEXT_TOKENS if args.long_context_tokens is None
            else args.long_context_tokens)
    except ValueError as err:
        return _fail(str(err))
    if args.eval:
        try:
            items = load_jsonl(args.eval)
        except ValueError as err:
            return _fail(str(err))
        report = evaluate(items, lambda text: _label_and_confidence(classifier.classify(text)))
        misses = [(it, p) for it, p in zip(items, report.predictions) if it.label != p]
        if args.json:
            out: Dict[str, Any] = _report_dict(report)
            out["errors"] = [{"line": it.line, "lang": it.lang, "label": it.label,
                              "predicted": p, "text": it.text[:200]}
                             for it, p in misses[:args.errors]]
            print(json.dumps(out, ensure_ascii=False, indent=2))
        else:
            print(format_report(report, title="%s (%s)" % (args.eval, "keyword classifier")))
            for it, p in misses[:args.errors]:
                print("line %d [%s] %s -> %s: %s" % (it.line, it.lang, it.label, p,
                                                    " ".join(it.text.split())[:120]))
        return EXIT_OK
    text = args.text
    if text == "-" or (text is None and not sys.stdin.isatty()):
        text = sys.stdin.read()
    if not text or not text.strip():
        return _fail("nothing to classify: give a prompt, '-' for standard input, or --eval FILE")
    result = classifier.classify(text)
    if args.json:
        print(json.dumps({"task": result.label, "text_task": result.text_label,
                          "confidence": result.confidence, "scores": dict(result.scores),
                          "matched": list(result.matched)}, ensure_ascii=False))
    else:
        print("task: %s" % result.label)
        if result.text_label != result.label:
            print("text task: %s" % result.text_label)
        print("confidence: %.2f" % result.confidence)
        print("matched: %s" % (", ".join(result.matched) or "(no cues)"))
    return EXIT_OK


def _label_and_confidence(result: Any) -> Any:
    return result.label, result.confidence


def _report_dict(report: Any) -> Dict[str, Any]:
    share, confident_accuracy = report.confident()
    return {
        "items": report.n, "accuracy": round(report.accuracy, 4),
        "macro_f1": round(report.macro_f1, 4),
        "per_language": {lang: {"items": n, "accuracy": round(acc, 4), "macro_f1": round(f1, 4)}
                         for lang, (n, acc, f1) in report.per_lang.items()},
        "per_label": {label: {"precision": round(s.precision, 4), "recall": round(s.recall, 4),
                              "f1": round(s.f1, 4), "support": s.support}
                      for label, s in report.per_label.items()},
        "confusion": {g: dict(row) for g, row in report.confusion.items()},
        "per_source": {name: {"items": n, "accuracy": round(acc, 4), "macro_f1": round(f1, 4)}
                       for name, (n, acc, f1) in report.per_source.items()},
        "calibration": {"%.1f" % low: {"items": n, "accuracy": round(acc, 4)}
                        for low, (n, acc) in report.calibration.items()},
        "confident_share": round(share, 4), "confident_accuracy": round(confident_accuracy, 4),
    }

