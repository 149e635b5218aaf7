"""A throwaway redis-server on a free loopback port, for tests that stop Redis mid-run."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """``start()`` runs redis-server in the foreground of a child process; ``stop()`` kills it.
    ``start()`` again brings it back on the same port (empty: nothing is saved)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self._dir = tempfile.mkdtemp(prefix="llmroute-redis-")
        self.socket_path = os.path.join(self._dir, "redis.sock")
        self.unix_url = "unix://%s?db=0" % self.socket_path
        self._proc = None

    def start(self, timeout: float = 3.0) -> "RedisServer":
        self._proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self._dir, "--unixsocket", self.socket_path,
             "--unixsocketperm", "700"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start on port %d" % self.port)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "redis_worker.py")
ROOT = os.path.dirname(os.path.dirname(WORKER))


def spawn(job: dict) -> "subprocess.Popen[str]":
    """Start ``tests/redis_worker.py`` on ``job``; read its report with ``report()``."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, WORKER, json.dumps(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def report(proc: "subprocess.Popen[str]", timeout: float) -> dict:
    """The worker's JSON report; AssertionError with its stderr if it failed."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, "worker failed (%s): %s" % (proc.returncode, err[-2000:])
    return json.loads(out.strip().splitlines()[-1])


def run_fleet(jobs, timeout: float) -> list:
    """Run one worker per job at once and return their reports in order."""
    procs = [spawn(job) for job in jobs]
    try:
        return [report(p, timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
