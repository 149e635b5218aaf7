"""LazyPattern: compiled on first use, then a plain attribute lookup."""
from __future__ import annotations

import re
import threading

from llmroute._lazy import LazyPattern


def test_a_lazy_pattern_compiles_on_first_use_and_behaves_as_the_pattern():
    lazy = LazyPattern(r"(\d+)-(\d+)", re.ASCII)
    assert "search" not in vars(lazy)
    assert lazy.search("a 12-34 b").groups() == ("12", "34")
    assert "search" in vars(lazy)  # bound once; later calls skip __getattr__
    assert lazy.sub("x", "1-2 3-4") == "x x"
    assert lazy.fullmatch("5-6") and not lazy.fullmatch("5-")


def test_threads_using_a_fresh_lazy_pattern_all_get_answers():
    lazy = LazyPattern(r"[aeiou]+")
    results = []
    threads = [threading.Thread(target=lambda: results.append(lazy.findall("queueing")))
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [["ueuei"]] * 16
