"""The address and token options that every command reaching a served program shares."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from memactor.cli._command import CommandError
from memactor.cli._served import (
    MAX_TOKEN_FILE_BYTES,
    TOKEN_VARIABLE,
    add_server_arguments,
    token_of,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return parser.parse_args(argv)


def test_the_token_comes_from_the_option_the_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    assert token_of(parse()) is None
    monkeypatch.setenv(TOKEN_VARIABLE, "from-env")
    assert token_of(parse()) == "from-env"
    path = tmp_path / "token"
    path.write_text("  from-file  \nsecond line ignored\n")
    assert token_of(parse("--token-file", str(path))) == "from-file"
    assert token_of(parse("--token", "from-option")) == "from-option"


def test_token_and_token_file_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--token", "x", "--token-file", "y")
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "holds no token on its first line"),
        (b"\n\nsecret\n", "holds no token on its first line"),
        (b"\xff\xfe secret", "is not UTF-8 text"),
        (
            b"secret" * MAX_TOKEN_FILE_BYTES,
            f"is over {MAX_TOKEN_FILE_BYTES} bytes; it should hold the token on one line",
        ),
    ],
)
def test_a_bad_token_file_is_refused_without_quoting_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=r"^the token file .* ") as caught:
        token_of(parse("--token-file", str(path)))
    assert str(caught.value) == f"the token file {path} {problem}"
    assert "secret" not in str(caught.value)


def test_an_unreadable_token_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(CommandError, match=r"^cannot read the token file .*/missing: No such"):
        token_of(parse("--token-file", str(missing)))


def test_a_token_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"^cannot read the token file "):
        token_of(parse("--token-file", str(tmp_path)))
