"""TimeSeries and SeriesView: bounded history that halves its resolution and keeps peaks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memactor.metrics import SeriesView, TimeSeries
from memactor.metrics._series import SampleTimes


def fill(series: TimeSeries, values: list[int]) -> None:
    """Append one sample per value at times 0, 1, 2, ...; in use is half the reserve."""
    for time_ns, value in enumerate(values):
        series.append(time_ns, value, value // 2)


@pytest.mark.parametrize("capacity", [0, 1, 3, 7, -2])
def test_capacity_must_be_even_and_at_least_two(capacity: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^capacity must be an even number of at least 2, got {capacity}$"
    ):
        TimeSeries(capacity)


def test_a_new_series_is_empty() -> None:
    series = TimeSeries(4)
    assert (len(series), series.capacity, series.stride) == (0, 4, 1)
    view = series.view()
    assert len(view) == 0
    assert view.stride == 1
    assert view.times_ns.dtype == np.int64


def test_below_capacity_every_sample_is_a_point() -> None:
    series = TimeSeries(8)
    fill(series, [5, 1, 9])
    view = series.view()
    assert view.times_ns.tolist() == [0, 1, 2]
    assert view.bytes_reserved.tolist() == [5, 1, 9]
    assert view.bytes_in_use.tolist() == [2, 0, 4]
    assert view.stride == 1


def test_a_full_series_halves_keeping_the_later_time_and_the_larger_bytes() -> None:
    series = TimeSeries(4)
    fill(series, [5, 1, 2, 9])
    assert (len(series), series.stride) == (4, 1)
    series.append(4, 3, 1)  # full: merge pairs, then every two samples make one point
    assert series.stride == 2
    series.append(5, 4, 0)
    view = series.view()
    assert view.times_ns.tolist() == [1, 3, 5]
    assert view.bytes_reserved.tolist() == [5, 9, 4]
    assert view.bytes_in_use.tolist() == [2, 4, 1]


def test_a_hundred_thousand_samples_stay_bounded_and_evenly_spaced() -> None:
    series = TimeSeries(512)
    for time_ns in range(100_000):
        series.append(time_ns, time_ns % 1000, 0)
        assert len(series) <= 512
    view = series.view()
    # 100_000 samples need 196 strides of 512 ... the stride doubled 8 times: 256.
    assert view.stride == 256
    assert len(view) == 100_000 // 256
    assert np.all(np.diff(view.times_ns) == 256)
    assert view.times_ns[0] == 255


@pytest.mark.parametrize("capacity", [2, 4, 6, 10])
def test_the_stride_doubles_each_time_the_series_fills(capacity: int) -> None:
    series = TimeSeries(capacity)
    strides = []
    for time_ns in range(2_000):
        series.append(time_ns, 0, 0)
        strides.append(series.stride)
    changes = [b for a, b in itertools.pairwise(strides) if a != b]
    assert changes == [2 ** (n + 1) for n in range(len(changes))]


@settings(max_examples=60)
@given(
    capacity=st.sampled_from([2, 4, 6, 8]),
    values=st.lists(st.integers(0, 2**40), max_size=200),
)
def test_each_point_is_the_max_of_the_samples_it_stands_for(
    capacity: int, values: list[int]
) -> None:
    series = TimeSeries(capacity)
    fill(series, values)
    view = series.view()
    stride = view.stride
    assert len(view) <= capacity
    # Every sample is in exactly one point, or waits (fewer than a stride) for the next.
    covered = len(view) * stride
    assert 0 <= len(values) - covered < stride
    for index in range(len(view)):
        chunk = values[index * stride : (index + 1) * stride]
        assert view.bytes_reserved[index] == max(chunk)  # no peak is lost
        assert view.bytes_in_use[index] == max(v // 2 for v in chunk)
        assert view.times_ns[index] == (index + 1) * stride - 1  # the latest sample's time


def test_a_view_is_a_read_only_copy() -> None:
    series = TimeSeries(4)
    fill(series, [1, 2])
    view = series.view()
    for array in (view.times_ns, view.bytes_reserved, view.bytes_in_use):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 99
    fill(series, [7, 7, 7, 7, 7])  # appending later does not change an earlier view
    assert view.bytes_reserved.tolist() == [1, 2]
    assert len(view) == 2
    with pytest.raises(AttributeError):
        view.stride = 4  # type: ignore[misc]  # the point of the test


def test_views_compare_by_content_and_are_not_hashable() -> None:
    one, two = TimeSeries(4), TimeSeries(4)
    fill(one, [1, 2, 3])
    fill(two, [1, 2, 3])
    assert one.view() == two.view()
    two.append(3, 1, 1)
    assert one.view() != two.view()
    nothing = np.zeros(0, dtype=np.int64)
    empty = SeriesView(nothing, nothing, nothing)
    assert empty == TimeSeries(2).view()
    assert empty != SeriesView(nothing, nothing, nothing, stride=2)
    assert (empty == "a series") is False
    with pytest.raises(TypeError):
        hash(empty)


runs_of_samples = st.lists(
    st.tuples(st.integers(0, 70), st.integers(0, 2**40), st.integers(0, 2**40)), max_size=12
)
"""Runs of samples of equal bytes: (how many, reserved, in use)."""


@settings(max_examples=80)
@given(
    capacity=st.sampled_from([2, 4, 6, 8, 32]),
    runs=runs_of_samples,
)
def test_extend_gives_the_points_of_one_append_per_sample(
    capacity: int, runs: list[tuple[int, int, int]]
) -> None:
    one_by_one, in_runs = TimeSeries(capacity), TimeSeries(capacity)
    now = 0
    for length, reserved, in_use in runs:
        times = np.arange(now, now + length, dtype=np.int64) * 3
        now += length
        for time_ns in times.tolist():
            one_by_one.append(time_ns, reserved, in_use)
        in_runs.extend(times, reserved, in_use)
        assert in_runs.view() == one_by_one.view()
        assert len(in_runs) == len(one_by_one)


@settings(max_examples=80)
@given(
    capacity=st.sampled_from([2, 4, 6, 8, 32, 512]),
    runs=runs_of_samples,
)
def test_extend_then_append_gives_the_points_of_the_two_calls(
    capacity: int, runs: list[tuple[int, int, int]]
) -> None:
    two_calls, one_call = TimeSeries(capacity), TimeSeries(capacity)
    now, last = 0, (0, 0)
    for length, reserved, in_use in runs:
        times = np.arange(now, now + length, dtype=np.int64) * 3
        now += length + 1
        two_calls.extend(times, *last)
        two_calls.append(3 * now - 3, reserved, in_use)
        one_call.extend_then_append(times, *last, 3 * now - 3, reserved, in_use)
        last = (reserved // 2, in_use // 3)
        assert one_call.view() == two_calls.view()
        assert len(one_call) == len(two_calls)


def test_sample_times_remember_the_latest_window() -> None:
    times = SampleTimes(4)
    for time_ns in range(10, 70, 10):
        times.append(time_ns)
    assert (times.count, times.window) == (6, 4)
    assert times.between(2, 6).tolist() == [30, 40, 50, 60]  # wraps around the ring
    assert times.between(5, 6).tolist() == [60]
    assert times.between(6, 6).tolist() == []
    with pytest.raises(IndexError, match=r"^samples 1\.\.3 are not within the last 4$"):
        times.between(1, 3)
    with pytest.raises(ValueError, match=r"^window must be at least 1, got 0$"):
        SampleTimes(0)
