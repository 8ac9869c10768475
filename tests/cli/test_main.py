"""The ``memactor`` entry point: the command list, every command's help, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from memactor import __version__
from memactor.cli import main
from memactor.cli._command import EXIT_FOUND, EXIT_OK, EXIT_USAGE, Command, CommandError
from memactor.cli._main import COMMANDS


def test_python_dash_m_memactor_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memactor", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for command in COMMANDS:
        assert f"    {command.NAME}" in result.stdout
        assert command.HELP in " ".join(result.stdout.split())  # argparse wraps lines
    assert "Run 'memactor COMMAND --help'" in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=[c.NAME for c in COMMANDS])
def test_every_command_has_help_with_an_example(
    command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    name = command.NAME
    with pytest.raises(SystemExit) as exit:
        main([name, "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: memactor {name}" in out
    assert f"example:\n  {command.EXAMPLE}\n" in out
    assert command.EXAMPLE.startswith(f"memactor {name}")
    assert command.description.splitlines()[0] in out
    assert command.module is sys.modules[f"memactor.cli._{name}"]


def test_no_command_prints_help_and_version_prints_the_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == EXIT_OK
    assert "usage: memactor" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"memactor {__version__}\n"


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["frobnicate"])
    assert exit.value.code == EXIT_USAGE
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_exit_codes_and_command_errors() -> None:
    assert (EXIT_OK, EXIT_FOUND, EXIT_USAGE) == (0, 1, 2)
    assert CommandError("bad").exit_code == EXIT_USAGE
    assert CommandError("found", exit_code=EXIT_FOUND).exit_code == EXIT_FOUND
