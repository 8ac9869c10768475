"""Every ``type: ignore`` in memactor/, scripts/ and tests/ names its error codes and says why.

The form is ``# type: ignore[code]  # the reason``: the codes keep mypy from hiding a
second error on the line, the reason tells a reader why the checker is wrong there.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EXPLAINED = re.compile(r"#\s*type:\s*ignore\[[\w\-, ]+\]\s*#\s*\S")


def unexplained(source: str, name: str = "<source>") -> list[str]:
    """``name:line`` of each ``type: ignore`` comment in *source* without codes and a reason."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        is_ignore = token.type == tokenize.COMMENT and re.search(r"type:\s*ignore", token.string)
        if is_ignore and not EXPLAINED.search(token.string):
            found.append(f"{name}:{token.start[0]}: {token.string}")
    return found


def test_every_type_ignore_says_why() -> None:
    paths = sorted(
        p for top in ("memactor", "scripts", "tests") for p in (ROOT / top).rglob("*.py")
    )
    assert len(paths) > 100
    found = [
        line
        for path in paths
        for line in unexplained(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert found == []


@pytest.mark.parametrize(
    ("line", "explained"),
    [
        ("x = f()  # type: ignore[arg-type]  # the point of the test\n", True),
        ("x = f()  # type: ignore[misc, union-attr]  # not None here\n", True),
        ("x = f()  # type: ignore[arg-type]\n", False),
        ("x = f()  # type: ignore  # no codes\n", False),
        ("x = f()  # type: ignore\n", False),
        ('x = "# type: ignore"  # a string, not a comment\n', True),
    ],
)
def test_what_counts_as_explained(line: str, explained: bool) -> None:
    assert (unexplained(line) == []) is explained
