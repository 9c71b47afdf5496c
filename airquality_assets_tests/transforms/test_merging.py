"""Merging onto the hourly grid, cleaning rules, and windowed == full recompute."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airquality_assets.columns import AQI, LOCATION, POLLUTANTS, TIME, WEATHER
from airquality_assets.transforms.cleaning import (
    clean_observations,
    influence_hours,
)
from airquality_assets.transforms.merging import OBSERVATION_COLUMNS, merge_hourly
from airquality_assets.transforms.parsing import parse_air_pollution, parse_many

T0 = pd.Timestamp("2024-01-01T00:00Z")
REPLAY = Path(__file__).resolve().parents[2] / "airquality_assets" / "data" / "replay"


def air_frame(location: str, hours: list[int], **columns: list[float]) -> pd.DataFrame:
    """An air-quality frame like the parser's: given hours after T0, other columns NaN."""
    frame = parse_many([], "", kind="air").reindex(range(len(hours)))
    frame[LOCATION] = pd.array([location] * len(hours), dtype="string")
    frame[TIME] = [T0 + pd.Timedelta(hours=h) for h in hours]
    for p in POLLUTANTS:
        frame[p] = np.asarray(columns.get(p, [np.nan] * len(hours)), dtype=float)
    frame[AQI] = pd.array(columns.get(AQI, [None] * len(hours)), dtype="Int64")
    return frame


def weather_frame(location: str, hours: list[int], **columns: list[float]) -> pd.DataFrame:
    frame = parse_many([], "", kind="weather").reindex(range(len(hours)))
    frame[LOCATION] = pd.array([location] * len(hours), dtype="string")
    frame[TIME] = [T0 + pd.Timedelta(hours=h) for h in hours]
    for w in WEATHER:
        frame[w] = np.asarray(columns.get(w, [np.nan] * len(hours)), dtype=float)
    return frame


# ---------------------------------------------------------------- merge


def test_merge_outer_joins_onto_a_full_grid_per_location() -> None:
    air = pd.concat(
        [air_frame("a", [0, 1, 2, 5], pm2_5=[1, 2, 3, 6]), air_frame("b", [10], pm2_5=[7])]
    )
    weather = weather_frame("a", [1, 2, 3, 4, 5, 6, 7], temp=[0, 1, 2, 3, 4, 5, 6])
    merged = merge_hourly(air, weather)
    assert tuple(merged.columns) == OBSERVATION_COLUMNS
    a = merged[merged[LOCATION] == "a"]
    assert len(a) == 8  # hours 0..7
    assert a["pm2_5"].isna().tolist() == [False, False, False, True, True, False, True, True]
    assert a["temp"].isna().tolist() == [True] + [False] * 7
    b = merged[merged[LOCATION] == "b"]
    assert b[TIME].tolist() == [T0 + pd.Timedelta(hours=10)]
    assert merged[LOCATION].dtype == "string" and merged[AQI].dtype == "Int64"
    assert str(merged[TIME].dtype) == "datetime64[ns, UTC]"


def test_merge_duplicate_rows_keep_last() -> None:
    air = air_frame("a", [0, 1, 1], pm2_5=[1, 2, 9])
    merged = merge_hourly(air, parse_many([], "", kind="weather"))
    assert merged["pm2_5"].tolist() == [1.0, 9.0]


def test_merge_refuses_naive_and_off_hour_times() -> None:
    air = air_frame("a", [0, 1])
    naive = air.assign(time=air[TIME].dt.tz_localize(None))
    with pytest.raises(TypeError, match="tz-aware"):
        merge_hourly(naive, parse_many([], "", kind="weather"))
    off = air.assign(time=air[TIME] + pd.Timedelta(minutes=30))
    with pytest.raises(ValueError, match="whole UTC hour"):
        merge_hourly(off, parse_many([], "", kind="weather"))


def test_merge_of_nothing_is_an_empty_typed_frame() -> None:
    merged = merge_hourly(pd.DataFrame(), parse_many([], "", kind="weather"))
    assert merged.empty and tuple(merged.columns) == OBSERVATION_COLUMNS


# ---------------------------------------------------------------- cleaning: gaps


def _series(values: list[float], column: str = "pm2_5") -> pd.DataFrame:
    hours = list(range(len(values)))
    return merge_hourly(
        air_frame("a", hours, **{column: values}), parse_many([], "", kind="weather")
    )


