"""The errors of the stream server and its clients."""

from __future__ import annotations

from .._errors import MemactorError


class RemoteError(MemactorError):
    """Talking to a metrics server failed: it cannot be reached, it went away, it sent
    something that is not the memactor stream protocol, or it did not answer in time.

    :func:`~memactor.remote.watch` does not raise it for a connection that breaks or
    cannot be made (it reports :class:`~memactor.remote.ConnectionLost` and retries);
    :func:`~memactor.remote.fetch_snapshot` and :func:`~memactor.remote.connect` do.
    """


class RefusedError(RemoteError):
    """The server refused the handshake: a missing or wrong token, or another protocol
    version. Retrying cannot help, so :func:`~memactor.remote.watch` raises it too."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code
        """Why: ``"token"`` or ``"version"``."""


class ProtocolError(RemoteError):
    """A frame that breaks the protocol: not msgpack, too large, of an unknown type, or a
    request with a bad field. The side that reads one closes the connection."""

    def __init__(self, message: str, *, code: str = "protocol") -> None:
        super().__init__(message)
        self.code = code
        """``"protocol"``, ``"too_large"`` or ``"version"``."""
