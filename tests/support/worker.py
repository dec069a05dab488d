"""Run ``c360 worker`` as a subprocess and wait on its /ready endpoint."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from stream.settings import Settings

BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def another_worker(settings: Settings, data_dir: Path) -> Settings:
    """Settings of one more worker of the same deployment: the same app id and topics,
    its own data directory and web port."""
    return dataclasses.replace(settings, data_dir=data_dir, web_port=free_port())


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0):
    """(status, body bytes) of a GET; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metric_total(settings: Settings, name: str) -> float:
    """The sum of a worker's samples of metric ``name`` (0 when /metrics does not answer)."""
    status, body = http_get(settings.web_url + "/metrics")
    if status != 200:
        return 0.0
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Send ``sig`` to a running process and wait for it; kill it after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class WorkerProcess:
    """A ``c360 worker`` subprocess with its own settings and log file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> WorkerProcess:
        env = {**os.environ, **self.settings.to_env()}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [str(BIN / "c360"), "worker"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def ready(self) -> bool:
        try:
            status, _ = http_get(self.settings.web_url + "/ready", timeout=1.0)
        except OSError:
            return False
        return status == 200

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from start until /ready answered 200; fails with the log on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if self.ready():
                return time.monotonic() - self.started_at
            time.sleep(0.05)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def warnings(self, limit: int = 200) -> str:
        """The log's WARNING, ERROR and CRITICAL lines, from the start (the tail of a
        failed test's log is mostly its worker stopping)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        marks = ("[WARNING]", "[ERROR]", "[CRITICAL]", " WARNING ", " ERROR ", " CRITICAL ")
        return "\n".join([line for line in lines if any(m in line for m in marks)][:limit])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        stop_process(self.proc, sig, timeout)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
