"""The pytest plugin examples of the README and of the plugin guide pass as written, and
fail when they leak."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import RunInner

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "docs" / "guides" / "pytest.md"]


def plugin_example(page: Path) -> str:
    blocks: list[str] = re.findall(r"```py\n(.*?)```", page.read_text(), flags=re.S)
    (example,) = [block for block in blocks if "memactor_system" in block]
    return example


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_the_example_passes(page: Path, pytester: pytest.Pytester, run_inner: RunInner) -> None:
    pytester.makepyfile(test_example=plugin_example(page))
    run_inner().assert_outcomes(passed=1)


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_the_example_fails_when_it_leaks(
    page: Path, pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    leaky = plugin_example(page) + "    tables.alloc(2, 8192)  # forgotten: a leak\n"
    pytester.makepyfile(test_example=leaky)
    result = run_inner()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*memactor_no_leaks*8 KiB*tolerance is 4 KiB*"])
