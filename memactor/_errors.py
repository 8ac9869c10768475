"""The base of memactor's own errors.

memactor reuses trio's vocabulary where it fits (``trio.ClosedResourceError``,
``trio.BrokenResourceError``, ``trio.WouldBlock``) and raises a subclass of
:class:`MemactorError` for everything that is memactor's own: a damaged payload or
file, a misused lease, an unknown component.
"""

from __future__ import annotations


class MemactorError(Exception):
    """Base class of every error that memactor raises on its own account."""


def sole_error(error: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (else *error* itself):
    what failed, once trio's nurseries have wrapped it on the way out."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
