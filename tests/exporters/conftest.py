"""A real Prometheus server for the exporter tests, started once per session.

It scrapes ``127.0.0.1:TARGET_PORT`` every 200 ms; a test serves its exporter there. The
server keeps its data in a temporary directory and is killed when the session ends.
Tests that need it skip only where the ``prometheus`` binary is absent (CI installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STARTUP_TIMEOUT_S = 60.0
JOB = "memactor"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    target_port: int
    """The port the server scrapes: serve the exporter under test here."""

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/PATH`` and return its ``data``; raises on an error status."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as reply:
            body = json.load(reply)
        assert body["status"] == "success", body
        return body["data"]

    def target(self) -> dict[str, Any] | None:
        """The exporter's scrape target, or ``None`` until the server has set it up."""
        for target in self.api("targets")["activeTargets"]:
            if target["labels"]["job"] == JOB:
                return dict(target)
        return None


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[PrometheusServer]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (CI installs Debian's package)")
    workdir = Path(tempfile.mkdtemp(prefix="memactor-prometheus-"))
    target_port, web_port = free_port(), free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        f"""global:
  scrape_interval: 200ms
  scrape_timeout: 150ms
scrape_configs:
  - job_name: {JOB}
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
"""
    )
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{web_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    server = PrometheusServer(f"http://127.0.0.1:{web_port}", target_port)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus did not become ready within a minute")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
