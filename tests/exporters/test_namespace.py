"""memactor.exporters: names from private modules, documented; extras load when used."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import memactor.exporters


def test_every_public_name_comes_from_a_private_module_and_is_documented() -> None:
    assert memactor.exporters.__doc__
    names = [name for name in dir(memactor.exporters) if not name.startswith("_")]
    assert {"serve_prometheus", "export_otel", "export_jsonl", "MemactorCollector"} <= set(names)
    for name in names:
        value = getattr(memactor.exporters, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("memactor.exporters._"), name
            assert value.__doc__, name


def test_a_missing_extra_is_named() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "import memactor.exporters as e\n"
        "e.export_jsonl\n"  # needs no extra
        "try:\n"
        "    e.serve_prometheus\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        check=True,
    )
    assert done.stdout.strip() == (
        "memactor.exporters.serve_prometheus needs prometheus_client:"
        " pip install 'memactor[prometheus]'"
    )
