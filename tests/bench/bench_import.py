"""What ``import llmroute`` costs against ``import requests``: wall time and memory.

Each measurement is a fresh interpreter that times the import with ``perf_counter`` and reports
the growth of ``ru_maxrss`` over a bare interpreter's. Runs alternate between the modules so a
noisy machine hurts both alike; the best of ``--rounds`` is kept, since noise only adds time.
Goal (issue 10): at most 1.2x the time of ``import requests`` and at most +2 MiB over it.

    python tests/bench/bench_import.py [--rounds 15] [--also openai litellm]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Dict, List

_PROBE = r"""
import json, resource, sys, time
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
__import__(sys.argv[1])
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "rss_kib": after - before,
                  "modules": len(sys.modules)}))
"""
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(module: str) -> Dict[str, float]:
    env = dict(os.environ, PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _PROBE, module], capture_output=True, text=True,
                         env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError("import %s failed: %s" % (module, out.stderr.strip()[-300:]))
    return json.loads(out.stdout)


def available(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", "import " + module], capture_output=True,
                          timeout=120).returncode == 0


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--also", nargs="*", default=["openai", "litellm"],
                        help="peers measured when installed (default: openai litellm)")
    args = parser.parse_args(argv)
    # Installed packages (requests, the peers) carry compiled bytecode; a checkout may not (this
    # machine sets PYTHONDONTWRITEBYTECODE), and compiling from source would be timed as import.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(_ROOT, "llmroute")],
                   check=True, timeout=300)
    modules = ["requests", "llmroute"] + [m for m in args.also if available(m)]
    skipped = [m for m in args.also if m not in modules]
    best: Dict[str, Dict[str, float]] = {}
    for _ in range(args.rounds):
        for module in modules:
            got = measure(module)
            prev = best.get(module)
            best[module] = {"seconds": min(got["seconds"], prev["seconds"]) if prev
                            else got["seconds"],
                            "rss_kib": min(got["rss_kib"], prev["rss_kib"]) if prev
                            else got["rss_kib"],
                            "modules": got["modules"]}
    base = best["requests"]
    print("import time and memory, best of %d fresh processes (alternating)" % args.rounds)
    print("%-10s %10s %8s %12s %10s %8s" % ("module", "ms", "ratio", "RSS +MiB", "vs req", "mods"))
    for module in modules:
        row = best[module]
        print("%-10s %10.1f %8.2f %12.2f %+10.2f %8d" % (
            module, row["seconds"] * 1000, row["seconds"] / base["seconds"],
            row["rss_kib"] / 1024, (row["rss_kib"] - base["rss_kib"]) / 1024, row["modules"]))
    for module in skipped:
        print("%-10s skipped (not installed)" % module)
    ours = best["llmroute"]
    ratio = ours["seconds"] / base["seconds"]
    extra_mib = (ours["rss_kib"] - base["rss_kib"]) / 1024
    met = ratio <= 1.2 and extra_mib <= 2.0
    print("goal: <= 1.2x time and <= +2 MiB over requests: %s (%.2fx, %+.2f MiB)"
          % ("met" if met else "NOT met", ratio, extra_mib))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
