"""The README's pytest plugin example passes as written, and fails when it leaks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import RunInner

README = Path(__file__).resolve().parents[2] / "README.md"


def plugin_example() -> str:
    blocks: list[str] = re.findall(r"```py\n(.*?)```", README.read_text(), flags=re.S)
    (example,) = [block for block in blocks if "memactor_system" in block]
    return example


def test_the_readme_example_passes(pytester: pytest.Pytester, run_inner: RunInner) -> None:
    pytester.makepyfile(test_example=plugin_example())
    run_inner().assert_outcomes(passed=1)


def test_the_readme_example_fails_when_it_leaks(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    leaky = plugin_example() + "    tables.alloc(2, 8192)  # forgotten: a leak\n"
    pytester.makepyfile(test_example=leaky)
    result = run_inner()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*memactor_no_leaks*8 KiB*tolerance is 4 KiB*"])
