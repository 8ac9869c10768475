"""The README's Python examples run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, str(README), "exec"), {"__name__": "readme"})
    # Every "print(...)  # expected" comment in the example is what it prints.
    expected = [
        line.split("#", 1)[1].split(":", 1)[0].strip()
        for line in source.splitlines()
        if line.strip().startswith("print(") and "#" in line
    ]
    printed = out.getvalue().splitlines()
    for want in expected:
        assert want in printed, f"README promises {want!r}, example printed {printed!r}"
