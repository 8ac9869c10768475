"""``memactor demo --prometheus ADDRESS --jsonl FILE``, run as a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from memactor.exporters import JSONL_SCHEMA


def memactor(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memactor", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        check=False,
    )


def test_the_demo_serves_prometheus_and_writes_json_lines(tmp_path: Path) -> None:
    jsonl = tmp_path / "run.jsonl"
    exporters = ["--prometheus", "127.0.0.1:0", "--jsonl", str(jsonl)]
    demo = subprocess.Popen(
        [sys.executable, "-m", "memactor", "demo", "--headless", "--seconds", "3", *exporters],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert demo.stdout is not None
        assert demo.stdout.readline().startswith("memactor demo: running the pipeline")
        announced = demo.stdout.readline()
        assert announced.startswith("Prometheus metrics at http://127.0.0.1:"), announced
        url = announced.split()[-1]
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"memactor_memory_bytes", "memactor_events", "memactor_unattributed_bytes"} <= names
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, err
    assert "frames in" in out
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) >= 10  # ten a second for three seconds, less the start-up
    assert {r["schema"] for r in records} == {JSONL_SCHEMA}
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert any(c["component"] == "pool" for c in records[-1]["components"])


def test_bad_exporter_flags_are_usage_errors(tmp_path: Path) -> None:
    bad = memactor("demo", "--headless", "--items", "1", "--prometheus", "localhost:port")
    assert bad.returncode == 2
    assert "--prometheus: bad address 'localhost:port'" in bad.stderr
    nowhere = memactor("demo", "--headless", "--items", "1", "--jsonl", tmp_path / "no" / "x")
    assert nowhere.returncode == 2
    assert "cannot save to" in nowhere.stderr


def test_a_port_in_use_is_a_usage_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        busy = memactor("demo", "--headless", "--items", "1", "--prometheus", address)
    assert busy.returncode == 2, busy.stderr
    assert f"cannot serve Prometheus on {address}: " in busy.stderr
