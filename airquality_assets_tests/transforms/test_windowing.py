"""Sequence tensors: validity never crosses gaps or locations, splits and scalers don't leak."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from airquality_assets.transforms.features import (
    CALENDAR_FEATURES,
    MissingFeatureError,
    default_feature_names,
    feature_matrix,
)
from airquality_assets.transforms.windowing import (
    EmptyFeatureError,
    EmptySplitError,
    InsufficientDataError,
    SequenceTensors,
    SplitSpec,
    batch_windows,
    build_sequence_tensors,
    tensor_summary,
    windows,
)

FRACTIONS = SplitSpec(train_end=None, validation_end=None)
SMALL = ["pm2_5", "temp"]


def make_frame(
    hours: int,
    locations: Sequence[str] = ("beijing",),
    start: str = "2020-01-01",
    seed: int = 0,
) -> pd.DataFrame:
    """A realistic hourly_observations frame: daily + yearly cycles, noise, every weather
    column the default features need; a full grid, sorted by (location, time)."""
    rng = np.random.default_rng(seed)
    parts = []
    for offset, location in enumerate(locations):
        time = pd.date_range(start, periods=hours, freq="h", tz="UTC")
        hour = time.hour.to_numpy()
        day = time.dayofyear.to_numpy()
        daily = np.sin(2 * np.pi * hour / 24)
        yearly = np.cos(2 * np.pi * day / 365.25)
        parts.append(
            pd.DataFrame(
                {
                    "location": location,
                    "time": time,
                    "pm2_5": np.abs(80 + 10 * offset + 25 * daily + 40 * yearly)
                    + rng.gamma(2.0, 5.0, hours),
                    "temp": 12 - 15 * yearly + 4 * daily + rng.normal(0, 1, hours),
                    "dew": -2 - 10 * yearly + rng.normal(0, 2, hours),
                    "humidity": np.clip(50 + 20 * rng.standard_normal(hours), 5, 100),
                    "pressure": 1015 + 8 * yearly + rng.normal(0, 3, hours),
                    "windspeed": rng.gamma(2.0, 4.0, hours),
                    "winddir": rng.uniform(0, 360, hours),
                    "is_rain": (rng.random(hours) < 0.05).astype(float),
                    "is_snow": 0.0,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def naive_valid_ends(
    frame: pd.DataFrame, features: Sequence[str], targets: Sequence[str], lookback: int, horizons
) -> list[int]:
    """Window validity the slow, obvious way: one Python check per candidate end."""
    values = feature_matrix(frame, features)
    target_values = frame[list(targets)].to_numpy(dtype=float)
    times = frame["time"].to_numpy()
    locations = frame["location"].to_numpy()
    max_h = max(horizons)
    out = []
    for t in range(lookback - 1, len(frame) - max_h):
        rows = range(t - lookback + 1, t + max_h + 1)
        same_place = all(locations[r] == locations[t] for r in rows)
        consecutive = all(
            times[r + 1] - times[r] == np.timedelta64(1, "h") for r in list(rows)[:-1]
        )
        inputs_ok = np.isfinite(values[t - lookback + 1 : t + 1]).all()
        targets_ok = all(np.isfinite(target_values[t + h]).all() for h in horizons)
        if same_place and consecutive and inputs_ok and targets_ok:
            out.append(t)
    return out


def all_ends(tensors: SequenceTensors) -> np.ndarray:
    return np.sort(np.concatenate(list(tensors.ends.values())))


def test_windows_never_include_a_hole_and_count_is_exact() -> None:
    frame = make_frame(100)
    frame.loc[50, "pm2_5"] = np.nan  # a feature and a target: no window may touch row 50
    frame.loc[30, "temp"] = np.nan  # only a feature: blocks inputs, not target rows
    tensors = build_sequence_tensors(frame, SMALL, ["pm2_5"], lookback=4, horizons=[1, 2])

    # candidates t = 3..97 (95); row 50 kills t = 48..53 (6); row 30 kills t = 30..33 (4)
    total = sum(e.size for e in tensors.ends.values()) + sum(tensors.purged.values())
    assert total == 95 - 6 - 4
    ends = all_ends(tensors)
    assert not np.isin(ends, np.arange(48, 54)).any()
    assert not np.isin(ends, np.arange(30, 34)).any()
    assert np.isin(34, ends) and np.isin(29, ends)  # row 30 may be a target row of t=28/29
    assert set(ends) <= set(naive_valid_ends(frame, SMALL, ["pm2_5"], 4, [1, 2]))
    x, _ = batch_windows(tensors, ends)
    assert np.isfinite(x).all()


def test_missing_grid_row_is_a_gap_too() -> None:
    frame = make_frame(60).drop(index=30).reset_index(drop=True)  # 1 h jump in the grid
    tensors = build_sequence_tensors(frame, SMALL, ["pm2_5"], 4, [1, 2], split=FRACTIONS)
    times = tensors.times
    for end in all_ends(tensors):
        span = times[end - 3 : end + 3]
        assert (np.diff(span) == 3600).all()
    expected = naive_valid_ends(frame, SMALL, ["pm2_5"], 4, [1, 2])
    assert len(all_ends(tensors)) + sum(tensors.purged.values()) == len(expected)


def test_windows_never_cross_a_location_boundary() -> None:
    frame = make_frame(50, locations=("beijing", "delhi"))
    tensors = build_sequence_tensors(frame, SMALL, ["pm2_5"], 4, [1, 2], split=FRACTIONS)
    ends = all_ends(tensors)
    total = ends.size + sum(tensors.purged.values())
    assert total == 2 * (50 - 3 - 2)  # per location t = 3..47
    codes = tensors.location_codes
    assert (codes[ends - 3] == codes[ends + 2]).all()
    assert tensors.locations == ["beijing", "delhi"]
    # the naive check agrees, including across the boundary rows 47..52
    assert set(ends) <= set(naive_valid_ends(frame, SMALL, ["pm2_5"], 4, [1, 2]))


def test_unsorted_input_is_sorted_first() -> None:
    frame = make_frame(80, locations=("a", "b"))
    shuffled = frame.sample(frac=1.0, random_state=1)
    one = build_sequence_tensors(frame, SMALL, ["pm2_5"], 4, [1, 2], split=FRACTIONS)
    two = build_sequence_tensors(shuffled, SMALL, ["pm2_5"], 4, [1, 2], split=FRACTIONS)
    np.testing.assert_array_equal(one.features, two.features)
    for split in one.ends:
        np.testing.assert_array_equal(one.ends[split], two.ends[split])


def test_date_split_purges_and_respects_ranges() -> None:
    frame = make_frame(31 * 24)  # January 2020
    spec = SplitSpec(train_end="2020-01-20", validation_end="2020-01-25")
    tensors = build_sequence_tensors(frame, None, ["pm2_5"], split=spec)
    assert tensors.split_mode == "dates"
    cut_val = pd.Timestamp("2020-01-21", tz="UTC").timestamp()
    cut_test = pd.Timestamp("2020-01-26", tz="UTC").timestamp()
    end_times = {k: tensors.times[v] for k, v in tensors.ends.items()}
    assert (end_times["train"] < cut_val).all()
    assert ((end_times["validation"] >= cut_val) & (end_times["validation"] < cut_test)).all()
    assert (end_times["test"] >= cut_test).all()
    # purge: every target hour of a train window lies before the validation period
    assert (end_times["train"] + 24 * 3600 < cut_val).all()
    assert (end_times["validation"] + 24 * 3600 < cut_test).all()
    assert tensors.purged["train"] == 24 and tensors.purged["validation"] == 24
    assert tensors.split_range("validation") == (
        "2020-01-21T00:00:00+00:00",
        "2020-01-25T23:00:00+00:00",
    )


def test_default_split_uses_beijing_dates_or_falls_back_to_fractions() -> None:
    years = make_frame(24 * (365 * 5 + 1), start="2010-01-01")
    tensors = build_sequence_tensors(years, None, ["pm2_5"])
    assert tensors.split_mode == "dates"
    test_years = pd.to_datetime(tensors.times[tensors.ends["test"]], unit="s").year
    assert set(test_years) == {2014}

    small = make_frame(24 * 40, start="2013-03-01")  # does not span 2012-12-31 / 2013-12-31
    fallback = build_sequence_tensors(small, None, ["pm2_5"])
    assert fallback.split_mode == "fractions"
    sizes = np.array([fallback.ends[s].size + fallback.purged[s] for s in fallback.ends])
    np.testing.assert_allclose(sizes / sizes.sum(), [0.70, 0.15, 0.15], atol=0.01)
    assert (
        fallback.times[fallback.ends["train"]].max()
        < fallback.times[fallback.ends["validation"]].min()
    )


def test_scaler_sees_training_rows_only() -> None:
    frame = make_frame(31 * 24)
    spec = SplitSpec(train_end="2020-01-20", validation_end="2020-01-25")
    base = build_sequence_tensors(frame, None, ["pm2_5"], split=spec)

    test_hour = frame["time"] == pd.Timestamp("2020-01-28 05:00", tz="UTC")
    changed_test = frame.copy()
    changed_test.loc[test_hour, ["pm2_5", "temp"]] = [5000.0, 60.0]
    after_test = build_sequence_tensors(changed_test, None, ["pm2_5"], split=spec)
    for name in ("feature_mean", "feature_std", "target_mean", "target_std"):
        np.testing.assert_array_equal(getattr(base.scaler, name), getattr(after_test.scaler, name))

    train_hour = frame["time"] == pd.Timestamp("2020-01-05 05:00", tz="UTC")
    changed_train = frame.copy()
    changed_train.loc[train_hour, ["pm2_5", "temp"]] = [5000.0, 60.0]
    after_train = build_sequence_tensors(changed_train, None, ["pm2_5"], split=spec)
    assert not np.array_equal(base.scaler.target_mean, after_train.scaler.target_mean)
    assert not np.array_equal(base.scaler.feature_std, after_train.scaler.feature_std)

    train_rows = base.times < pd.Timestamp("2020-01-21", tz="UTC").timestamp()
    np.testing.assert_allclose(
        base.scaler.feature_mean, base.features[train_rows].mean(axis=0), rtol=1e-5, atol=1e-6
    )
    is_snow = base.feature_names.index("is_snow")  # constant 0: std floored to 1, no /0
    assert base.scaler.feature_std[is_snow] == 1.0


def test_shapes_and_feature_order() -> None:
    frame = make_frame(31 * 24)
    spec = SplitSpec(train_end="2020-01-20", validation_end="2020-01-25")
    tensors = build_sequence_tensors(frame, None, ["pm2_5"], split=spec)
    assert tensors.feature_names == default_feature_names(["pm2_5"])
    assert tensors.target_columns == [0]
    assert tensors.features.dtype == np.float32 and tensors.features.flags.c_contiguous
    assert tensors.times.dtype == np.int64
    x, y = windows(tensors, "train")
    assert x.shape == (tensors.ends["train"].size, 24, len(tensors.feature_names))
    assert y.shape == (tensors.ends["train"].size, 24, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(
        x[0, :, 0], frame["pm2_5"].to_numpy(np.float32)[tensors.ends["train"][0] - 23 :][:24]
    )


def test_windows_equal_naive_slices() -> None:
    frame = make_frame(400, locations=("a", "b"))
    frame.loc[frame.sample(n=15, random_state=3).index, "pm2_5"] = np.nan
    horizons = [1, 3, 6]
    tensors = build_sequence_tensors(frame, None, ["pm2_5"], 8, horizons, split=FRACTIONS)
    matrix = feature_matrix(frame, tensors.feature_names)
    target = frame["pm2_5"].to_numpy(np.float32)
    for split in ("train", "validation", "test"):
        ends = tensors.ends[split]
        x, y = windows(tensors, split)
        naive_x = np.array([matrix[e - 7 : e + 1] for e in ends])
        naive_y = np.array([[[target[e + h]] for h in horizons] for e in ends])
        np.testing.assert_array_equal(x, naive_x)
        np.testing.assert_array_equal(y, naive_y)


def test_batch_windows_rejects_out_of_range_ends() -> None:
    tensors = build_sequence_tensors(make_frame(60), SMALL, ["pm2_5"], 4, [1, 2], FRACTIONS)
    with pytest.raises(IndexError, match=r"\[3, 57\]"):
        batch_windows(tensors, [2])
    with pytest.raises(IndexError):
        batch_windows(tensors, [58])
    x, y = batch_windows(tensors, np.array([], dtype=np.int64))
    assert x.shape == (0, 4, 2) and y.shape == (0, 2, 1)


def test_too_little_data_says_what_is_needed() -> None:
    with pytest.raises(InsufficientDataError, match=r"needs 48 consecutive.*longest.* 40 hour"):
        build_sequence_tensors(make_frame(40), None, ["pm2_5"])
    gappy = make_frame(200)
    gappy.loc[::30, "pm2_5"] = np.nan  # complete runs of 29 hours
    with pytest.raises(InsufficientDataError, match=r"has 29 hour"):
        build_sequence_tensors(gappy, None, ["pm2_5"])


def test_empty_split_is_named_with_its_dates() -> None:
    frame = make_frame(31 * 24)
    validation = (frame["time"] >= "2020-01-21") & (frame["time"] < "2020-01-26")
    frame.loc[validation, "pm2_5"] = np.nan
    spec = SplitSpec(train_end="2020-01-20", validation_end="2020-01-25")
    with pytest.raises(
        EmptySplitError, match=r"'validation' \(2020-01-21T00:00:00\+00:00 \.\. 2020-01-25T23"
    ):
        build_sequence_tensors(frame, None, ["pm2_5"], split=spec)


def test_missing_feature_columns_are_all_named() -> None:
    frame = make_frame(100).drop(columns=["dew", "pressure"])
    with pytest.raises(MissingFeatureError, match=r"dew.*pressure"):
        build_sequence_tensors(frame, [*SMALL, "dew", "pressure"], ["pm2_5"], split=FRACTIONS)
    with pytest.raises(MissingFeatureError, match="no2"):
        build_sequence_tensors(make_frame(100), SMALL, ["no2"])


def test_defaults_leave_out_weather_the_station_does_not_report() -> None:
    """A station without dew, humidity or pressure (NaN or no column) and without a
    precipitation type: the default set trains on what exists and says what it left out."""
    frame = make_frame(24 * 40).drop(columns=["pressure"])
    frame[["dew", "humidity", "is_rain", "is_snow"]] = np.nan
    tensors = build_sequence_tensors(frame, None, ["pm2_5"], split=FRACTIONS)
    assert tensors.dropped_features == ["pressure", "dew", "humidity", "is_rain", "is_snow"]
    assert tensors.feature_names == [
        "pm2_5",
        "temp",
        "windspeed",
        "wind_u",
        "wind_v",
        *CALENDAR_FEATURES,
    ]
    assert all(len(tensors.ends[s]) > 0 for s in ("train", "validation", "test"))
    x, _ = windows(tensors, "train")
    assert np.isfinite(x).all()


def test_a_column_empty_only_in_the_training_period_is_dropped_too() -> None:
    frame = make_frame(24 * 40)
    frame.loc[frame["time"] < "2020-02-01", "dew"] = np.nan  # reported only after training
    tensors = build_sequence_tensors(frame, None, ["pm2_5"], split=FRACTIONS)
    assert tensors.dropped_features == ["dew"]


def test_an_explicit_list_naming_an_empty_column_fails_with_its_name() -> None:
    frame = make_frame(24 * 40)
    frame["humidity"] = np.nan
    with pytest.raises(EmptyFeatureError, match=r"\['humidity'\] have no value in the training"):
        build_sequence_tensors(frame, [*SMALL, "humidity"], ["pm2_5"], split=FRACTIONS)


def test_complete_data_keeps_the_whole_default_set() -> None:
    tensors = build_sequence_tensors(make_frame(24 * 40), None, ["pm2_5"], split=FRACTIONS)
    assert tensors.dropped_features == []
    assert tensors.feature_names == default_feature_names(["pm2_5"])


def test_split_spec_validation() -> None:
    with pytest.raises(ValueError, match="before"):
        SplitSpec(train_end="2014-01-01", validation_end="2013-01-01")
    with pytest.raises(ValueError, match="room for test"):
        SplitSpec(train_fraction=0.8, validation_fraction=0.2)
    with pytest.raises(ValueError, match="both"):
        SplitSpec(train_end=None)


def test_summary_reports_shapes_ranges_and_bytes() -> None:
    tensors = build_sequence_tensors(make_frame(500), None, ["pm2_5"], split=FRACTIONS)
    summary = tensor_summary(tensors)
    n_features = len(tensors.feature_names)
    train = summary["splits"]["train"]
    assert train["X_shape"] == [tensors.ends["train"].size, 24, n_features]
    assert train["y_shape"] == [tensors.ends["train"].size, 24, 1]
    assert train["first_window_end"] == "2020-01-01T23:00:00+00:00"
    windows_total = sum(e.size for e in tensors.ends.values())
    assert summary["materialised_window_bytes"] == windows_total * 4 * (24 * n_features + 24)
    assert summary["stored_bytes"] < summary["materialised_window_bytes"]
    assert summary["feature_names"] == tensors.feature_names
    import json

    json.dumps(summary)  # metadata must be JSON-serialisable


def test_relative_split_moves_with_the_newest_data() -> None:

    from airquality_assets.transforms.windowing import relative_split

    early = relative_split(pd.Timestamp("2014-03-31T23:00Z"), test_days=30, validation_days=60)
    assert (str(early.train_end), str(early.validation_end)) == ("2013-12-31", "2014-03-01")
    later = relative_split(pd.Timestamp("2014-06-30T05:00Z"), test_days=30, validation_days=60)
    assert (str(later.train_end), str(later.validation_end)) == ("2014-04-01", "2014-05-31")
    # the later model's training data include the earlier model's test window
    assert later.date_cuts()[0] > early.date_cuts()[1]


def test_the_test_window_is_capped_at_a_fifth_of_a_short_history() -> None:
    from airquality_assets.transforms.windowing import capped_test_days

    five_years = (pd.Timestamp("2010-01-01T00:00Z"), pd.Timestamp("2014-12-30T23:00Z"))
    assert capped_test_days(*five_years, test_days=90) == 90
    half_year = (pd.Timestamp("2013-10-01T00:00Z"), pd.Timestamp("2014-03-31T23:00Z"))
    assert capped_test_days(*half_year, test_days=90) == 36  # 182 days / 5
    assert capped_test_days(*half_year, test_days=30) == 30
    day = (pd.Timestamp("2014-03-31T00:00Z"), pd.Timestamp("2014-03-31T23:00Z"))
    assert capped_test_days(*day, test_days=90) == 1


def issued_forecasts(frame: pd.DataFrame, every: int, skip: Sequence[int] = ()) -> pd.DataFrame:
    """Perfect forecasts (the observations) issued every ``every`` hours for 48 h ahead,
    leaving out the issues numbered in ``skip``."""
    weather = ["temp", "dew", "humidity", "pressure", "windspeed", "winddir"]
    parts = []
    for location, rows in frame.groupby("location", sort=False):
        rows = rows.set_index("time")
        for number, issue in enumerate(rows.index[::every]):
            if number in skip:
                continue
            target = rows.loc[issue + pd.Timedelta(hours=1) : issue + pd.Timedelta(hours=48)]
            part = target[weather].reset_index()
            part.insert(0, "location", location)
            part.insert(1, "issue_time", issue)
            part.insert(3, "lead", ((part["time"] - issue) / pd.Timedelta(hours=1)).astype(int))
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_windows_carry_the_forecast_issued_by_their_end_and_count_those_without() -> None:
    frame = make_frame(24 * 20, locations=("a", "b"))
    skip = range(20, 40)  # a 5-day outage of the forecast feed at both locations
    forecasts = issued_forecasts(frame, every=6, skip=skip)
    plain = build_sequence_tensors(frame, SMALL, ["pm2_5"], 24, range(1, 25), FRACTIONS)
    tensors = build_sequence_tensors(
        frame, SMALL, ["pm2_5"], 24, range(1, 25), FRACTIONS, forecasts=forecasts
    )
    assert plain.future is None and tensors.future is not None
    assert tensors.future.shape == (len(frame), 24, len(tensors.future_names))
    ends = all_ends(tensors)
    # every kept window has its whole forecast block; the outage's windows are counted out
    assert np.isfinite(tensors.future[ends]).all()
    assert sum(tensors.no_forecast.values()) > 0
    kept_plus_unforecast = sum(e.size for e in tensors.ends.values()) + sum(
        tensors.no_forecast.values()
    )
    assert kept_plus_unforecast == sum(e.size for e in plain.ends.values())
    # a perfect forecast of hour t+h equals the observation of t+h
    temp = tensors.future_names.index("temp")
    observed = tensors.features[ends[:, None] + np.arange(1, 25)[None, :], SMALL.index("temp")]
    np.testing.assert_allclose(tensors.future[ends, :, temp], observed, rtol=1e-6)
    scaler = tensors.scaler
    assert scaler.future_mean is not None and scaler.future_mean.shape == (
        len(tensors.future_names),
    )
    assert "windows_without_forecast" in tensor_summary(tensors)["splits"]["train"]


def test_with_no_forecast_anywhere_the_error_says_so() -> None:
    frame = make_frame(24 * 5)
    late = issued_forecasts(frame, every=6).assign(issue_time=pd.Timestamp("2030-01-01", tz="UTC"))
    with pytest.raises(InsufficientDataError, match="weather forecast"):
        build_sequence_tensors(frame, SMALL, ["pm2_5"], 24, range(1, 25), FRACTIONS, late)


def test_an_input_one_whole_station_never_reports_is_an_error_naming_it() -> None:
    """Station b's precipitation is never reported (unknown, not dry): its windows would all
    be dropped without a word; the tensors refuse instead and say which station lacks what."""
    frame = make_frame(24 * 40, locations=("a", "b"))
    frame.loc[frame["location"] == "b", ["is_rain", "is_snow"]] = np.nan
    with pytest.raises(EmptyFeatureError, match=r"whole station \(b: is_rain, is_snow\)"):
        build_sequence_tensors(frame, None, ["pm2_5"], split=FRACTIONS)
    # the station alone: the default set leaves the unknown flags out and trains
    alone = frame[frame["location"] == "b"].reset_index(drop=True)
    tensors = build_sequence_tensors(alone, None, ["pm2_5"], split=FRACTIONS)
    assert tensors.dropped_features == ["is_rain", "is_snow"]
