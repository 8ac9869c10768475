"""Byte sizes as people write them: ``parse_size("64 MiB")`` and ``format_size(n)``.

Every place memactor reads a size from a person (a budget, a tolerance, a pool cap) goes
through :func:`parse_size`, and every place it shows one goes through :func:`format_size`,
so the two always agree on units.
"""

from __future__ import annotations

import re

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    # Decimal units, as disk and network vendors use them.
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    # Binary units, as memory is sized.
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
    # Single letters mean binary units, as in most memory settings.
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "t": 2**40,
    "p": 2**50,
}

_UNITS_HELP = (
    "B; K, M, G, T, P or KiB, MiB, GiB, TiB, PiB (powers of 1024); "
    "KB, MB, GB, TB, PB (powers of 1000); any case"
)
"""Every unit :func:`parse_size` accepts, as the error for an unknown one lists them."""

_SIZE_RE = re.compile(r"^\s*([+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+]?\d+)?)\s*([A-Za-z]*)\s*$")

_BINARY_STEPS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

_MAX_PARSED = 2**64 - 1
"""The most bytes a string may name: every size memactor keeps fits an unsigned 64-bit int."""


def parse_size(value: int | str) -> int:
    """Return the number of bytes that *value* names.

    *value* is a non-negative ``int`` (returned as it is) or a string such as ``"4096"``,
    ``"64 MiB"``, ``"1.5GB"`` or ``"512k"``. Units are case-insensitive: ``KB``, ``MB``,
    ``GB``, ``TB``, ``PB`` are powers of 1000; ``KiB`` ... ``PiB`` and the single letters
    ``K``, ``M``, ``G``, ``T``, ``P`` are powers of 1024.

    Raises :class:`ValueError` naming the input when it is negative, not a number, has an
    unknown unit, does not come to a whole number of bytes (``"1.5 B"``) or names more
    than ``2**64 - 1`` bytes, and
    :class:`TypeError` for anything that is neither an ``int`` nor a ``str``.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"size must be an int or a string like '64 MiB', not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative, got {value}")
        if value > _MAX_PARSED:
            raise ValueError(f"size {value} is too large: at most 2**64 - 1 bytes")
        return value
    match = _SIZE_RE.match(value)
    if match is None:
        raise ValueError(f"cannot read {value!r} as a size; write e.g. '4096', '64 MiB' or '1.5GB'")
    number, unit = match.groups()
    multiplier = _UNITS.get(unit.lower())
    if multiplier is None:
        raise ValueError(f"unknown unit {unit!r} in size {value!r}; the units are {_UNITS_HELP}")
    # Imported here: decimal and fractions cost more than the rest of this layer, and a
    # program (or ``memactor --help``) that never reads a size need not pay for them.
    from decimal import Decimal
    from fractions import Fraction

    decimal = Decimal(number)  # the regex admits only valid decimals
    # Refuse a huge exponent before exact arithmetic builds a million-digit number.
    if decimal and decimal.adjusted() > 20:
        raise ValueError(f"size {value!r} is too large: at most 2**64 - 1 bytes")
    exact = Fraction(decimal) * multiplier  # exact, unlike a 28-digit decimal context
    if exact.denominator != 1:
        raise ValueError(f"size {value!r} is not a whole number of bytes ({float(exact)} B)")
    if exact > _MAX_PARSED:
        raise ValueError(f"size {value!r} is too large: at most 2**64 - 1 bytes")
    return int(exact)


def format_size(n: int, *, signed: bool = False) -> str:
    """Format *n* bytes for people, in binary units: ``"0 B"``, ``"1023 B"``, ``"1.5 KiB"``.

    Whole multiples of a unit print without a fraction (``"64 MiB"``); others with one
    decimal (``"1.5 GiB"``, rounded half to even). Negative sizes (deltas) keep their sign;
    with *signed* a positive size gets a ``+``. Exact byte counts belong in JSON output;
    this is for tables and charts.
    """
    sign = "-" if n < 0 else ("+" if signed and n > 0 else "")
    magnitude = abs(n)
    step = 0
    while step + 1 < len(_BINARY_STEPS) and magnitude >= 1024 ** (step + 1):
        step += 1
    unit = _BINARY_STEPS[step]
    if step == 0:
        return f"{sign}{magnitude} {unit}"
    scale = 1024**step
    if magnitude % scale == 0:
        return f"{sign}{magnitude // scale} {unit}"
    text = f"{magnitude / scale:.1f}"
    if text == "1024.0" and step + 1 < len(_BINARY_STEPS):
        text, unit = "1.0", _BINARY_STEPS[step + 1]
    return f"{sign}{text} {unit}"
