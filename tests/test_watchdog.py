"""The deadline watchdog: a lazy daemon thread firing callbacks once their moment passes."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from llmroute import _watchdog


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_callback_fires_once_its_moment_passes_on_an_injected_clock():
    fired = threading.Event()
    clock = FakeClock()
    # 0.05 s left on the injected clock, whatever its absolute value: real time decides.
    ticket = _watchdog.watch(clock.now + 0.05, clock, fired.set)
    assert fired.wait(2.0)
    assert _watchdog.cancel(ticket) is False  # already fired


def test_a_cancelled_callback_never_fires():
    fired = threading.Event()
    ticket = _watchdog.watch(0.05, FakeClock(0.0), fired.set)
    assert _watchdog.cancel(ticket) is True
    later = threading.Event()
    _watchdog.watch(0.1, FakeClock(0.0), later.set)
    assert later.wait(2.0) and not fired.is_set()


def test_a_failing_callback_does_not_stop_the_watchdog():
    def boom() -> None:
        raise RuntimeError("callback failed")

    _watchdog.watch(0.0, FakeClock(0.0), boom)
    fired = threading.Event()
    _watchdog.watch(0.05, FakeClock(0.0), fired.set)
    assert fired.wait(2.0)


def test_no_thread_is_started_at_import():
    code = ("import threading, llmroute, llmroute._transport, llmroute._watchdog\n"
            "print(sorted(t.name for t in threading.enumerate()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert "llmroute-deadline-watchdog" not in out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_watchdog():
    _watchdog.watch(0.0, FakeClock(0.0), lambda: None)  # the parent's thread is running
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is gone; a new one must start and fire
        fired = threading.Event()
        _watchdog.watch(0.05, FakeClock(0.0), fired.set)
        os._exit(0 if fired.wait(2.0) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
