"""OWM AQI bands: half-open [low, high) intervals, NaN -> 0, negatives rejected."""

from __future__ import annotations

import numpy as np
import pytest

from airquality_assets.aqi import AQI_BREAKPOINTS, aqi_band, has_aqi_scale, overall_aqi

# Every band edge of OpenWeatherMap's published Air Pollution API index table.
TABLE = {
    "so2": (20, 80, 250, 350),
    "no2": (40, 70, 150, 200),
    "pm10": (20, 50, 100, 200),
    "pm2_5": (10, 25, 50, 75),
    "o3": (60, 100, 140, 180),
    "co": (4400, 9400, 12400, 15400),
}


def test_table_matches_reference() -> None:
    assert {k: tuple(int(e) for e in v) for k, v in AQI_BREAKPOINTS.items()} == TABLE


@pytest.mark.parametrize("pollutant", sorted(TABLE))
def test_edges_belong_to_the_upper_band(pollutant: str) -> None:
    edges = TABLE[pollutant]
    values = [0.0, *[e for e in edges], *[np.nextafter(e, 0) for e in edges], 1e6]
    bands = aqi_band(pollutant, values)
    assert bands[0] == 1
    assert list(bands[1:5]) == [2, 3, 4, 5]  # exactly on the edge: worse band
    assert list(bands[5:9]) == [1, 2, 3, 4]  # just below the edge: better band
    assert bands[-1] == 5


def test_vectorised_any_shape_and_nan_is_zero() -> None:
    values = np.array([[5.0, np.nan], [30.0, 80.0]])
    assert aqi_band("pm2_5", values).tolist() == [[1, 0], [3, 5]]
    assert aqi_band("pm2_5", 12.0).item() == 2


def test_negative_and_unscaled_pollutants_raise() -> None:
    with pytest.raises(ValueError, match="negative"):
        aqi_band("o3", [-1.0])
    with pytest.raises(KeyError, match="nh3"):
        aqi_band("nh3", [1.0])
    assert not has_aqi_scale("nh3") and not has_aqi_scale("no") and has_aqi_scale("co")


def test_overall_is_worst_known_band() -> None:
    bands = {"pm2_5": np.array([1, 0, 2]), "o3": np.array([3, 0, 1])}
    assert overall_aqi(bands).tolist() == [3, 0, 2]
