"""Layer 8: the pytest plugin, registered as ``memactor`` through the ``pytest11`` entry point.

Installing memactor installs the plugin; ``-p no:memactor`` turns it off. Async tests
need pytest-trio, which ``pip install 'memactor[pytest]'`` installs beside pytest; the
plugin says so in one line when it is missing. Its public surface is pytest's: the
``memactor_system`` fixture (async trio tests), the ``memactor_run`` fixture (plain
tests; its value is a :class:`SystemRunner`), the ``memactor_limit`` and
``memactor_no_leaks`` markers, and the ``--memactor-baseline``, ``--memactor-tolerance``,
``--memactor-baseline-update`` and ``--memactor-report`` options. The hook names below are
what pytest looks for; do not list this module in ``pytest_plugins`` (it is loaded
already).
"""

from ._plugin import memactor_run as memactor_run
from ._plugin import memactor_system as memactor_system
from ._plugin import pytest_addoption as pytest_addoption
from ._plugin import pytest_configure as pytest_configure
from ._plugin import pytest_report_header as pytest_report_header
from ._plugin import pytest_runtest_call as pytest_runtest_call
from ._plugin import pytest_runtest_setup as pytest_runtest_setup
from ._plugin import pytest_sessionfinish as pytest_sessionfinish
from ._plugin import pytest_terminal_summary as pytest_terminal_summary
from ._run import SystemRunner as SystemRunner
