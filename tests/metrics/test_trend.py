"""Trend analysis: steady growth is flagged, bursts, plateaus and short runs are not."""

from __future__ import annotations

import numpy as np
import pytest

from memactor.metrics import SeriesView, TrendConfig, analyze_trend

SECOND = 1_000_000_000


def series(in_use: list[int] | np.ndarray, step_ns: int = SECOND // 10) -> SeriesView:
    values = np.asarray(in_use, dtype=np.int64)
    times = np.arange(len(values), dtype=np.int64) * step_ns
    return SeriesView(times, values.copy(), values)


def test_steady_growth_is_flagged_with_its_slope() -> None:
    # 1 KiB every 100 ms for 30 s, with seeded jitter of a few hundred bytes.
    rng = np.random.default_rng(1)
    values = np.arange(300) * 1024 + rng.integers(0, 512, 300)
    trend = analyze_trend(series(values), component="cache", device="cpu")
    assert trend.growing
    assert trend.reason == "steady growth"
    assert trend.slope_bytes_per_s == pytest.approx(10240, rel=0.01)
    assert trend.r_squared > 0.99
    assert trend.points == 300
    assert trend.duration_s == pytest.approx(29.9)
    assert (trend.component, trend.device) == ("cache", "cpu")


def test_exact_line_has_perfect_fit() -> None:
    trend = analyze_trend(series([100 * i for i in range(60)]))
    assert trend.slope_bytes_per_s == pytest.approx(1000)
    assert trend.r_squared == pytest.approx(1.0)
    assert trend.net_growth_bytes == 5900


def test_burst_that_comes_back_is_not_flagged() -> None:
    values = [0] * 100 + [50_000_000] * 50 + [0] * 150
    trend = analyze_trend(series(values))
    assert not trend.growing
    assert trend.net_growth_bytes == 0


def test_a_sawtooth_pool_working_set_is_not_flagged() -> None:
    values = [(i % 20) * 4096 for i in range(400)]
    assert not analyze_trend(series(values)).growing


def test_noisy_growth_below_the_fit_threshold_is_not_steady() -> None:
    rng = np.random.default_rng(3)
    values = np.arange(200) * 10 + rng.integers(0, 20_000, 200)
    trend = analyze_trend(series(values))
    assert not trend.growing
    assert trend.reason.startswith("growth is not steady (R² ")


def test_too_few_points_or_too_short_is_not_judged() -> None:
    assert analyze_trend(series([1, 2, 3])).reason == "too few points (3 < 8)"
    assert analyze_trend(series([])).reason == "too few points (0 < 8)"
    short = analyze_trend(series([i * 1000 for i in range(20)]))
    assert short.reason == "too short (1.9 s < 5 s)"
    assert not short.growing


def test_flat_and_shrinking_series_do_not_grow() -> None:
    assert analyze_trend(series([4096] * 100)).reason == "no growth"
    assert analyze_trend(series([10_000 - 10 * i for i in range(100)])).reason == "no growth"


def test_thresholds_are_configurable_and_checked() -> None:
    values = list(range(100))  # 10 B/s
    assert analyze_trend(series(values)).growing
    strict = TrendConfig(min_slope_bytes_per_s=11)
    assert not analyze_trend(series(values), config=strict).growing
    with pytest.raises(ValueError, match=r"^min_points must be at least 3"):
        TrendConfig(min_points=2)
    with pytest.raises(ValueError, match=r"^min_r_squared must be within \[0, 1\]"):
        TrendConfig(min_r_squared=1.5)
    with pytest.raises(ValueError, match=r"must not be negative$"):
        TrendConfig(min_duration_s=-1)
