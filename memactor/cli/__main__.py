"""``python -m memactor.cli``: the same as the ``memactor`` command."""

import sys

from ._main import main

sys.exit(main())
