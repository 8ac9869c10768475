"""Payload files: bounded reads, msgpack columns read without a copy, and safe saves.

A file is read whole into one buffer of at most ``limits.max_bytes`` bytes, whatever
``stat`` says, and only if it is a regular file (a FIFO would block, ``/dev/zero`` never
ends). :func:`decode_buffer` then unpacks it so that the ``bin`` values of the top-level
map, and of the maps in it, are read-only views of that buffer, not copies: a
snapshot's block columns cost the file's size once.

A save writes a temporary file that only it can have opened (``O_EXCL | O_NOFOLLOW``,
a random name ``.NAME.XXXXXXXX.partial`` beside the target), syncs it to disk, renames
it over the target and syncs the directory. A symlink planted at any name is never
followed, two savers never share a temporary file, and a save killed midway leaves at
worst a ``.NAME.*.partial`` file that :func:`is_partial` recognises and loading refuses.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgpack
import numpy as np

from ._codec import DEFAULT_LIMITS, CodecError, DecodeLimits, container_cap, unframe, unpack

PARTIAL_SUFFIX: Final = ".partial"

# Maps larger than this are unpacked whole rather than walked entry by entry.
_WALKED_MAP_ITEMS: Final = 64
_BIN_HEADERS: Final = {0xC4: 1, 0xC5: 2, 0xC6: 4}
_MAP_HEADERS: Final = {0xDE: 2, 0xDF: 4}


def is_partial(path: str | os.PathLike[str]) -> bool:
    """True for the name of a save's temporary file (``.NAME.*.partial``), finished or not."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


def read_file(path: str | os.PathLike[str], *, limits: DecodeLimits = DEFAULT_LIMITS) -> memoryview:
    """The contents of the regular file at *path*, read within ``limits.max_bytes``, as a
    read-only byte view.

    Raises :class:`CodecError` (without the file's name) for a file that is not a regular
    file (a FIFO, a device, a socket) or holds more than ``limits.max_bytes`` bytes, even
    when it grows while read; :class:`IsADirectoryError` for a directory; other
    :class:`OSError` as opening or reading raises it.
    """
    # O_NONBLOCK: opening a FIFO with no writer would wait for one.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(info.st_mode):
            raise CodecError("not a regular file")
        if info.st_size > limits.max_bytes:
            raise CodecError(f"{info.st_size} bytes is over the limit of {limits.max_bytes}")
        os.set_blocking(fd, True)
        return _read_bounded(fd, info.st_size, limits.max_bytes)
    finally:
        os.close(fd)


def _read_bounded(fd: int, expected: int, max_bytes: int) -> memoryview:
    # An uninitialised array, not a bytearray: the read fills it, so zeroing it first
    # would only cost a pass over the file's size. One more byte tells a file that grew.
    buffer = np.empty(expected + 1, dtype=np.uint8)
    filled = 0
    while True:
        if filled == len(buffer):
            if filled > max_bytes:
                raise CodecError(f"more than {max_bytes} bytes is over the limit of {max_bytes}")
            grown = np.empty(min(2 * filled + (1 << 16), max_bytes + 1), dtype=np.uint8)
            grown[:filled] = buffer
            buffer = grown
        count = os.readv(fd, [buffer.data[filled:]])
        if count == 0:
            return buffer.data[:filled].toreadonly()
        filled += count


