"""OWM AQI bands: half-open [low, high) intervals, NaN -> 0, negatives rejected."""

from __future__ import annotations

import numpy as np
import pytest

from airquality_assets.aqi import AQI_BREAKPOINTS, aqi_band, has_aqi_scale, overall_aqi

# A few edges of OpenWeatherMap's published index table (Air Pollution API docs), each the
# lowest concentration of its band: (pollutant, concentration in ug/m3, band).
PUBLISHED_EDGES = [
    ("pm2_5", 10.0, 2),
    ("pm2_5", 75.0, 5),
    ("pm10", 50.0, 3),
    ("no2", 150.0, 4),
    ("o3", 60.0, 2),
    ("so2", 350.0, 5),
    ("co", 9400.0, 3),
]


@pytest.mark.parametrize(("pollutant", "edge", "band"), PUBLISHED_EDGES)
def test_a_published_edge_opens_its_band(pollutant: str, edge: float, band: int) -> None:
    assert aqi_band(pollutant, [edge, np.nextafter(edge, 0)]).tolist() == [band, band - 1]


@pytest.mark.parametrize("pollutant", sorted(AQI_BREAKPOINTS))
def test_bands_are_half_open_and_rise_through_all_five(pollutant: str) -> None:
    edges = AQI_BREAKPOINTS[pollutant]
    values = [0.0, *edges, *[np.nextafter(e, 0) for e in edges], 1e6]
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
