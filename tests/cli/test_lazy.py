"""Help answers at once: ``memactor --help`` and every ``memactor COMMAND --help`` import
no heavy library, and ``import memactor`` alone loads none of its layers' dependencies,
while every name it re-exports still resolves to the layer's own object."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import memactor
from memactor.cli._main import COMMANDS

HEAVY = ("trio", "numpy", "textual", "rich", "msgpack", "memactor.actors", "memactor.runtime")
"""What no help may import: libraries that take tens to hundreds of milliseconds each."""

LOADED = f"""
import sys
heavy = {HEAVY!r}
loaded = {{m if m.startswith("memactor") else m.partition(".")[0]
          for m in sys.modules if m.startswith(heavy)}}
print("loaded:", *sorted(loaded))
"""


def imported_by(code: str) -> list[str]:
    """The heavy modules loaded once *code* ran in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", code + LOADED],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    last = result.stdout.splitlines()[-1].split()
    assert last[0] == "loaded:", result.stdout
    return last[1:]


HELP_RUN = """
from memactor.cli import main
try:
    main({argv!r})
except SystemExit as exit:
    assert exit.code == 0, exit.code
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], *([command.NAME, "--help"] for command in COMMANDS)],
    ids=["memactor", *(command.NAME for command in COMMANDS)],
)
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    assert imported_by(HELP_RUN.format(argv=argv)) == []


def test_a_command_that_runs_imports_what_it_needs(tmp_path: Path) -> None:
    # The same measure after a real run: what help leaves out, a command loads.
    code = f"""
from memactor.cli import main
assert main(["report", {str(tmp_path / "none.msgpack")!r}]) == 2
"""
    assert "numpy" in imported_by(code)
    assert {"trio", "memactor.actors"} <= set(imported_by("from memactor import BufferPool"))


def test_import_memactor_loads_no_layer() -> None:
    assert imported_by("import memactor") == []


def test_every_lazy_name_resolves_to_its_layers_object() -> None:
    for name in memactor.__all__:
        value = getattr(memactor, name)
        if name in memactor._LAZY:
            layer = importlib.import_module(f"memactor.{memactor._LAZY[name]}")
            assert value is getattr(layer, name), name
    assert set(memactor.__all__) <= set(dir(memactor))
    with pytest.raises(AttributeError, match=r"^module 'memactor' has no attribute 'Nothing'$"):
        getattr(memactor, "Nothing")  # noqa: B009  # the misspelt name under test
    assert memactor.metrics is importlib.import_module("memactor.metrics")


def test_type_checkers_see_the_same_names_as_the_lazy_table() -> None:
    # The TYPE_CHECKING imports and _LAZY must list the same names from the same layers.
    tree = ast.parse(Path(memactor.__file__).read_text())
    (block,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    ]
    seen = {
        alias.name: (node.module or "")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == memactor._LAZY


def test_check_names_the_total_as_the_metrics_layer_does() -> None:
    # _check spells TOTAL out so that its help needs no metrics; the two must agree.
    from memactor.cli import _check
    from memactor.metrics import TOTAL

    assert _check.TOTAL == TOTAL


def test_report_shows_as_many_sites_as_the_metrics_layer_does() -> None:
    # _report spells SITES_SHOWN out so that its help needs no metrics; the two must agree.
    from memactor.cli import _report
    from memactor.metrics import SITES_SHOWN

    assert _report.SITES_SHOWN == SITES_SHOWN