def decode_buffer(
    buffer: bytes | bytearray | memoryview, type_: str, *, limits: DecodeLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """:func:`~memactor.codec.decode` for a file's buffer, sharing its large values.

    The ``bin`` values of the top-level map and of the maps in it come back as read-only
    :class:`memoryview` slices of *buffer*, which therefore stays alive as long as they
    do; everything else is unpacked as :func:`~memactor.codec.decode` does. Raises
    :class:`CodecError` exactly where :func:`~memactor.codec.decode` would.
    """
    what = f"memactor {type_} payload"
    if len(buffer) > limits.max_bytes:
        raise CodecError(f"payload of {len(buffer)} bytes is over the limit of {limits.max_bytes}")
    view = memoryview(buffer).toreadonly()
    try:
        obj, end = _walk_map(view, 0, limits, depth=2)
    except _Unusual:
        # Anything unexpected is left to msgpack, whose errors are the reference.
        return unframe(unpack(view, limits=limits, what=what), type_)
    if end != len(view):
        raise CodecError(f"expected one {what}, found trailing bytes after it")
    return unframe(obj, type_)


class _Unusual(Exception):
    """The buffer is not a small map of maps and bins; unpack it whole."""


def _walk_map(
    view: memoryview, pos: int, limits: DecodeLimits, *, depth: int
) -> tuple[dict[str, Any], int]:
    count, pos = _map_header(view, pos)
    if count > min(limits.max_items, _WALKED_MAP_ITEMS):
        raise _Unusual
    walked: dict[str, Any] = {}
    for _ in range(count):
        key, pos = _unpack_at(view, pos, limits)
        if not isinstance(key, str) or pos >= len(view):
            raise _Unusual
        first = view[pos]
        value: Any
        if first in _BIN_HEADERS:
            width = _BIN_HEADERS[first]
            start = pos + 1 + width
            size = int.from_bytes(view[pos + 1 : start], "big")
            if start + size > len(view) or len(view[pos + 1 : start]) != width:
                raise _Unusual
            value, pos = view[start : start + size], start + size
        elif depth > 1 and (0x80 <= first <= 0x8F or first in _MAP_HEADERS):
            value, pos = _walk_map(view, pos, limits, depth=depth - 1)
        else:
            value, pos = _unpack_at(view, pos, limits)
        walked[key] = value
    return walked, pos


def _map_header(view: memoryview, pos: int) -> tuple[int, int]:
    if pos >= len(view):
        raise _Unusual
    first = view[pos]
    if 0x80 <= first <= 0x8F:
        return first & 0x0F, pos + 1
    width = _MAP_HEADERS.get(first)
    if width is None or pos + 1 + width > len(view):
        raise _Unusual
    return int.from_bytes(view[pos + 1 : pos + 1 + width], "big"), pos + 1 + width


class _Cursor:
    """A file-like view of a buffer from a position, for :class:`msgpack.Unpacker`."""

    def __init__(self, view: memoryview, pos: int) -> None:
        self.view = view
        self.pos = pos

    def read(self, size: int) -> bytes:
        chunk = self.view[self.pos : self.pos + size].tobytes()
        self.pos += len(chunk)
        return chunk


def _unpack_at(view: memoryview, pos: int, limits: DecodeLimits) -> tuple[object, int]:
    """The value at *pos* and the position after it."""
    unpacker = msgpack.Unpacker(
        _Cursor(view, pos),
        raw=False,
        strict_map_key=True,
        read_size=min(1 << 16, limits.max_bytes) or 1,
        max_buffer_size=max(limits.max_bytes, 1),
        max_str_len=limits.max_string_bytes,
        max_bin_len=limits.max_bytes,
        max_array_len=container_cap(limits, len(view) - pos),
        max_map_len=container_cap(limits, len(view) - pos),
        max_ext_len=0,
    )
    try:
        value = unpacker.unpack()
    except (msgpack.OutOfData, ValueError, msgpack.UnpackException):
        raise _Unusual from None
    return value, pos + unpacker.tell()


def save_atomically(target: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Call *write* on a new temporary file beside *target*, then put it at *target*.

    The temporary file ``.NAME.XXXXXXXX.partial`` is created exclusively, never through a
    symlink, with the permissions a new file gets under the umask; it is synced to disk,
    renamed over *target* (a symlink at *target* is replaced, not followed) and the
    directory is synced. On any failure it is removed and the error raised; *target*
    is then as it was. Raises what *write* raises and :class:`OSError` (for instance
    :class:`IsADirectoryError` when *target* is a directory).
    """
    path = Path(target)
    directory = path.parent
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
    partial = Path(name)
    try:
        with open(fd, "wb") as file:
            os.fchmod(fd, 0o666 & ~_umask())
            write(file)
            file.flush()
            os.fsync(fd)
        partial.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    _sync_directory(directory)
    return path


def _sync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # a platform that cannot open directories (Windows): the rename stands
    try:
        os.fsync(fd)
    except OSError as error:
        # Some file systems refuse to sync a directory; the rename itself stands.
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would, for a moment)."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as status,
    ):
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def read(file: BinaryIO, type_: str, *, limits: DecodeLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Read one payload of *type_* from *file*, to its end; :func:`decode_buffer`'s checks.

    At most ``limits.max_bytes + 1`` bytes are read. Raises :class:`CodecError` as
    :func:`~memactor.codec.decode` does, :class:`OSError` as *file* raises it.
    """
    data = bytearray()
    while len(data) <= limits.max_bytes:
        chunk = file.read(min(1 << 20, limits.max_bytes + 1 - len(data)))
        if not chunk:
            return decode_buffer(data, type_, limits=limits)
        data += chunk
    raise CodecError(f"more than {limits.max_bytes} bytes is over the limit of {limits.max_bytes}")
