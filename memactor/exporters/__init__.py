"""Exporters: memactor's figures in Prometheus, OpenTelemetry and JSON lines.

Every exporter reads the metrics actor's latest view (:func:`follow_views`), never the
memory events themselves. The Prometheus names need the ``prometheus`` extra
(``prometheus-client``) and the OpenTelemetry names the ``otel`` extra
(``opentelemetry-api``); they load when first used, so the JSON lines exporter and this
package import without either.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from ._cluster import SOURCE_LABELS as SOURCE_LABELS
from ._cluster import ClusterViews as ClusterViews
from ._cluster import follow_cluster as follow_cluster
from ._cluster import source_labels as source_labels
from ._jsonl import DEFAULT_JSONL_HZ as DEFAULT_JSONL_HZ
from ._jsonl import JSONL_SCHEMA as JSONL_SCHEMA
from ._jsonl import JSONL_VERSION as JSONL_VERSION
from ._jsonl import JsonlWriter as JsonlWriter
from ._jsonl import export_jsonl as export_jsonl
from ._jsonl import jsonl_line as jsonl_line
from ._jsonl import jsonl_record as jsonl_record
from ._views import DEFAULT_EXPORT_HZ as DEFAULT_EXPORT_HZ
from ._views import LatestView as LatestView
from ._views import SourceView as SourceView
from ._views import ViewSource as ViewSource
from ._views import follow_views as follow_views

if _typing.TYPE_CHECKING:
    from ._http import MetricsHttpServer as MetricsHttpServer
    from ._http import parse_listen_address as parse_listen_address
    from ._otel import INSTRUMENTS as INSTRUMENTS
    from ._otel import export_otel as export_otel
    from ._otel import register_otel as register_otel
    from ._prometheus import DEFAULT_MAX_OWNERS as DEFAULT_MAX_OWNERS
    from ._prometheus import FAMILIES as FAMILIES
    from ._prometheus import MAX_OWNERS_CAP as MAX_OWNERS_CAP
    from ._prometheus import OTHER_OWNERS as OTHER_OWNERS
    from ._prometheus import MemactorCollector as MemactorCollector
    from ._prometheus import cap_owners as cap_owners
    from ._serve import PrometheusExporter as PrometheusExporter
    from ._serve import serve_cluster_prometheus as serve_cluster_prometheus
    from ._serve import serve_prometheus as serve_prometheus

_PROMETHEUS = ("._prometheus", "prometheus")
_LAZY: dict[str, tuple[str, str]] = {
    "serve_cluster_prometheus": ("._serve", "prometheus"),
    "MetricsHttpServer": ("._http", "prometheus"),
    "parse_listen_address": ("._http", "prometheus"),
    "DEFAULT_MAX_OWNERS": _PROMETHEUS,
    "FAMILIES": _PROMETHEUS,
    "MAX_OWNERS_CAP": _PROMETHEUS,
    "OTHER_OWNERS": _PROMETHEUS,
    "MemactorCollector": _PROMETHEUS,
    "cap_owners": _PROMETHEUS,
    "PrometheusExporter": ("._serve", "prometheus"),
    "serve_prometheus": ("._serve", "prometheus"),
    "INSTRUMENTS": ("._otel", "otel"),
    "export_otel": ("._otel", "otel"),
    "register_otel": ("._otel", "otel"),
}


def __getattr__(name: str) -> _typing.Any:
    """Load a Prometheus or OpenTelemetry name on first use; raise ``ImportError`` naming
    the extra to install when its package is missing."""
    try:
        module_name, extra = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    try:
        module = _importlib.import_module(module_name, __name__)
    except ModuleNotFoundError as error:
        raise ImportError(
            f"memactor.exporters.{name} needs {error.name}: pip install 'memactor[{extra}]'"
        ) from error
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
