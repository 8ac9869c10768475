"""The Grafana dashboard in docs/grafana: valid JSON that shows only metrics we export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from memactor.exporters import FAMILIES

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "memactor.json"
METRIC = re.compile(r"\bmemactor_[a-z_]+\b")


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def exported_names() -> set[str]:
    return {f.name + ("_total" if f.kind == "counter" else "") for f in FAMILIES} | {
        "memactor_owner_memory_bytes"
    }


def panel_queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def concrete(expr: str) -> str:
    """*expr* as Grafana sends it, with every variable at "all"."""
    return (
        expr.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$device", ".*")
    )


def test_the_dashboard_shows_exported_metrics_only() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "memactor"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    for expr in panel_queries(dashboard):
        names = set(METRIC.findall(expr))
        assert names <= exported_names(), expr
        used |= names
    # In use versus reserved per component, unattributed, peaks, event and drop rates.
    assert used >= {
        "memactor_memory_bytes",
        "memactor_unattributed_bytes",
        "memactor_memory_peak_bytes",
        "memactor_device_memory_peak_bytes",
        "memactor_events_total",
        "memactor_events_dropped_total",
    }
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for word in ("in use", "reserved", "unattributed", "peaks", "drops"):
        assert word in titles


def test_every_variable_used_is_defined() -> None:
    dashboard = load_dashboard()
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    text = DASHBOARD.read_text()
    used = set(re.findall(r"\$\{?([a-z_]+)", text)) - {"__rate_interval"}
    assert used == defined
