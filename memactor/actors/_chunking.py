"""Pure N-dimensional chunking: the slices that tile an array shape with a chunk shape.

A shape is cut along every axis into runs of the chunk's length; the last run of an axis
is shorter when the length does not divide evenly (an *edge* chunk). Chunks are listed in
C order: the last axis varies fastest, as NumPy lays out a C-contiguous array.

- A 0-d shape ``()`` with chunk shape ``()`` is one chunk whose index is ``()``, which
  selects the whole 0-d array (the empty product is one).
- An axis of length 0 gives no chunks at all: an empty array has nothing to tile.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence
from typing import SupportsIndex


def _check(
    shape: Sequence[SupportsIndex], chunk_shape: Sequence[SupportsIndex]
) -> tuple[list[int], list[int]]:
    """Validate the pair and return them as lists of plain ints."""
    sizes = [_as_int(value, "shape") for value in shape]
    chunk_sizes = [_as_int(value, "chunk_shape") for value in chunk_shape]
    if len(sizes) != len(chunk_sizes):
        raise ValueError(
            f"chunk_shape {tuple(chunk_sizes)} has {len(chunk_sizes)} dimensions, "
            f"shape {tuple(sizes)} has {len(sizes)}"
        )
    for axis, size in enumerate(sizes):
        if size < 0:
            raise ValueError(f"shape {tuple(sizes)} has a negative length on axis {axis}")
    for axis, chunk in enumerate(chunk_sizes):
        if chunk < 1:
            raise ValueError(
                f"chunk_shape {tuple(chunk_sizes)} has a non-positive length on axis {axis}"
            )
    return sizes, chunk_sizes


def _as_int(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must hold integers, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]  # checked by the except
    except TypeError:
        raise TypeError(f"{what} must hold integers, got {value!r}") from None


def chunk_grid(
    shape: Sequence[SupportsIndex], chunk_shape: Sequence[SupportsIndex]
) -> tuple[int, ...]:
    """How many chunks each axis is cut into (``ceil(length / chunk length)`` per axis).

    Raises:
      ValueError: the ranks differ, a chunk length is below 1 or a length is negative.
      TypeError: a length is not an integer.
    """
    sizes, chunk_sizes = _check(shape, chunk_shape)
    return tuple(-(-size // chunk) for size, chunk in zip(sizes, chunk_sizes, strict=True))


def chunk_count(shape: Sequence[SupportsIndex], chunk_shape: Sequence[SupportsIndex]) -> int:
    """How many chunks :func:`chunk_slices` gives: the product of :func:`chunk_grid`.

    One for a 0-d shape, zero when any axis has length 0. Raises as :func:`chunk_grid`.
    """
    return math.prod(chunk_grid(shape, chunk_shape))


def chunk_slices(
    shape: Sequence[SupportsIndex], chunk_shape: Sequence[SupportsIndex]
) -> list[tuple[slice, ...]]:
    """The index of every chunk of *shape* cut by *chunk_shape*, in C order.

    Each index is a tuple of ``slice(start, stop)`` with one slice per axis, usable as
    ``array[index]``. Every element of the shape lies in exactly one chunk. A chunk's
    length on an axis equals the chunk length there, except on the axis's last chunk
    when the length does not divide evenly. See the module docstring for 0-d shapes and
    empty axes.

    Raises:
      ValueError: the ranks differ, a chunk length is below 1 or a length is negative.
      TypeError: a length is not an integer.
    """
    sizes, chunk_sizes = _check(shape, chunk_shape)
    per_axis = [
        [slice(start, min(start + chunk, size)) for start in range(0, size, chunk)]
        for size, chunk in zip(sizes, chunk_sizes, strict=True)
    ]
    return list(itertools.product(*per_axis))
