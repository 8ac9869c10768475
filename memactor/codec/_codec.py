"""msgpack payloads: event batches, snapshots and stream frames, each with a schema version.

Every payload is a msgpack map ``{"memactor": SCHEMA_VERSION, "type": TYPE, ...body}``.
Decoding checks the marker, the version and the type before it looks at the body, and
every failure is one :class:`CodecError` saying what was expected. The decoder caps
payload size and container lengths so that a hostile or corrupt payload cannot make us
allocate more than a small multiple of its own length.
"""

from __future__ import annotations

import json
import re
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

_CLAIMED_LENGTH: Final = re.compile(r"(\d+) exceeds max_(?:array|map)_len")
_JSON_CONTAINERS: Final = (str, list, dict)


def container_cap(limits: DecodeLimits, data_bytes: int) -> int:
    """The longest array or map to accept in *data_bytes* of msgpack.

    Every item takes at least a byte, so no honest container is longer than its data;
    msgpack allocates a container's length before reading its items, so a header
    claiming more would cost memory out of all proportion to the payload.
    """
    return min(limits.max_items, max(data_bytes, 1 << 16))


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


def frame(type_: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Return *body* with the marker, version and type added (for msgpack or JSON)."""
    return {MAGIC_KEY: SCHEMA_VERSION, "type": type_, **body}


def decode(data: bytes, type_: str, *, limits: DecodeLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Unpack a payload of *type_* and return its map, marker and version included.

    Raises :class:`CodecError` when *data* is too large, not msgpack, truncated, carries
    trailing bytes, is not a memactor payload, has another schema version or type.
    """
    return unframe(unpack(data, limits=limits, what=f"memactor {type_} payload"), type_)


def unpack(
    data: bytes | bytearray | memoryview,
    *,
    limits: DecodeLimits = DEFAULT_LIMITS,
    what: str = "payload",
) -> object:
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
            max_array_len=container_cap(limits, len(data)),
            max_map_len=container_cap(limits, len(data)),
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
        claimed = _CLAIMED_LENGTH.search(str(exc))
        if "incomplete" in str(exc) or (claimed and int(claimed[1]) <= limits.max_items):
            # A container longer than the data left is one cut short.
            reason = "truncated"
        else:
            reason = f"not valid msgpack ({exc})"
        raise CodecError(f"expected a {what}: {reason}") from None


def decode_json(
    text: str | bytes | bytearray, type_: str, *, limits: DecodeLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Parse a JSON payload of *type_*; the same checks and *limits* as :func:`decode`.

    Raises :class:`CodecError` when *text* is over ``limits.max_bytes``, not JSON (or not
    UTF-8), nested deeper than Python's parser goes, holds an integer of more digits than
    Python converts (4,300 by default), a string over ``limits.max_string_bytes`` UTF-8
    bytes or an array or object over ``limits.max_items`` entries, and for what
    :func:`unframe` refuses.
    """
    what = f"memactor {type_} payload"
    if len(text) > limits.max_bytes:
        raise CodecError(f"payload of {len(text)} bytes is over the limit of {limits.max_bytes}")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise CodecError(f"expected a {what}: JSON nested too deeply") from None
    except ValueError as exc:
        # JSONDecodeError, UnicodeDecodeError and an integer of too many digits.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CodecError(f"expected a {what}: not valid JSON ({reason})") from None
    _check_json_limits(obj, limits, what)
    return unframe(obj, type_)


def _check_json_limits(obj: object, limits: DecodeLimits, what: str) -> None:
    """Apply the msgpack decoder's container and string limits to parsed JSON."""
    pending = [obj]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if len(value) > limits.max_string_bytes // 4 and (
                len(value.encode("utf-8", "surrogatepass")) > limits.max_string_bytes
            ):
                raise CodecError(
                    f"expected a {what}: a string of {len(value.encode('utf-8', 'surrogatepass'))}"
                    f" bytes is over the limit of {limits.max_string_bytes}"
                )
        elif isinstance(value, list | dict):
            if len(value) > limits.max_items:
                kind = "an array" if isinstance(value, list) else "an object"
                raise CodecError(
                    f"expected a {what}: {kind} of {len(value)} entries is over the limit "
                    f"of {limits.max_items}"
                )
            items = value.items() if isinstance(value, dict) else [value]
            for entries in items:
                pending.extend(v for v in entries if type(v) in _JSON_CONTAINERS)


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
