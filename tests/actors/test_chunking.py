"""Chunking: the slices tile a shape exactly, in C order, with only edge chunks smaller."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memactor.actors import chunk_count, chunk_grid, chunk_slices


@st.composite
def shapes_and_chunks(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    rank = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=rank, max_size=rank)))
    chunk = tuple(draw(st.lists(st.integers(1, 11), min_size=rank, max_size=rank)))
    return shape, chunk


@given(shapes_and_chunks())
def test_chunks_tile_the_shape_exactly_in_c_order(
    case: tuple[tuple[int, ...], tuple[int, ...]],
) -> None:
    shape, chunk_shape = case
    slices = chunk_slices(shape, chunk_shape)
    # Number every element in C order; the chunks, concatenated, must list each once, and
    # their first elements must increase in C order.
    numbers = np.arange(math.prod(shape)).reshape(shape)
    covered = np.zeros(shape, dtype=np.int64)
    starts = []
    for index in slices:
        assert len(index) == len(shape)
        assert all(s.step is None for s in index)
        covered[index] += 1
        starts.append(tuple(s.start for s in index))
    assert (covered == 1).all()
    assert starts == sorted(starts)
    assert sum(numbers[index].size for index in slices) == numbers.size


@given(shapes_and_chunks())
def test_only_edge_chunks_are_smaller(case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    shape, chunk_shape = case
    for index in chunk_slices(shape, chunk_shape):
        for s, length, chunk in zip(index, shape, chunk_shape, strict=True):
            assert 0 < s.stop - s.start <= chunk
            assert s.start % chunk == 0
            if s.stop - s.start < chunk:
                assert s.stop == length  # the axis's last chunk


@given(shapes_and_chunks())
def test_counts_match(case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    shape, chunk_shape = case
    grid = chunk_grid(shape, chunk_shape)
    assert grid == tuple(math.ceil(n / c) for n, c in zip(shape, chunk_shape, strict=True))
    assert chunk_count(shape, chunk_shape) == len(chunk_slices(shape, chunk_shape))
    assert chunk_count(shape, chunk_shape) == math.prod(grid)


def test_a_2d_example() -> None:
    assert chunk_slices((3, 5), (2, 2)) == [
        (slice(0, 2), slice(0, 2)),
        (slice(0, 2), slice(2, 4)),
        (slice(0, 2), slice(4, 5)),
        (slice(2, 3), slice(0, 2)),
        (slice(2, 3), slice(2, 4)),
        (slice(2, 3), slice(4, 5)),
    ]


def test_a_0d_shape_is_one_chunk_selecting_everything() -> None:
    assert chunk_slices((), ()) == [()]
    assert chunk_count((), ()) == 1
    assert np.array(7)[chunk_slices((), ())[0]] == 7


def test_an_empty_axis_gives_no_chunks() -> None:
    assert chunk_slices((4, 0, 3), (2, 2, 2)) == []
    assert chunk_count((4, 0, 3), (2, 2, 2)) == 0
    assert chunk_grid((4, 0, 3), (2, 2, 2)) == (2, 0, 2)


def test_numpy_integers_are_accepted() -> None:
    shape = (np.int64(2),)
    assert chunk_slices(shape, (np.int64(1),)) == [(slice(0, 1),), (slice(1, 2),)]


@pytest.mark.parametrize(
    ("shape", "chunk_shape", "message"),
    [
        ((4, 4), (2,), r"^chunk_shape \(2,\) has 1 dimensions, shape \(4, 4\) has 2$"),
        ((), (1,), r"^chunk_shape \(1,\) has 1 dimensions, shape \(\) has 0$"),
        ((4, 4), (2, 0), r"^chunk_shape \(2, 0\) has a non-positive length on axis 1$"),
        ((4,), (-3,), r"^chunk_shape \(-3,\) has a non-positive length on axis 0$"),
        ((4, -1), (2, 2), r"^shape \(4, -1\) has a negative length on axis 1$"),
    ],
)
def test_bad_shapes_raise_value_error(
    shape: tuple[int, ...], chunk_shape: tuple[int, ...], message: str
) -> None:
    for function in (chunk_slices, chunk_count, chunk_grid):
        with pytest.raises(ValueError, match=message):
            function(shape, chunk_shape)


@pytest.mark.parametrize(
    ("shape", "chunk_shape", "message"),
    [
        ((4,), (2.0,), r"^chunk_shape must hold integers, got 2\.0$"),
        ((True,), (1,), r"^shape must hold integers, got True$"),
    ],
)
def test_non_integers_raise_type_error(
    shape: tuple[object, ...], chunk_shape: tuple[object, ...], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        chunk_slices(shape, chunk_shape)  # type: ignore[arg-type]  # the point of the test
