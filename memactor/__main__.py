"""``python -m memactor``: the same as the ``memactor`` command."""

import sys

from .cli import main

sys.exit(main())
