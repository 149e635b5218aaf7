"""The local server the client benchmarks talk to: nginx answering every POST with a static
chat completion, or, only when nginx cannot be had, the FakeGateway in a separate process.

A Python server would be the bottleneck and compress every ratio toward 1, so nginx is
installed with ``apt-get`` when it is missing (as root, bounded in time). ``Responder.kind``
says which server answered, for the table's header line.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NGINX_DIR = HERE / "nginx"
#: Seconds allowed for ``apt-get update && apt-get install -y nginx``.
INSTALL_SECONDS = 600
#: Seconds a server gets to start listening.
START_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int, proc: subprocess.Popen, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def find_nginx() -> Optional[str]:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)


def install_nginx(log: List[str]) -> Optional[str]:
    """``apt-get install -y nginx`` when we are root on a Debian-like system; its path or None."""
    if find_nginx():
        return find_nginx()
    if not shutil.which("apt-get") or os.geteuid() != 0:
        log.append("nginx missing and apt-get unavailable (or not root)")
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env=env, timeout=INSTALL_SECONDS)
    except (subprocess.SubprocessError, OSError) as err:
        log.append("apt-get install nginx failed: %s" % (str(err)[:120],))
        return None
    return find_nginx()


def nginx_config(prefix: str, port: int) -> str:
    body = (NGINX_DIR / "chat.json").read_text(encoding="utf-8").strip()
    if "'" in body or "$" in body:
        raise ValueError("chat.json must hold no quote or $ (it is inlined in nginx.conf)")
    text = (NGINX_DIR / "nginx.conf").read_text(encoding="utf-8")
    return text.replace("@PREFIX@", prefix).replace("@PORT@", str(port)).replace("@BODY@", body)


class Responder:
    """A started server: ``base_url`` ends in ``/v1``; ``close()`` stops it and removes its files."""

    def __init__(self, kind: str, base_url: str, proc: subprocess.Popen,
                 prefix: Optional[str] = None) -> None:
        self.kind, self.base_url, self._proc, self._prefix = kind, base_url, proc, prefix

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._prefix:
            shutil.rmtree(self._prefix, ignore_errors=True)

    def __enter__(self) -> "Responder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_nginx(binary: str, log: List[str]) -> Optional[Responder]:
    for _ in range(3):  # a free port may be taken between the probe and nginx's bind
        prefix = tempfile.mkdtemp(prefix="llmroute-bench-nginx-")
        port = free_port()
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(nginx_config(prefix, port))
        proc = subprocess.Popen([binary, "-p", prefix, "-c", conf, "-e", prefix + "/error.log"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if _listening(port, proc, START_SECONDS):
            version = subprocess.run([binary, "-v"], capture_output=True, text=True,
                                     timeout=10).stderr.strip().split("/")[-1]
            return Responder("nginx %s (static JSON, 1 worker)" % version,
                             "http://127.0.0.1:%d/v1" % port, proc, prefix)
        proc.kill()
        err = proc.communicate(timeout=10)[1].decode("utf-8", "replace").strip()
        log.append("nginx did not start: %s" % (err[-200:],))
        shutil.rmtree(prefix, ignore_errors=True)
    return None


def start_fake_gateway(latency: float = 0.0) -> Responder:
    """The FakeGateway in its own process (its work does not share our GIL)."""
    command = [sys.executable, "-m", "llmroute.testing", "--port", "0"]
    if latency:
        command += ["--latency", str(latency)]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=str(ROOT))
    base_url = proc.stdout.readline().strip()
    if not base_url.startswith("http://127.0.0.1"):
        proc.kill()
        raise RuntimeError("the fake gateway did not start: %r" % (base_url,))
    return Responder("FakeGateway in a separate process", base_url, proc)


def start_responder(install: bool = True, log: Optional[List[str]] = None) -> Responder:
    """nginx when it is (or can be made) available, else the FakeGateway; ``log`` gets why."""
    log = [] if log is None else log
    binary = install_nginx(log) if install else find_nginx()
    if binary:
        started = start_nginx(binary, log)
        if started is not None:
            return started
    elif not install:
        log.append("nginx not installed (--no-install)")
    fake = start_fake_gateway()
    fake.kind = "FakeGateway in a separate process: nginx not available (%s); a Python server " \
                "compresses every ratio" % ("; ".join(log) or "unknown reason")
    return fake