def test_short_gap_is_interpolated_long_gap_left_whole() -> None:
    nan = np.nan
    values = [10, 12, nan, nan, 18, 20, nan, nan, nan, nan, nan, 40, 41, nan]
    cleaned, stats = clean_observations(_series(values), interpolation_limit_hours=3)
    got = cleaned["pm2_5"].tolist()
    assert got[2:4] == pytest.approx([14.0, 16.0])  # 2-hour gap, linear
    assert all(np.isnan(got[6:11]))  # 5-hour gap: not even partly filled
    assert np.isnan(got[13])  # trailing gap: no value after it
    assert cleaned["pm2_5_interpolated"].tolist()[2:4] == [True, True]
    assert stats.interpolated["pm2_5"] == 2
    assert stats.missing_before["pm2_5"] == 8
    assert stats.missing_after["pm2_5"] == 6
    assert stats.unfilled_gaps["pm2_5"] == 2
    assert stats.longest_gap_hours["pm2_5"] == 5
    assert stats.rows == 14


def test_gap_equal_to_limit_is_filled_and_limit_zero_fills_nothing() -> None:
    values = [0.0, np.nan, np.nan, np.nan, 4.0]
    cleaned, _ = clean_observations(_series(values), interpolation_limit_hours=3)
    assert cleaned["pm2_5"].tolist() == pytest.approx([0, 1, 2, 3, 4])
    cleaned, stats = clean_observations(_series(values), interpolation_limit_hours=0)
    assert cleaned["pm2_5"].isna().sum() == 3 and stats.interpolated_total == 0


def test_wind_direction_interpolates_on_the_circle_and_flags_round() -> None:
    weather = weather_frame(
        "a", [0, 2, 3, 5], winddir=[350, 10, 90, 90], is_rain=[0, 1, 1, 1], temp=[0, 2, 3, 5]
    )
    air = air_frame("a", [0, 2], **{AQI: [2, 5]})
    cleaned, _ = clean_observations(merge_hourly(air, weather))
    assert cleaned["winddir"].iloc[1] == pytest.approx(0.0, abs=1e-9) or cleaned["winddir"].iloc[
        1
    ] == pytest.approx(360.0)
    assert cleaned["is_rain"].iloc[1] in (0.0, 1.0)
    assert cleaned[AQI].iloc[1] == 4  # 3.5 rounds half up, stays an integer
    assert cleaned["temp"].iloc[4] == pytest.approx(4.0)


def test_unknown_precipitation_stays_unknown_through_cleaning() -> None:
    """Never-reported precipitation (is_rain/is_snow NaN in every hour) is not filled in:
    cleaning keeps it NaN, counts it as an empty column, and leaves the others cleaned."""
    hours = list(range(48))
    weather = weather_frame("a", hours, temp=[float(h % 24) for h in hours])
    air = air_frame("a", hours, pm2_5=[10.0] * 48)
    cleaned, stats = clean_observations(merge_hourly(air, weather))
    assert len(cleaned) == 48
    assert cleaned["is_rain"].isna().all() and cleaned["is_snow"].isna().all()  # not 0.0
    assert cleaned["temp"].notna().all() and cleaned["pm2_5"].notna().all()
    assert "is_rain" in stats.as_metadata()["empty_columns"]


# ---------------------------------------------------------------- cleaning: outliers


