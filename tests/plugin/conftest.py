"""Running pytest inside a test (pytester), without the plugins that share state.

pytester runs the inner session in this process; pytest-textual-snapshot keeps a
module-level temporary directory that an inner session would delete from under the
outer one, so inner runs go without it (and without the cache).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

RunInner = Callable[..., pytest.RunResult]


@pytest.fixture
def run_inner(pytester: pytest.Pytester) -> RunInner:
    """``run_inner(*args)``: pytest in pytester's directory, with its results."""

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:textual-snapshot", *args)

    return run
