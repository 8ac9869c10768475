"""Layer 8: the ``memactor`` command line."""

from ._main import main as main
