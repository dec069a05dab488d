"""`c360 demo`: start a worker, show where it answers, stop everything on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from stream.settings import Settings


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings.to_env()}
    exe = Path(sys.executable).parent / "c360"
    with open(log_path, "ab") as log:
        return subprocess.Popen([str(exe), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(settings: Settings, proc: subprocess.Popen, timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(settings.web_url + "/ready", timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the worker was not ready after {timeout:.0f}s")


def run(settings: Settings) -> int:
    log_path = settings.data_dir / "worker.log"
    print(f"c360 demo: Kafka at {settings.kafka_bootstrap}; starting a worker (log: {log_path})")
    proc = start_worker(settings, log_path)
    try:
        seconds = wait_ready(settings, proc)
        print(f"worker ready in {seconds:.1f}s")
        print(f"  readiness: {settings.web_url}/ready")
        print(f"  metrics:   {settings.web_url}/metrics")
        print("Ctrl-C stops the worker (and the broker, if the demo started it).")
        while proc.poll() is None:
            time.sleep(0.5)
        print(f"the worker exited with code {proc.returncode}; see {log_path}")
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    except RuntimeError as exc:
        print(f"c360 demo: {exc}; see {log_path}", file=sys.stderr)
        return 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
