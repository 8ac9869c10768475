"""The compiled ledger's block table against a dict: the same mapping, a bounded size.

An account's live blocks are a ``dict`` of packed records in pure Python and a
``memactor._native._ledger.Blocks`` where the ledger is compiled. Everything the ledger
and its readers do with them (look up, insert, rewrite, delete, iterate in insertion
order, the columns a snapshot copies) must give what the dict gives; and the table must
keep its promise of at most 64 bytes a live block, however blocks come and go.
"""

from __future__ import annotations

import random
import sys
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memactor.metrics._accounts import OWNER_MASK, OWNER_SHIFT, SIZE_MASK, TIME_SHIFT

# The table is tested whichever implementation this run selected: it is built either way.
core: Any = pytest.importorskip("memactor._native._ledger", reason="the extension is not built")


def packed(size: int, owner: int, time: int) -> int:
    return (time << TIME_SHIFT) | (owner << OWNER_SHIFT) | size


records = st.builds(
    packed,
    st.integers(0, SIZE_MASK),
    st.one_of(st.integers(0, 70_000), st.integers(0, OWNER_MASK)),
    st.integers(-(2**63), 2**63 - 1),
)
ids = st.one_of(st.integers(0, 40), st.integers(0, 2**63 - 1))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), ids, records),
        st.tuples(st.just("del"), ids, st.none()),
        st.tuples(st.just("get"), ids, st.none()),
    ),
    max_size=300,
)


def same(table: Any, reference: dict[Any, int]) -> None:
    assert len(table) == len(reference)
    assert bool(table) == bool(reference)
    assert list(table) == list(reference)
    assert table.keys() == list(reference.keys())
    assert table.values() == list(reference.values())
    assert table.items() == list(reference.items())
    assert table == reference
    block, size, owner, time = (np.full(len(table) + 2, -7, dtype=np.int64) for _ in range(4))
    assert table.copy_into(block, size, owner, time, 1) == len(table) + 1
    assert block[0] == block[-1] == -7
    block, size, owner, time = (column[1:-1] for column in (block, size, owner, time))
    assert block.tolist() == list(reference)
    assert size.tolist() == [v & SIZE_MASK for v in reference.values()]
    assert owner.tolist() == [(v >> OWNER_SHIFT) & OWNER_MASK for v in reference.values()]
    assert time.tolist() == [v >> TIME_SHIFT for v in reference.values()]


@settings(max_examples=200)
@given(operations)
def test_the_table_reads_as_the_dict_after_any_operations(ops: list[Any]) -> None:
    table, reference = core.Blocks(), {}
    for op, key, value in ops:
        if op == "set":
            table[key] = value
            reference[key] = value
        elif op == "del":
            if key in reference:
                del table[key]
                del reference[key]
            else:
                with pytest.raises(KeyError):
                    del table[key]
        else:
            assert table.get(key) == reference.get(key)
            assert (key in table) == (key in reference)
    same(table, reference)


def test_keys_find_the_ids_they_equal_as_in_a_dict() -> None:
    table, reference = core.Blocks(), dict[Any, int]()
    for block in (0, 1, 7, 2**40):
        table[block] = reference[block] = packed(block % 100, 1, block)
    odd: tuple[Any, ...] = (
        True,
        1.0,
        7.0,
        np.int64(7),
        np.uint8(1),
        2.0**40,
        1.5,
        -1,
        2**64,
        "1",
        None,
        (1,),
    )
    for key in odd:
        assert (key in table) == (key in reference), key
        assert table.get(key, "absent") == reference.get(key, "absent"), key
    table[1.0] = reference[1.0] = packed(3, 0, 9)  # a dict keeps the key 1, as the table
    same(table, reference)
    with pytest.raises(TypeError, match="block id"):
        table["x"] = 1
    with pytest.raises(TypeError, match="block id"):
        table[-1] = 1
    with pytest.raises(KeyError):
        table[5]
    with pytest.raises(TypeError):
        table[2] = "not a record"
    short = np.zeros(len(table) - 1, dtype=np.int64)
    with pytest.raises(ValueError, match="too short"):
        table.copy_into(short, short, short, short, 0)
    with pytest.raises(TypeError, match="int64"):
        table.copy_into(*(np.zeros(9, dtype=np.int32) for _ in range(4)), 0)


def test_other_numbers_find_the_ids_they_equal_and_unhashable_keys_raise_as_in_a_dict() -> None:
    table, reference = core.Blocks(), dict[Any, int]()
    # 2**61 - 1 is the modulus of Python's numeric hash: ids that share a hash with 0.
    for block in (0, 1, 7, 2**40, 2**61 - 1, 2**62):
        table[block] = reference[block] = packed(block % 100, 1, block)
    odd: tuple[Any, ...] = (
        Fraction(1),
        Fraction(2**62),
        Fraction(2**61 - 1),
        Fraction(3, 2),
        Fraction(-7),
        Fraction(2**63),
        Decimal(7),
        Decimal(2**40),
        Decimal("7.5"),
        complex(7, 0),
        complex(7, 1),
        frozenset(),
    )
    for key in odd:
        assert (key in table) == (key in reference), key
        assert table.get(key, "absent") == reference.get(key, "absent"), key
    del table[Fraction(7)], reference[Fraction(7)]
    same(table, reference)
    unhashables: tuple[Any, ...] = ([1], {})
    for unhashable in unhashables:
        for mapping in (table, reference):
            with pytest.raises(TypeError, match="unhashable"):
                unhashable in mapping  # noqa: B015


def test_owner_indexes_beyond_sixteen_bits_come_back_whole() -> None:
    table = core.Blocks()
    for block in range(1000):
        table[block] = packed(block, 65_535 + block * 16_000 % (OWNER_MASK - 65_535), block)
    for block in range(0, 1000, 2):
        table[block] = packed(block, block, -block)  # back below: the wide entry goes
    for block in range(1, 1000, 4):
        del table[block]
    for block, value in table.items():
        owner = (value >> OWNER_SHIFT) & OWNER_MASK
        if block % 2:
            assert owner == 65_535 + block * 16_000 % (OWNER_MASK - 65_535)
        else:
            assert (owner, value >> TIME_SHIFT) == (block, -block)


@pytest.mark.parametrize("pattern", ["fill", "fifo", "random"])
def test_the_table_holds_a_live_block_in_at_most_64_bytes(pattern: str) -> None:
    rng = random.Random(5)
    table = core.Blocks()
    live: list[int] = []
    worst = 0.0
    for step in range(200_000):
        if pattern == "fill" or not live or rng.random() < 0.55:
            table[step] = packed(4096, 3, step)
            live.append(step)
        else:
            index = 0 if pattern == "fifo" else rng.randrange(len(live))
            live[index], live[-1] = live[-1], live[index]
            del table[live.pop()]
        if len(live) >= 1000 and step % 97 == 0:
            worst = max(worst, (sys.getsizeof(table) - sys.getsizeof(core.Blocks())) / len(live))
    assert len(table) == len(live)
    assert 0 < worst <= 64
    for block in live:
        del table[block]
    assert not table
    assert sys.getsizeof(table) < 4096  # an emptied table gives memory back
