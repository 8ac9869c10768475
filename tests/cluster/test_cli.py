"""``memactor aggregate``'s errors: each names the problem and exits 2."""

from __future__ import annotations

import pytest

from memactor.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "0"], "--rate must be above 0 and at most 1000, got 0.0"),
        (["--heartbeat-timeout", "-1"], "--heartbeat-timeout must be above 0, got -1.0"),
        (["tcp://127.0.0.1:notaport"], "tcp://127.0.0.1:notaport"),
        (["--prometheus", "host:port"], "--prometheus: bad address 'host:port': the port must"),
    ],
)
def test_bad_usage_is_named(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["aggregate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("memactor aggregate: ")
    assert message in err
