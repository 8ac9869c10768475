"""msgpack payloads: event batches, snapshots and stream frames, each with a schema version.

Every payload is a msgpack map ``{"memactor": SCHEMA_VERSION, "type": TYPE, ...body}``.
Decoding checks the marker, the version and the type before it looks at the body, and
every failure is one :class:`CodecError` saying what was expected. The decoder caps
payload size and container lengths so that a hostile or corrupt payload cannot make us
allocate more than a small multiple of its own length.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import msgpack

from .._errors import MemactorError

SCHEMA_VERSION: Final = 1
"""The version written into every payload; decoding any other version is an error."""

MAGIC_KEY: Final = "memactor"


class CodecError(MemactorError):
    """A payload or file could not be decoded: truncated, damaged, foreign, or too new."""


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Upper bounds the decoder enforces before it allocates anything large."""

    max_bytes: int = 1 << 30
    """Largest payload accepted, in bytes."""
    max_items: int = 1 << 24
    """Largest array or map length accepted (events in a batch, components, ...)."""
    max_string_bytes: int = 1 << 16
    """Longest string (a component or owner name, a label)."""


DEFAULT_LIMITS: Final = DecodeLimits()


def encode(type_: str, body: Mapping[str, Any]) -> bytes:
    """Pack *body* as a payload of *type_* with the schema version."""
    return msgpack.packb(frame(type_, body), use_bin_type=True)


def write(file: BinaryIO, type_: str, body: Mapping[str, Any]) -> None:
    """Write the payload :func:`encode` would make to *file*, without building it whole.

    Maps are written entry by entry and :class:`memoryview` values (a snapshot's columns)
    go to *file* as msgpack ``bin`` straight from their buffers, so writing a large
    snapshot needs no second copy of its columns. Raises what *file* raises.
    """
    packer = msgpack.Packer(use_bin_type=True)
    _write_value(file, packer, frame(type_, body))


def _write_value(file: BinaryIO, packer: msgpack.Packer, value: object) -> None:
    if isinstance(value, dict):
        file.write(packer.pack_map_header(len(value)))
        for key, item in value.items():
            file.write(packer.pack(key))
            _write_value(file, packer, item)
    elif isinstance(value, memoryview):
        data = value.cast("B") if value.format != "B" or value.ndim != 1 else value
        file.write(b"\xc6" + len(data).to_bytes(4, "big"))
        file.write(data)
    else:
        file.write(packer.pack(value))


def read(file: BinaryIO, type_: str, *, limits: DecodeLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Read one payload of *type_* from *file* (to its end); :func:`decode`'s checks.

    The file is read in chunks rather than whole, so a payload's large ``bin`` values
    are the only copy of its data held while it is read. Raises :class:`CodecError`
    as :func:`decode` does; :class:`OSError` as *file* raises it.
    """
    what = f"memactor {type_} payload"
    unpacker = msgpack.Unpacker(
        file,
        raw=False,
        strict_map_key=True,
        read_size=1 << 20,
        max_buffer_size=limits.max_bytes,
        max_str_len=limits.max_string_bytes,
        max_bin_len=limits.max_bytes,
        max_array_len=limits.max_items,
        max_map_len=limits.max_items,
        max_ext_len=0,
    )
    try:
        obj = unpacker.unpack()
    except msgpack.OutOfData:
        raise CodecError(f"expected a {what}: truncated") from None
    except (ValueError, msgpack.UnpackException) as exc:
        raise CodecError(f"expected a {what}: not valid msgpack ({exc})") from None
    try:
        unpacker.unpack()
    except msgpack.OutOfData:
        return unframe(obj, type_)
    except (ValueError, msgpack.UnpackException):
        pass
    if not isinstance(obj, dict):
        raise CodecError(f"expected a {what}, found something else")
    raise CodecError(f"expected one {what}, found trailing bytes after it")


def frame(type_: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Return *body* with the marker, version and type added (for msgpack or JSON)."""
    return {MAGIC_KEY: SCHEMA_VERSION, "type": type_, **body}


def decode(data: bytes, type_: str, *, limits: DecodeLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Unpack a payload of *type_* and return its map, marker and version included.

    Raises :class:`CodecError` when *data* is too large, not msgpack, truncated, carries
    trailing bytes, is not a memactor payload, has another schema version or type.
    """
    return unframe(unpack(data, limits=limits, what=f"memactor {type_} payload"), type_)


def unpack(data: bytes, *, limits: DecodeLimits = DEFAULT_LIMITS, what: str = "payload") -> object:
    """Unpack one msgpack value within *limits*, whatever it holds.

    Raises :class:`CodecError` (its message says it expected *what*) when *data* is too
    large, not msgpack, truncated, or followed by trailing bytes.
    """
    if len(data) > limits.max_bytes:
        raise CodecError(f"payload of {len(data)} bytes is over the limit of {limits.max_bytes}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=limits.max_string_bytes,
            max_bin_len=limits.max_bytes,
            max_array_len=limits.max_items,
            max_map_len=limits.max_items,
            max_ext_len=0,
        )
    except msgpack.ExtraData as extra:
        # The stubs lack ExtraData.unpacked, the value read before the extra bytes.
        if not isinstance(getattr(extra, "unpacked", None), dict):
            # Random bytes parse as a small value followed by "trailing" garbage.
            raise CodecError(f"expected a {what}, found something else") from None
        raise CodecError(f"expected one {what}, found trailing bytes after it") from None
    except (ValueError, msgpack.UnpackException) as exc:
        # Truncated data raises ValueError("Unpack failed: incomplete input") in msgpack.
        reason = "truncated" if "incomplete" in str(exc) else f"not valid msgpack ({exc})"
        raise CodecError(f"expected a {what}: {reason}") from None


def decode_json(text: str | bytes, type_: str) -> dict[str, Any]:
    """Parse a JSON payload of *type_*; the same checks as :func:`decode`."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CodecError(f"expected a memactor {type_} payload: not valid JSON ({exc})") from None
    return unframe(obj, type_)


def unframe(obj: object, type_: str) -> dict[str, Any]:
    """Check an unpacked payload's marker, version and type; return it."""
    if not isinstance(obj, dict) or MAGIC_KEY not in obj:
        raise CodecError(f"expected a memactor {type_} payload, found something else")
    version = obj[MAGIC_KEY]
    if type(version) is not int or version != SCHEMA_VERSION:
        raise CodecError(
            f"expected schema version {SCHEMA_VERSION}, found {version!r}; "
            "this payload was written by another memactor version"
        )
    if obj.get("type") != type_:
        raise CodecError(
            f"expected a memactor {type_} payload, found a {obj.get('type')!r} payload"
        )
    return obj
