"""What ``import llmroute`` costs against ``import requests``: wall time and memory.

Each measurement is a fresh interpreter that times the import with ``perf_counter`` and reports
the growth of its resident memory over a bare interpreter's. Runs alternate between the modules so a
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
from typing import Dict, List, Sequence

# Resident memory from /proc/self/statm where there is one: ru_maxrss is a high-water mark that
# Linux carries over from the parent into a child, so it reads 0 when the parent is larger.
_PROBE = r"""
import json, os, resource, sys, time
def rss_kib():
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before = rss_kib()
start = time.perf_counter()
__import__(sys.argv[1])
elapsed = time.perf_counter() - start
after = rss_kib()
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


def measure_all(rounds: int, also: List[str]) -> Dict[str, Dict[str, float]]:
    """Best (lowest) time and memory of each module over ``rounds`` alternating fresh imports."""
    # Installed packages (requests, the peers) carry compiled bytecode; a checkout may not (this
    # machine sets PYTHONDONTWRITEBYTECODE), and compiling from source would be timed as import.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(_ROOT, "llmroute")],
                   check=True, timeout=300)
    modules = ["requests", "llmroute"] + [m for m in also if available(m)]
    best: Dict[str, Dict[str, float]] = {}
    for _ in range(rounds):
        for module in modules:
            got = measure(module)
            prev = best.get(module)
            best[module] = {"seconds": min(got["seconds"], prev["seconds"]) if prev
                            else got["seconds"],
                            "rss_kib": min(got["rss_kib"], prev["rss_kib"]) if prev
                            else got["rss_kib"],
                            "modules": got["modules"]}
    return best


def rows(rounds: int = 15, also: Sequence[str] = ("openai", "litellm")) -> list:
    """Table rows: ``import llmroute`` against ``import requests`` and each peer installed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _table import Row, skipped, verdict

    best = measure_all(rounds, list(also))
    ours = best["llmroute"]
    bench = "import, fresh process (best of %d)" % rounds
    out = []
    for peer in ["requests"] + list(also):
        if peer not in best:
            out.append(skipped(bench, "import llmroute / import %s" % peer,
                               "%s not installed" % peer))
            continue
        theirs = best[peer]
        ratio = ours["seconds"] / theirs["seconds"]
        extra = (ours["rss_kib"] - theirs["rss_kib"]) / 1024
        target = ""
        if peer == "requests":
            target = "%s; +%.1f MiB RSS (≤ +2 MiB: %s)" % (
                verdict(ratio, "<=", 1.2), extra, "met" if extra <= 2.0 else "NOT met")
        else:
            target = "RSS %+.1f MiB vs %s" % (extra, peer)
        out.append(Row(bench, "import llmroute / import %s (time; RSS growth)" % peer,
                       "%.0f ms, %.1f MiB" % (ours["seconds"] * 1000, ours["rss_kib"] / 1024),
                       "%.0f ms, %.1f MiB" % (theirs["seconds"] * 1000, theirs["rss_kib"] / 1024),
                       "%.2f×" % ratio, "", target))
    return out


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--also", nargs="*", default=["openai", "litellm"],
                        help="peers measured when installed (default: openai litellm)")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _table import print_rows

    print_rows(rows(args.rounds, args.also))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
