"""The README's and the documentation's Python examples run as written, and the docs
cover every public package.

Every ```python block of README.md and of docs/**/*.md runs in a fresh temporary
directory; a ``print(...)  # expected`` comment says what that line prints (up to a
``:`` that starts a remark). Code that must not run here is fenced ``py``, ``text`` or
``console``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import memactor

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


BLOCKS = [
    (page, index, source) for page in PAGES for index, source in enumerate(python_blocks(page))
]


def block_id(page: Path, index: int) -> str:
    return f"{page.relative_to(ROOT)}:block{index}"


def expected_lines(source: str) -> list[str]:
    """What the ``print(...)  # expected`` comments of an example say it prints."""
    return [
        line.split("#", 1)[1].split(":", 1)[0].strip()
        for line in source.splitlines()
        if line.strip().startswith("print(") and "#" in line
    ]


def test_readme_has_examples() -> None:
    assert len(python_blocks(README)) >= 2


def test_docs_have_examples() -> None:
    assert sum(1 for page, _, _ in BLOCKS if page != README) >= 5


def test_expected_lines_reads_the_comment_up_to_a_remark() -> None:
    source = "x = 1\nprint(x)  # 1\nprint([2])  # [2]: a remark\nprint(3)\n"
    assert expected_lines(source) == ["1", "[2]"]


@pytest.mark.parametrize(
    ("page", "index", "source"),
    BLOCKS,
    ids=[block_id(page, index) for page, index, _ in BLOCKS],
)
def test_example_runs(
    page: Path, index: int, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, f"{page}:block{index}", "exec"), {"__name__": "docs_example"})
    printed = out.getvalue().splitlines()
    for want in expected_lines(source):
        assert want in printed, f"{block_id(page, index)} promises {want!r}, printed {printed!r}"


def public_packages() -> list[str]:
    return sorted(
        f"memactor.{info.name}"
        for info in pkgutil.iter_modules(memactor.__path__)
        if info.ispkg and not info.name.startswith("_")
    )


@pytest.mark.parametrize("package", ["memactor", *public_packages()])
def test_every_public_package_has_an_api_page(package: str) -> None:
    documented = {
        match
        for page in (DOCS / "api").glob("*.md")
        for match in re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(), flags=re.M)
    }
    assert package in documented, (
        f"{package} has no API page: add docs/api/<name>.md with "
        f"'.. automodule:: {package}' in an eval-rst block, and list it in docs/api/index.md"
    )


def test_every_api_page_is_in_the_api_index() -> None:
    index = (DOCS / "api" / "index.md").read_text()
    pages = sorted(page.stem for page in (DOCS / "api").glob("*.md") if page.stem != "index")
    assert [page for page in pages if not re.search(rf"^{page}$", index, flags=re.M)] == []


def test_index_picks_up_every_guide_by_glob() -> None:
    # Guides listed by name come first, in reading order; the glob adds the rest.
    guides = re.search(
        r"^:caption: Guides\n:glob:\n\n(.*?)^```",
        (DOCS / "index.md").read_text(),
        flags=re.M | re.S,
    )
    assert guides is not None
    assert guides[1].splitlines()[-1] == "guides/*"


def load_conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    assert spec is not None
    assert spec.loader is not None
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


def test_raises_sections_become_field_lists() -> None:
    conf = load_conf()
    docstring = [
        "Lend an array.",
        "",
        "Raises:",
        "  PoolTimeoutError: no room in time.",
        "  ValueError: the block never fits, a",
        "      negative dimension.",
        "  trio.ClosedResourceError: the pool is not running.",
        "",
        "After the section.",
    ]
    assert conf.raises_as_fields(docstring) == [
        "Lend an array.",
        "",
        ":raises PoolTimeoutError: no room in time.",
        ":raises ValueError: the block never fits, a negative dimension.",
        ":raises trio.ClosedResourceError: the pool is not running.",
        "",
        "After the section.",
    ]


def test_a_raises_note_is_kept_and_indented_sections_stay_indented() -> None:
    conf = load_conf()
    docstring = ["    Raises (constructor):", "      TypeError: *fn* is not callable."]
    assert conf.raises_as_fields(docstring) == [
        "    :raises TypeError: (constructor) *fn* is not callable.",
        "",
    ]


def test_text_without_a_raises_section_is_unchanged() -> None:
    conf = load_conf()
    docstring = ["Raises the bar:", "  Not: a section, since the header has more words."]
    assert conf.raises_as_fields(docstring) == docstring


def test_the_readmes_links_into_the_repository_lead_somewhere() -> None:
    # Sphinx checks the links between docs pages; the README is not part of that build.
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [target for target in targets if "://" not in target]
    assert len(local) >= 10
    assert [target for target in local if not (ROOT / target).exists()] == []
