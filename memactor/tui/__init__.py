"""Layer 7: the Textual terminal UI, a live view of one process's memory.

:class:`MemactorApp` redraws from what its feed posts (views, a lost connection, notes);
:func:`run` watches a pipeline in this process. The feed runs as a trio guest on
Textual's asyncio loop (see :class:`TrioGuest`).
"""

from ._actions import FeedActions as FeedActions
from ._actions import RemoteActions as RemoteActions
from ._actions import SystemActions as SystemActions
from ._app import DisplayStatistics as DisplayStatistics
from ._app import MemactorApp as MemactorApp
from ._bridge import FeedFunction as FeedFunction
from ._bridge import FeedItem as FeedItem
from ._bridge import FeedNote as FeedNote
from ._bridge import Post as Post
from ._bridge import TrioGuest as TrioGuest
from ._inprocess import Main as Main
from ._inprocess import pipeline_app as pipeline_app
from ._inprocess import run as run
from ._model import Dashboard as Dashboard
