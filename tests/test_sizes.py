"""parse_size and format_size: the one way memactor reads and shows byte counts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memactor.events import _sizes, format_size, parse_size

KiB, MiB, GiB, TiB, PiB = (1024**n for n in range(1, 6))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("4096", 4096),
        ("+7", 7),
        ("12 B", 12),
        ("12b", 12),
        # Decimal units are powers of 1000 ...
        ("1 KB", 1000),
        ("1.5GB", 1_500_000_000),
        ("2 MB", 2_000_000),
        ("3 TB", 3 * 10**12),
        ("1 PB", 10**15),
        # ... binary units and single letters powers of 1024.
        ("1 KiB", KiB),
        ("64 MiB", 64 * MiB),
        ("1.5 GiB", 3 * GiB // 2),
        ("2 TiB", 2 * TiB),
        ("1 PiB", PiB),
        ("512k", 512 * KiB),
        ("3M", 3 * MiB),
        ("1 g", GiB),
        ("1T", TiB),
        ("1p", PiB),
        # Case does not matter, whitespace around the number and unit does not matter.
        ("64 mib", 64 * MiB),
        ("64 MIB", 64 * MiB),
        ("1 kb", 1000),
        ("  64MiB  ", 64 * MiB),
        ("\t8\tKiB\n", 8 * KiB),
        # Fractions and exponents that come to whole bytes.
        (".5 KiB", 512),
        ("5.", 5),
        ("0.25 MiB", MiB // 4),
        ("1e3", 1000),
        ("1E3 KiB", 1000 * KiB),
        ("1e+2 B", 100),
    ],
)
def test_parse_size_reads_what_people_write(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_decimal_and_binary_units_differ() -> None:
    assert parse_size("1 GB") == 10**9
    assert parse_size("1 GiB") == 2**30
    assert parse_size("1 G") == parse_size("1 GiB")


def test_parse_size_returns_an_int_unchanged() -> None:
    assert parse_size(0) == 0
    assert parse_size(123_456) == 123_456
    assert type(parse_size("1.5 KiB")) is int


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "MiB",
        "abc",
        "1 2",
        "1_000",
        "0x10",
        "-5",
        "-1 KiB",
        "1..5",
        ".",
        "1e",
        "1 MiB B",
        "nan",
        "inf",
        "1,5 MiB",
        "2e-3 MB",
    ],
)
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match=r"^(cannot read|unknown unit) .*"):
        parse_size(text)


@pytest.mark.parametrize("text", ["1 XB", "5 EiB", "5E", "3 bytes", "1 kibi"])
def test_parse_size_names_an_unknown_unit(text: str) -> None:
    with pytest.raises(
        ValueError, match=r"^unknown unit '\w+' in size '.*'; the units are B; "
    ) as error:
        parse_size(text)
    # Every unit parse_size accepts is listed, single letters included.
    listed = set(re.findall(r"\b[A-Za-z]+\b", str(error.value).partition("the units are ")[2]))
    for unit in ("B", "K", "M", "G", "T", "P", "KiB", "MiB", "GiB", "TiB", "PiB"):
        assert unit in listed, unit
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        assert unit in listed, unit
        assert parse_size(f"1 {unit}") == 1000 ** (1 + "KMGTP".index(unit[0]))
    assert {unit.lower() for unit in listed} >= {u for u in _sizes._UNITS if u}


@pytest.mark.parametrize(
    "text", ["1.5 B", "1.5", "0.1 KiB", "0.0000001 KB", "1.0000000000000000000000000001 KiB"]
)
def test_parse_size_refuses_a_fraction_of_a_byte(text: str) -> None:
    with pytest.raises(ValueError, match=r"^size '.*' is not a whole number of bytes \(.* B\)$"):
        parse_size(text)


def test_parse_size_is_exact_up_to_its_limit() -> None:
    assert parse_size("18446744073709551615") == 2**64 - 1
    assert parse_size("17179869183.75 GiB") == 17179869183 * GiB + 3 * GiB // 4


@pytest.mark.parametrize(
    "text",
    [
        "18446744073709551616",
        "16384 PiB",
        "1e20",
        "1e999999",
        "1e3000000",
        "1e100000 KiB",
        "0.001e9999",
    ],
)
def test_parse_size_refuses_more_than_64_bits_quickly(text: str) -> None:
    # A huge exponent must neither hang building a million-digit int nor leak a
    # decimal.Overflow: it is a ValueError like any other bad size.
    with pytest.raises(ValueError, match=r"^size '.*' is too large: at most 2\*\*64 - 1 bytes$"):
        parse_size(text)


def test_parse_size_refuses_a_negative_int() -> None:
    with pytest.raises(ValueError, match=r"^size must not be negative, got -1$"):
        parse_size(-1)


@pytest.mark.parametrize("value", [True, False, 1.5, None, b"64", [64]])
def test_parse_size_refuses_other_types(value: object) -> None:
    with pytest.raises(TypeError, match=r"^size must be an int or a string like '64 MiB', not .*$"):
        parse_size(value)  # type: ignore[arg-type]  # the point of the test


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (1280, "1.2 KiB"),  # 1.25 is exact in binary: rounds half to even
        (1792, "1.8 KiB"),  # 1.75: half to even goes up
        (1048524, "1023.9 KiB"),
        (1048525, "1.0 MiB"),  # 1023.95 KiB rounds to 1024.0: shown in the next unit
        (MiB - 1, "1.0 MiB"),
        (MiB, "1 MiB"),
        (64 * MiB, "64 MiB"),
        (3 * GiB // 2, "1.5 GiB"),
        (TiB, "1 TiB"),
        (PiB + PiB // 2, "1.5 PiB"),
        (2**60, "1 EiB"),
        (2**70, "1024 EiB"),  # no unit above EiB
        (2**70 + 2**59, "1024.5 EiB"),
    ],
)
def test_format_size_table(size: int, text: str) -> None:
    assert format_size(size) == text


def test_format_size_signs() -> None:
    assert format_size(-1536) == "-1.5 KiB"
    assert format_size(-5) == "-5 B"
    assert format_size(1536, signed=True) == "+1.5 KiB"
    assert format_size(-1536, signed=True) == "-1.5 KiB"
    assert format_size(0, signed=True) == "0 B"
    assert format_size(-MiB + 1) == "-1.0 MiB"


@given(st.integers(min_value=0, max_value=2**62))
def test_format_size_reads_back_close(size: int) -> None:
    text = format_size(size)
    number, unit = text.split(" ")
    value = (
        float(number)
        * {"B": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB, "PiB": PiB, "EiB": 2**60}[unit]
    )
    # One decimal in the shown unit: off by at most 0.05 of it (plus float noise).
    assert abs(value - size) <= 0.0501 * max(1.0, value)
    assert float(number) < 1024 or unit == "EiB"


@given(st.integers(min_value=0, max_value=2**50))
def test_parse_size_reads_plain_and_unit_forms_of_an_int(size: int) -> None:
    assert parse_size(str(size)) == size
    assert parse_size(f"{size} B") == size
    assert parse_size(f"{size}KiB") == size * KiB
    text = format_size(size)
    if "." not in text:  # a whole number of its unit reads back exactly
        assert parse_size(text) == size
