"""``llmroute chat "prompt"``: one call through the client or the router, from the shell.

The answer goes to stdout (as it arrives with ``--stream``, the parsed JSON with ``--json``);
stderr says which model answered, the task, why, the tokens, the cost and the latency. The API
key comes from the environment only, so it never shows in ``ps``. Exit codes: 0 answered, 1 the
call failed, 2 bad usage (options, no key, an unreadable schema), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any, Dict, List, Optional, TextIO

from ._common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError,
                      positive_float, positive_int, print_error)

__all__ = ["add_parser", "run", "describe"]

#: Seconds the whole call may take by default, retries included: a shell user is waiting.
DEFAULT_DEADLINE = 120.0
_KEY_VARIABLES = ("LLMROUTE_API_KEY", "OPENAI_API_KEY")
_URL_VARIABLES = ("LLMROUTE_BASE_URL", "OPENAI_BASE_URL")

_EXAMPLES = """examples:
  llmroute chat "Explain HTTP keep-alive in two sentences."
  llmroute chat --model gpt-5.4 --stream "Write a haiku about retries"
  echo "List the cities: Seoul, Lyon and Quito" | llmroute chat --json -
  llmroute chat --json --schema person.schema.json "Ada Lovelace, born 1815"

The gateway and key come from LLMROUTE_BASE_URL / LLMROUTE_API_KEY (or OPENAI_BASE_URL /
OPENAI_API_KEY); --base-url overrides the URL. The key is never taken from the command line."""


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number, got %r" % text) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError("expected a finite number, got %r" % text)
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``chat``; its ``func`` default is ``run``."""
    parser = subparsers.add_parser(
        "chat", help="ask one prompt, through the router or a given model",
        description="Send one prompt and print the answer on stdout. Without --model the\n"
                    "router classifies the prompt and picks the model for its task, with\n"
                    "fallbacks. On stderr: the model, task, why, tokens, cost and latency.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", help="the prompt; '-' reads it from standard input")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", "-m", help="send to this model (no routing)")
    which.add_argument("--route", action="store_true",
                       help="let the router pick the model (the default)")
    parser.add_argument("--task", help="with routing: use this task instead of classifying")
    parser.add_argument("--system", metavar="TEXT", help="a system message before the prompt")
    parser.add_argument("--json", action="store_true",
                        help="ask for JSON, check and repair it, print it parsed")
    parser.add_argument("--schema", metavar="FILE",
                        help="with --json: a JSON schema the answer must match")
    parser.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    parser.add_argument("--max-tokens", type=positive_int, metavar="N",
                        help="most tokens the answer may use")
    parser.add_argument("--temperature", type=_number, metavar="T")
    parser.add_argument("--deadline", type=positive_float, default=DEFAULT_DEADLINE,
                        metavar="SECONDS",
                        help="the whole call, retries included (default %(default)g)")
    parser.add_argument("--base-url", help="gateway URL (default: $LLMROUTE_BASE_URL)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, *, stdin: Optional[TextIO] = None,
        stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Run ``chat`` for parsed ``args``; return the exit code."""
    from ..errors import ConfigError, LLMRouteError

    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    client = None
    try:
        messages = _messages(args, stdin if stdin is not None else sys.stdin)
        schema = _schema(args)
        if args.task is not None and args.model:
            raise UsageError("--task only applies when the router picks the model, "
                             "not with --model")
        _check_environment(args)
        from ..client import Client
        client = Client(args.base_url or None)
        return _call(args, client, messages, schema, out, err)
    except KeyboardInterrupt:
        print("llmroute chat: interrupted", file=err)
        return EXIT_INTERRUPTED
    except (UsageError, ConfigError) as problem:
        return _fail(args, err, problem, EXIT_USAGE)
    except LLMRouteError as problem:
        return _fail(args, err, problem, EXIT_FAILED)
    except ValueError as problem:  # a bad option value the library refused (task, params)
        return _fail(args, err, problem, EXIT_USAGE)
    finally:
        if client is not None:
            client.close()


def _check_environment(args: argparse.Namespace) -> None:
    """Say what to set, in the shell's terms, before the client says it in Python's."""
    if not any(os.environ.get(name) for name in _KEY_VARIABLES):
        raise UsageError("no API key: set LLMROUTE_API_KEY (or OPENAI_API_KEY) in the "
                         "environment; it is never taken from the command line")
    if not args.base_url and not any(os.environ.get(name) for name in _URL_VARIABLES):
        raise UsageError("no gateway: pass --base-url or set LLMROUTE_BASE_URL "
                         "(or OPENAI_BASE_URL)")


def _fail(args: argparse.Namespace, err: TextIO, problem: BaseException, code: int) -> int:
    if getattr(args, "debug", False):
        traceback.print_exception(type(problem), problem, problem.__traceback__, file=err)
    name = "" if isinstance(problem, UsageError) else "%s: " % type(problem).__name__
    print_error("llmroute chat", "%s%s" % (name, problem), err)
    return code


def _messages(args: argparse.Namespace, stdin: TextIO) -> List[Dict[str, str]]:
    if args.schema and not args.json:
        raise UsageError("--schema needs --json")
    if args.json and args.stream:
        raise UsageError("--json and --stream do not go together: JSON is checked whole")
    prompt = stdin.read() if args.prompt == "-" else args.prompt
    if not prompt or not prompt.strip():
        raise UsageError("the prompt is empty")
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": prompt})
    return messages


def _schema(args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    if not args.schema:
        return None
    try:
        with open(args.schema, encoding="utf-8") as f:
            schema = json.load(f)
    except OSError as problem:
        raise UsageError("cannot read --schema %s: %s"
                         % (args.schema, problem.strerror)) from None
    except ValueError as problem:
        raise UsageError("--schema %s is not JSON: %s" % (args.schema, problem)) from None
    if not isinstance(schema, dict):
        raise UsageError("--schema %s must hold a JSON object" % args.schema)
    return schema


def _params(args: argparse.Namespace) -> Dict[str, Any]:
    params: Dict[str, Any] = {"deadline": args.deadline}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    return params


def _call(args: argparse.Namespace, client: Any, messages: List[Dict[str, str]],
          schema: Optional[Dict[str, Any]], out: TextIO, err: TextIO) -> int:
    params = _params(args)
    if args.model:
        task, why = None, "given with --model"
        if args.stream:
            result = _stream(client.stream(args.model, messages, **params), out)
        elif args.json:
            result = client.chat_json(args.model, messages, schema=schema, **params)
        else:
            result = client.chat(args.model, messages, **params)
    else:
        from ..router import Router
        router = Router(client)
        if args.stream:
            task, why, model, route_params = _first_in_route(router, messages, args.task)
            route_params.update(params)
            result = _stream(client.stream(model, messages, **route_params), out)
        elif args.json:
            if args.task is not None:
                params["task"] = args.task
            result = router.complete_json(messages, schema=schema, **params)
            last = result.turns[-1] if result.turns else None
            task = getattr(last, "task", None)
            why = getattr(last, "reason", "")
        else:
            result = router.complete(messages, task=args.task, **params)
            task, why = result.task, result.reason
    if args.json:
        print(json.dumps(result.data, ensure_ascii=False, indent=2), file=out)
        if result.repairs:
            why += " (%d repair turn%s)" % (result.repairs, "s" if result.repairs > 1 else "")
    elif not args.stream:
        print(result.content if result.content is not None else "", file=out)
    print(describe(result, task, why), file=err)
    return EXIT_OK


def _first_in_route(router: Any, messages: List[Dict[str, str]], task: Optional[str]) -> Any:
    """(task, why, model, params) for a streamed routed call: the route's first model.

    A stream cannot fall back to another model once text is printed, so it goes to the first.
    """
    from ..classification import classify

    if task is None:
        found = classify(None, messages=messages)
        task = found.task.value
        how = "%s prompt (matched: %s)" % (task, ", ".join(found.matched[:3]) or "no cues")
    else:
        how = "task %s (given)" % task
    if task not in router.routes:
        raise UsageError("unknown task %r; known tasks: %s" % (task, ", ".join(router.routes)))
    route = router.routes[task]
    model = route.models[0]
    return task, "%s → %s, first in route (streamed: no fallback)" % (how, model), model, \
        route.request_params()


def _stream(stream: Any, out: TextIO) -> Any:
    with stream:
        for delta in stream:
            out.write(delta)
            out.flush()
        result = stream.result()
    out.write("\n")
    out.flush()
    return result


def describe(result: Any, task: Any, why: str) -> str:
    """The stderr report: model, task, tokens, cost and latency, then why."""
    usage = result.usage
    tokens = ("%d in + %d out" % (usage.prompt_tokens, usage.completion_tokens)
              if usage is not None else "unknown")
    if getattr(result, "cost_estimated", False):
        tokens += " (estimated)"
    cost = result.cost_usd
    cost_text = "$%s" % format(cost, "f") if cost is not None else "unknown (no price)"
    task_text = getattr(task, "value", task) or "-"
    return "model: %s  task: %s  tokens: %s  cost: %s  latency: %.0f ms\nwhy: %s" % (
        result.model, task_text, tokens, cost_text, result.latency_ms, why)

