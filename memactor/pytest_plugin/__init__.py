"""Layer 8: the pytest plugin, registered as ``memactor`` through the ``pytest11`` entry point.

Installing memactor installs the plugin; ``-p no:memactor`` turns it off. Its public
surface is pytest's: the ``memactor_system`` fixture, the ``memactor_limit`` and
``memactor_no_leaks`` markers, and the ``--memactor-baseline``, ``--memactor-tolerance``,
``--memactor-baseline-update`` and ``--memactor-report`` options. The names below are the
hooks and the fixture pytest looks for; do not list this module in ``pytest_plugins``
(it is loaded already).
"""

from ._plugin import memactor_system as memactor_system
from ._plugin import pytest_addoption as pytest_addoption
from ._plugin import pytest_configure as pytest_configure
from ._plugin import pytest_runtest_call as pytest_runtest_call
from ._plugin import pytest_runtest_setup as pytest_runtest_setup
from ._plugin import pytest_sessionfinish as pytest_sessionfinish
from ._plugin import pytest_terminal_summary as pytest_terminal_summary