def _realistic_pm25(hours: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    daily = 35 + 12 * np.sin(2 * np.pi * np.arange(hours) / 24)
    return np.clip(daily + rng.normal(0, 3, hours), 1, None)


def test_isolated_spike_removed_but_smog_episode_kept() -> None:
    values = _realistic_pm25(240)
    # A four-day smog episode building to ~1000 ug/m3, with hour-to-hour jitter.
    ramp = np.concatenate([np.linspace(60, 1000, 40), np.linspace(1000, 980, 16)])
    ramp = np.concatenate([ramp, np.linspace(980, 60, 40)])
    values[100:196] = ramp + np.random.default_rng(1).normal(0, 25, 96)
    values[60] = 600.0  # a lone reading between two ordinary hours
    cleaned, stats = clean_observations(_series(values.tolist()))
    assert cleaned["pm2_5_spike"].iloc[60] == 600.0
    assert cleaned["pm2_5"].iloc[60] == pytest.approx((values[59] + values[61]) / 2)
    assert cleaned["pm2_5_interpolated"].iloc[60]
    np.testing.assert_array_equal(cleaned["pm2_5"].to_numpy()[100:196], values[100:196])
    assert stats.outliers_spike["pm2_5"] == 1


def test_short_real_event_with_raised_neighbours_is_kept() -> None:
    values = _realistic_pm25(72)
    values[30:33] = [126.0, 237.0, 197.0]  # a three-hour plume, not a glitch
    cleaned, stats = clean_observations(_series(values.tolist()))
    assert cleaned["pm2_5"].iloc[30:33].tolist() == [126.0, 237.0, 197.0]
    assert stats.outliers_total == 0


def test_negative_concentration_and_impossible_humidity_removed() -> None:
    air = air_frame("a", [0, 1, 2], pm2_5=[10, -3, 12], no2=[5, 5, -0.5])
    weather = weather_frame("a", [0, 1, 2], humidity=[50, 120, 60], winddir=[10, 400, 30])
    cleaned, stats = clean_observations(merge_hourly(air, weather))
    assert cleaned["pm2_5"].tolist() == pytest.approx([10, 11, 12])  # removed, then filled
    assert np.isnan(cleaned["no2"].iloc[2])  # at the edge: left missing
    assert cleaned["humidity"].iloc[1] == pytest.approx(55)
    assert stats.outliers_bounds == {
        **{k: 0 for k in stats.outliers_bounds},
        "pm2_5": 1,
        "no2": 1,
        "humidity": 1,
        "winddir": 1,
    }


def test_outlier_rule_can_be_disabled_and_audit_columns_dropped() -> None:
    values = _realistic_pm25(48)
    values[20] = 900.0
    cleaned, stats = clean_observations(_series(values.tolist()), outlier_rule=None)
    assert cleaned["pm2_5"].iloc[20] == 900.0 and stats.outliers_total == 0
    assert "pm2_5_spike" not in cleaned
    plain, _ = clean_observations(_series(values.tolist()), audit_columns=False)
    assert tuple(plain.columns) == OBSERVATION_COLUMNS


def test_empty_columns_are_named_and_gaps_are_per_column_and_per_month() -> None:
    """co is never reported: it is named as empty, not counted as one 792-hour gap. A
    10-hour pm2_5 gap across the month boundary is 4 h in January and 6 h in February."""
    hours = 31 * 24 + 48  # January 2024 and two days of February
    pm = [20.0 + (h % 7) for h in range(hours)]
    for h in range(31 * 24 - 4, 31 * 24 + 6):
        pm[h] = np.nan
    pm[100] = np.nan  # a 1-hour gap, interpolated
    frame = merge_hourly(
        air_frame("a", list(range(hours)), pm2_5=pm, co=[np.nan] * hours),
        weather_frame("a", list(range(hours)), temp=[5.0] * hours),
    )
    _, stats = clean_observations(frame, by_month=True)
    assert stats.empty_columns["co"] == ["a"]
    assert stats.longest_gap_hours["co"] == 0 and stats.unfilled_gaps["co"] == 0
    assert stats.missing_after["co"] == hours  # still missing, counted as missing
    assert stats.longest_gap == ("pm2_5", 10)
    assert stats.unfilled_gaps_total == 1
    summary = stats.summary()
    assert "longest 10 h, pm2_5" in summary and "co" in summary.split("no value at all")[1]
    meta = stats.as_metadata()
    assert meta["longest_gap_hours"] == {"pm2_5": 10}
    assert "co" in meta["empty_columns"] and "temp" not in meta["empty_columns"]

    january, february = stats.by_month["2024-01|a"], stats.by_month["2024-02|a"]
    assert set(stats.by_month) == {"2024-01|a", "2024-02|a"}
    assert (january.rows, february.rows) == (31 * 24, 48)
    assert january.longest_gap_hours["pm2_5"] == 4 and february.longest_gap_hours["pm2_5"] == 6
    assert january.unfilled_gaps["pm2_5"] == february.unfilled_gaps["pm2_5"] == 1
    assert (january.interpolated["pm2_5"], february.interpolated["pm2_5"]) == (1, 0)
    assert january.empty_columns["co"] == february.empty_columns["co"] == ["a"]
    json.dumps(january.as_metadata())
    _, plain = clean_observations(frame)
    assert plain.by_month == {} and plain.longest_gap == stats.longest_gap


def test_clean_refuses_an_irregular_grid() -> None:
    frame = _series([1.0, 2.0, 3.0]).drop(index=1)
    with pytest.raises(ValueError, match="regular hourly grid"):
        clean_observations(frame)


def test_stats_as_metadata_is_plain() -> None:
    _, stats = clean_observations(_series([1.0, np.nan, 3.0]))
    meta = stats.as_metadata()
    assert meta["interpolated"] == 1 and meta["rows"] == 3
    json.dumps(meta)


# ---------------------------------------------------------------- incremental


def _gappy_sources(seed: int, hours: int, locations: tuple[str, ...] = ("a", "b")):  # type: ignore[no-untyped-def]
    """Real-looking air + weather: daily cycles, random gaps of 1-8 h, a few spikes/negatives."""
    rng = np.random.default_rng(seed)
    airs, weathers = [], []
    for k, loc in enumerate(locations):
        pm = _realistic_pm25(hours, seed + k)
        pm[rng.integers(0, hours, 6)] *= 15  # isolated spikes
        pm[rng.integers(0, hours, 3)] = -1.0  # impossible readings
        present = np.ones(hours, dtype=bool)
        for start in rng.integers(0, hours, hours // 40):
            present[start : start + rng.integers(1, 9)] = False
        cols = {p: pm * (1 + j / 10) for j, p in enumerate(POLLUTANTS)}
        aqi = np.clip(np.ceil(pm / 25), 1, 5).astype(int).tolist()
        h_air = np.flatnonzero(present).tolist()
        airs.append(
            air_frame(
                loc, h_air, **{p: v[present] for p, v in cols.items()}, aqi=[aqi[i] for i in h_air]
            )
        )
        w_present = np.ones(hours, dtype=bool)
        for start in rng.integers(0, hours, hours // 60):
            w_present[start : start + rng.integers(1, 6)] = False
        h_w = np.flatnonzero(w_present)
        temp = 5 + 8 * np.sin(2 * np.pi * np.arange(hours) / 24) + rng.normal(0, 1, hours)
        wdir = np.mod(np.cumsum(rng.normal(0, 20, hours)), 360)
        weathers.append(
            weather_frame(
                loc,
                h_w.tolist(),
                temp=temp[h_w],
                humidity=np.clip(60 + rng.normal(0, 15, hours), 0, 100)[h_w],
                winddir=wdir[h_w],
                pressure=1010 + rng.normal(0, 5, hours)[h_w],
                is_rain=(rng.uniform(size=hours) < 0.1).astype(float)[h_w],
            )
        )
    return pd.concat(airs, ignore_index=True), pd.concat(weathers, ignore_index=True)


def _split(frame: pd.DataFrame, lo: int | None, hi: int | None) -> pd.DataFrame:
    t = (frame[TIME] - T0) // pd.Timedelta(hours=1)
    mask = np.ones(len(frame), dtype=bool)
    if lo is not None:
        mask &= (t >= lo).to_numpy()
    if hi is not None:
        mask &= (t < hi).to_numpy()
    return frame[mask]


def _hours(frame: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    t = (frame[TIME] - T0) // pd.Timedelta(hours=1)
    return frame[((t >= lo) & (t < hi)).to_numpy()].reset_index(drop=True)


@pytest.mark.parametrize(("lo", "hi"), [(0, 240), (240, 480), (333, 334), (480, 720)])
def test_a_window_cleaned_with_a_day_of_context_equals_full_recompute(lo: int, hi: int) -> None:
    """What the monthly partitions rely on: a month cleaned together with the day on each
    side (its neighbouring months) is exactly the full recompute."""
    assert influence_hours(3) <= 24
    air, weather = _gappy_sources(seed=11, hours=720)
    full, _ = clean_observations(merge_hourly(air, weather))
    window, _ = clean_observations(
        merge_hourly(_split(air, lo - 24, hi + 24), _split(weather, lo - 24, hi + 24))
    )
    pd.testing.assert_frame_equal(_hours(window, lo, hi), _hours(full, lo, hi))


def test_hourly_windows_equal_full_recompute() -> None:
    air, weather = _gappy_sources(seed=5, hours=24 * 20)
    full, _ = clean_observations(merge_hourly(air, weather))
    bounds = [0, 24, 48, 49, 50, 51, 75, 100, 101, 168, *range(192, 24 * 20 + 1, 24)]
    for lo, hi in itertools.pairwise(bounds):
        window, _ = clean_observations(
            merge_hourly(_split(air, lo - 24, hi + 24), _split(weather, lo - 24, hi + 24))
        )
        pd.testing.assert_frame_equal(_hours(window, lo, hi), _hours(full, lo, hi))


def test_real_beijing_history_keeps_smog_and_cleans_windows_exactly() -> None:
    path = REPLAY / "owm_air_pollution.json.gz"
    if not path.exists():
        pytest.skip("replay data not present")
    doc = json.loads(gzip.decompress(path.read_bytes()))
    air = parse_air_pollution({"list": doc["list"][: 24 * 200]}, "beijing")
    none = parse_many([], "", kind="weather")
    full, full_stats = clean_observations(merge_hourly(air, none))
    assert full["pm2_5"].max() > 500  # real smog episodes survive cleaning
    assert full_stats.unfilled_gaps["pm2_5"] > 0
    cut = air[TIME].iloc[len(air) // 2]
    day = pd.Timedelta(hours=24)
    window, _ = clean_observations(merge_hourly(air[air[TIME] >= cut - day], none))
    pd.testing.assert_frame_equal(
        window[window[TIME] >= cut].reset_index(drop=True),
        full[full[TIME] >= cut].reset_index(drop=True),
    )
