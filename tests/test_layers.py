"""The layering, checked on the import graph of every module under ``memactor/``.

:data:`LAYERS` is the one written order (the architecture's layer table: events, codec,
metrics, runtime, actors, remote, cluster, tui, then the edges). A module imports from
its own package and from packages of layers *above* its own, never from its own layer's
other packages or from below; every import counts, the lazy ones inside functions and
the ``TYPE_CHECKING`` ones too. A layer may use the standard library, the third-party
packages listed for it and those of the layers above it. A module in no layer fails the
test, so a new package has to take its place in the table.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import memactor


@dataclass(frozen=True)
class Layer:
    name: str
    packages: tuple[str, ...]
    third_party: tuple[str, ...] = ()
    """Top-level names of the packages this layer adds to what the layers above use."""


LAYERS = (
    Layer("0 base", ("memactor._errors", "memactor._version", "memactor._native")),
    Layer("1 events", ("memactor.events",)),
    Layer("2 codec", ("memactor.codec",), ("msgpack", "numpy")),
    # rich lays out the reports' tables (render_table), as text: no terminal, no I/O.
    Layer("3 metrics", ("memactor.metrics",), ("rich",)),
    Layer("4 runtime", ("memactor.runtime",), ("trio", "outcome")),
    Layer("5 actors", ("memactor.actors",), ("cupy", "pynvml", "psutil")),
    # The top-level namespace re-exports the layers above (events to actors).
    Layer("5+ top level", ("memactor",)),
    Layer("6 remote", ("memactor.remote",)),
    Layer("6b cluster", ("memactor.cluster",)),
    Layer("7 tui", ("memactor.tui",), ("textual", "textual_plotext")),
    Layer(
        "8 edges",
        ("memactor.cli", "memactor.pytest_plugin", "memactor.exporters", "memactor.ray"),
        ("pytest", "prometheus_client", "opentelemetry", "ray"),
    ),
    Layer("9 entry point", ("memactor.__main__",)),
)


UPWARD_ON_PURPOSE: dict[tuple[str, str], str] = {
    ("memactor.actors._system", "memactor.exporters"): (
        "open_system(prometheus=...) loads the Prometheus exporter lazily, only when asked"
    ),
    ("memactor.cluster._aggregator", "memactor.exporters"): (
        "open_aggregator(prometheus=...) loads the cluster exporter lazily, only when asked"
    ),
    ("memactor.cli._aggregate", "memactor.exporters"): (
        "memactor aggregate --prometheus checks its address with the exporters', lazily"
    ),
    ("memactor.cli._demo", "memactor.exporters"): (
        "memactor demo --prometheus/--jsonl load the exporters lazily, only when asked"
    ),
}
"""``(importing module, imported package)``: why this one import may reach below its layer
(a lazy import the architecture allows on purpose)."""


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, ``memactor.metrics._ledger``."""
    line: int
    target: str
    """What it imports, absolute: ``memactor.events`` or ``numpy.typing``."""


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path) -> Iterator[Import]:
    """Every import statement in every module under *root* (a ``memactor`` folder)."""
    for path in sorted(root.rglob("*.py")):
        module = module_name(root, path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, node.lineno, alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    yield Import(module, node.lineno, node.module or "")
                    continue
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                if node.module:
                    yield Import(module, node.lineno, ".".join([*base, node.module]))
                else:  # from .. import tui: each name may be a module
                    for alias in node.names:
                        yield Import(module, node.lineno, ".".join([*base, alias.name]))


def layer_of(module: str) -> tuple[int, str] | None:
    """The rank and the package (a :data:`LAYERS` entry) *module* belongs to."""
    best: tuple[int, str] | None = None
    for rank, layer in enumerate(LAYERS):
        for package in layer.packages:
            # The top-level namespace is one module; its subpackages have layers of their own.
            nested = package != "memactor" and module.startswith(package + ".")
            inside = module == package or nested
            if inside and (best is None or len(package) > len(best[1])):
                best = (rank, package)
    return best


def violations(root: Path) -> list[str]:
    """What breaks the layering under *root*, one line per import (or unplaced module)."""
    found: list[str] = []
    allowed: dict[int, set[str]] = {}
    for rank, layer in enumerate(LAYERS):
        allowed[rank] = allowed.get(rank - 1, set()) | set(layer.third_party)
    for path in sorted(root.rglob("*.py")):
        if layer_of(module_name(root, path)) is None:
            found.append(f"{module_name(root, path)} is in no layer: add it to LAYERS")
    for imp in imports(root):
        where = f"{imp.module}:{imp.line} imports {imp.target}"
        source = layer_of(imp.module)
        if source is None:
            continue
        rank, package = source
        top = imp.target.split(".")[0]
        if top != "memactor":
            if top not in sys.stdlib_module_names and top not in allowed[rank]:
                found.append(f"{where}: not a package layer {LAYERS[rank].name} uses")
            continue
        target = layer_of(imp.target)
        if target is None:
            found.append(f"{where}: a module in no layer")
        elif (
            target[1] != package
            and target[0] >= rank
            and (imp.module, target[1]) not in UPWARD_ON_PURPOSE
        ):
            found.append(
                f"{where}: layer {LAYERS[rank].name} imports only from the layers above it, "
                f"and {target[1]} is in {LAYERS[target[0]].name}"
            )
    return found


def test_every_module_imports_only_from_the_layers_above_it() -> None:
    root = Path(memactor.__file__).parent
    assert violations(root) == []
    assert len({imp.module for imp in imports(root)}) > 50  # it did read the tree


@pytest.mark.parametrize(
    ("path", "source", "message"),
    [
        (
            "metrics/_bad.py",
            "from ..actors import BufferPool\n",
            "memactor.metrics._bad:1 imports memactor.actors: layer 3 metrics "
            "imports only from the layers above it, and memactor.actors is in 5 actors",
        ),
        (
            "metrics/_bad.py",
            "def lazily():\n    import trio\n",
            "memactor.metrics._bad:2 imports trio: not a package layer 3 metrics uses",
        ),
        (
            "cli/_bad.py",
            "from .. import pytest_plugin\n",
            "memactor.cli._bad:1 imports memactor.pytest_plugin: layer 8 edges imports "
            "only from the layers above it, and memactor.pytest_plugin is in 8 edges",
        ),
        (
            "runtime/_bad.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import memactor.tui\n",
            "memactor.runtime._bad:3 imports memactor.tui: layer 4 runtime imports only "
            "from the layers above it, and memactor.tui is in 7 tui",
        ),
        ("gadgets/__init__.py", "", "memactor.gadgets is in no layer: add it to LAYERS"),
    ],
)
def test_an_upward_import_is_named(tmp_path: Path, path: str, source: str, message: str) -> None:
    root = tmp_path / "memactor"
    for package in ("metrics", "actors", "cli", "runtime", "pytest_plugin", "tui"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("from ._x import X as X\n")
    (root / "__init__.py").write_text("from .metrics import Ledger as Ledger\n")
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(source)
    assert violations(root) == [message]
