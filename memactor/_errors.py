"""The base of memactor's own errors.

memactor reuses trio's vocabulary where it fits (``trio.ClosedResourceError``,
``trio.BrokenResourceError``, ``trio.WouldBlock``) and raises a subclass of
:class:`MemactorError` for everything that is memactor's own: a damaged payload or
file, a misused lease, an unknown component.
"""

from __future__ import annotations


class MemactorError(Exception):
    """Base class of every error that memactor raises on its own account."""
