"""Stand-in weather forecasts: observed hourly weather plus a documented, seeded error.

The forecast model must see the weather *as forecast* for the hours it predicts. The
bundled replay data, and a live deployment's history from before it pulled forecasts, hold
only observations; this module turns them into forecasts with a realistic error, so a model
never trains on (or is scored with) a perfect view of the future weather. Pure: numpy and
pandas, no Dagster, no I/O, no environment.

The figures (defaults of :class:`ForecastErrorModel`) are those of the project's
forecast-skill experiment, the one that showed a model trained on simulated forecasts keeps
most of the gain of the next day's weather: at 24 h the error standard deviation is
1.8 degC for temperature, 2.0 degC for dew point, 1.2 hPa for sea-level pressure and
1.5 m/s for each wind component (u and v), typical day-ahead errors of a weather model at a
station. They were not measured against any provider's archive (the bundled data has none);
:func:`airquality_assets.transforms.forecast_calibration.calibrate_error_model` measures a
deployment's own once it has stored forecasts. The rest are this project's choices:

* **Growth with lead**: ``sd(lead) = sd24 * sqrt(lead / 24)``, zero at the issue hour and
  continuing past 24 h (1.41 x sd24 at 48 h), the growth of a random walk.
* **Correlated across lead**: each variable's standardized error is an AR(1) over the leads
  of one issue, ``s_1 = z_1``, ``s_h = phi * s_(h-1) + sqrt(1 - phi**2) * z_h`` with
  ``phi = 0.95`` per hour (an error decorrelates over about a day, like a misplaced
  weather system), so every lead has unit variance and the error at lead h is
  ``scale * sd(h) * s_h``. Variables are independent of each other, and issues of each
  other.
* **Wind** is perturbed as a vector: Visual Crossing's speed (km/h) and direction (degrees,
  from) become ``u = speed * sin(dir)``, ``v = speed * cos(dir)`` (the convention of
  :func:`airquality_assets.transforms.features.derived_features`), each gets an error of
  sd 1.5 m/s = 5.4 km/h at 24 h, and they are turned back into speed and direction. A calm
  hour (speed 0) forecast with an error becomes a light wind with a direction; an hour with
  a speed but no direction keeps no direction, its speed shifted by the u error.
* **Consistent humidity**: the dew point is capped at the temperature (saturation) and the
  relative humidity recomputed from the perturbed pair with the Magnus formula the replay
  data was derived with (:func:`airquality_assets.data.beijing.magnus_relative_humidity`);
  ``feelslike`` moves with the temperature error.
* **Not perturbed**: precipitation (``preciptype``, ``precip``, ``precipprob``, ``snow``,
  ``snowdepth``) and every other column is copied as observed, so it is a *perfect*
  forecast: the model does not use forecast precipitation, and must not use any copied
  column as a forecast input (:data:`PERTURBED` names the ones that carry an error).
* **Deterministic**: the random draws are seeded from (location name, issue time, seed)
  through SHA-256, so a re-pull of an issue is byte-identical (for a given numpy: the lock
  pins it). Every issue draws a fixed block of :data:`MAX_LEAD_HOURS` per variable, so the
  error at lead h does not depend on how many leads were asked for.
* ``scale`` multiplies every sd: 0 gives the perfect-forecast bound (every value exactly
  the observation, untouched), 1.5 gives 1.5x the errors. Wherever an error is exactly 0 the
  observed value is kept as it was (also humidity and wind direction), so scale 0 is an
  identity, not a round trip through floating point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from airquality_assets.columns import FORECAST_HOURS, ISSUE_TIME, LEAD, LOCATION, TIME, WEATHER
from airquality_assets.data.beijing import magnus_relative_humidity

#: Metres per second in km/h (Visual Crossing's metric wind unit).
MS_TO_KMH = 3.6
#: The longest lead an issue can be asked for: Visual Crossing's 15-day forecast.
MAX_LEAD_HOURS = 15 * 24
#: Columns whose forecast value carries an error (humidity through temperature and dew
#: point, wind direction through the wind vector); every other column is copied as observed.
PERTURBED: tuple[str, ...] = (
    "temp",
    "dew",
    "humidity",
    "feelslike",
    "pressure",
    "windspeed",
    "winddir",
)
#: The independent error series of one issue, in their fixed draw order (wind in km/h).
ERROR_SERIES: tuple[str, ...] = ("temp", "dew", "pressure", "wind_u", "wind_v")

_HOUR_S = 3600


@dataclass(frozen=True)
class ForecastErrorModel:
    """How far a stand-in forecast is from the observation (see the module docstring).

    ``*_sd24`` are the error standard deviations at ``reference_lead_hours`` (24 h), in the
    variable's unit (wind components in m/s); ``ar_coefficient`` is the hour-to-hour
    correlation of one variable's error across the leads of one issue.
    """

    scale: float = 1.0
    seed: int = 0
    temp_sd24: float = 1.8
    dew_sd24: float = 2.0
    pressure_sd24: float = 1.2
    wind_component_sd24_ms: float = 1.5
    ar_coefficient: float = 0.95
    reference_lead_hours: float = 24.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.scale) or self.scale < 0:
            raise ValueError(f"scale must be a finite number >= 0, got {self.scale}")
        if not 0 <= self.ar_coefficient < 1:
            raise ValueError(f"ar_coefficient must be in [0, 1), got {self.ar_coefficient}")
        for name in ("temp_sd24", "dew_sd24", "pressure_sd24", "wind_component_sd24_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.reference_lead_hours <= 0:
            raise ValueError("reference_lead_hours must be > 0")

    def sd24(self, series: str) -> float:
        """The sd at the reference lead of one error series, in the frame's units."""
        wind = self.wind_component_sd24_ms * MS_TO_KMH
        return {
            "temp": self.temp_sd24,
            "dew": self.dew_sd24,
            "pressure": self.pressure_sd24,
            "wind_u": wind,
            "wind_v": wind,
        }[series]

    def sd(self, series: str, leads: Sequence[int] | np.ndarray) -> np.ndarray:
        """``scale * sd24 * sqrt(lead / 24)``: the error sd of ``series`` at each lead."""
        hours = np.asarray(leads, dtype=np.float64)
        return self.scale * self.sd24(series) * np.sqrt(hours / self.reference_lead_hours)

    def errors(
        self,
        location: str,
        issue_times: Sequence[datetime] | pd.DatetimeIndex | np.ndarray | datetime,
        max_lead: int,
    ) -> dict[str, np.ndarray]:
        """The errors of every series for leads 1..``max_lead`` of each issue.

        Returns ``{series: array (issues, max_lead)}`` (column ``h - 1`` is lead h), in the
        frame's units (degC, hPa, km/h). Deterministic per (location, issue, seed).
        """
        return self.errors_at(location, issue_epochs(issue_times), max_lead)

    def errors_at(self, location: str, epochs: np.ndarray, max_lead: int) -> dict[str, np.ndarray]:
        """:meth:`errors` for issue times given as UTC epoch seconds (whole hours)."""
        if not 1 <= max_lead <= MAX_LEAD_HOURS:
            raise ValueError(f"max_lead must be 1..{MAX_LEAD_HOURS}, got {max_lead}")
        draws = np.empty((len(epochs), len(ERROR_SERIES), MAX_LEAD_HOURS))
        for i, epoch in enumerate(epochs):
            draws[i] = _generator(location, int(epoch), self.seed).standard_normal(
                (len(ERROR_SERIES), MAX_LEAD_HOURS)
            )
        standard = _ar1(draws[:, :, :max_lead], self.ar_coefficient)
        leads = np.arange(1, max_lead + 1)
        return {
            name: standard[:, k, :] * self.sd(name, leads) for k, name in enumerate(ERROR_SERIES)
        }

    def apply(
        self, observed: Mapping[str, np.ndarray], errors: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Forecast values from observed ones at the target hours and their errors (arrays of
        one shape); columns not in :data:`PERTURBED` are returned as observed."""
        return apply_errors(observed, errors)


def issue_epochs(
    issue_times: Sequence[datetime] | pd.DatetimeIndex | np.ndarray | datetime,
) -> np.ndarray:
    """UTC issue times (tz-aware datetimes or timestamps, on whole hours) as epoch seconds."""
    if isinstance(issue_times, datetime):
        issue_times = [issue_times]
    index = pd.DatetimeIndex(issue_times)
    if index.tz is None:
        raise ValueError("issue times must be timezone-aware (UTC)")
    epochs = index.tz_convert(UTC).asi8 // 10**9
    if (epochs % _HOUR_S != 0).any():
        raise ValueError("issue times must be on whole UTC hours")
    return epochs.astype(np.int64)


def _generator(location: str, issue_epoch: int, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{location}|{issue_epoch}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _ar1(draws: np.ndarray, phi: float) -> np.ndarray:
    """Unit-variance AR(1) along the last axis from independent standard normals:
    ``s_1 = z_1``, ``s_h = phi * s_(h-1) + sqrt(1 - phi**2) * z_h``.

    A step-by-step recursion of elementwise operations, not a matrix product: BLAS may sum
    in a different order for another batch size, lead count or CPU, and a last-bit
    difference can flip a rounded value in a stored body. Elementwise IEEE arithmetic gives
    the same bits for an issue whether it is drawn alone or among others, for any leads.
    """
    out = np.empty_like(draws)
    if draws.shape[-1] == 0:
        return out
    innovation = float(np.sqrt(1.0 - phi * phi))
    out[..., 0] = draws[..., 0]
    for h in range(1, draws.shape[-1]):
        out[..., h] = phi * out[..., h - 1] + innovation * draws[..., h]
    return out


def apply_errors(
    observed: Mapping[str, np.ndarray], errors: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Observed values + errors, kept physically consistent (see the module docstring).

    ``observed`` holds any of the weather columns (float arrays, NaN unknown), ``errors`` the
    :data:`ERROR_SERIES` of the same shape. An observed column that is absent stays absent.
    """
    out = {name: np.asarray(values, dtype=np.float64) for name, values in observed.items()}
    zero = np.zeros(np.shape(next(iter(errors.values()))))
    t_err = np.asarray(errors.get("temp", zero), dtype=np.float64)
    d_err = np.asarray(errors.get("dew", zero), dtype=np.float64)
    moved = (t_err != 0) | (d_err != 0)
    if "temp" in out:
        out["temp"] = out["temp"] + t_err
    if "feelslike" in out:
        out["feelslike"] = out["feelslike"] + t_err
    if "dew" in out:
        dew = out["dew"] + d_err
        if "temp" in out:  # a dew point above the temperature is supersaturation: cap it
            dew = np.where(moved & (dew > out["temp"]), out["temp"], dew)
        out["dew"] = dew
    if "humidity" in out and "temp" in out and "dew" in out:
        with np.errstate(invalid="ignore", over="ignore"):
            recomputed = magnus_relative_humidity(out["temp"], out["dew"])
        recomputed = np.where(
            np.isfinite(out["temp"]) & np.isfinite(out["dew"]), recomputed, np.nan
        )
        out["humidity"] = np.where(moved, recomputed, out["humidity"])
    if "pressure" in out:
        out["pressure"] = out["pressure"] + np.asarray(errors.get("pressure", zero))
    if "windspeed" in out:
        out["windspeed"], direction = _perturb_wind(
            out["windspeed"],
            out.get("winddir"),
            np.asarray(errors.get("wind_u", zero), dtype=np.float64),
            np.asarray(errors.get("wind_v", zero), dtype=np.float64),
        )
        if "winddir" in out:
            out["winddir"] = direction
    return out


def _perturb_wind(
    speed: np.ndarray, direction: np.ndarray | None, u_err: np.ndarray, v_err: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(speed, direction) after adding (u, v) errors; unchanged where both errors are 0."""
    if direction is None:
        direction = np.full(np.shape(speed), np.nan)
    radians = np.deg2rad(direction)
    calm = speed == 0
    u = np.where(calm, 0.0, speed * np.sin(radians)) + u_err
    v = np.where(calm, 0.0, speed * np.cos(radians)) + v_err
    new_speed = np.hypot(u, v)
    new_direction = np.mod(np.rad2deg(np.arctan2(u, v)), 360.0)
    # a speed without a direction: no vector to perturb; keep the direction unknown
    no_direction = ~calm & ~np.isfinite(direction)
    new_speed = np.where(no_direction, np.abs(speed + u_err), new_speed)
    new_direction = np.where(no_direction, np.nan, new_direction)
    unchanged = (u_err == 0) & (v_err == 0)
    return np.where(unchanged, speed, new_speed), np.where(unchanged, direction, new_direction)


def stand_in_forecasts(
    weather: pd.DataFrame,
    issue_times: Iterable[datetime] | pd.DatetimeIndex,
    location: str,
    leads: Sequence[int] | range = range(1, FORECAST_HOURS + 1),
    model: ForecastErrorModel | None = None,
) -> pd.DataFrame:
    """Forecasts of ``leads`` hours for each issue, made from observed hourly ``weather``.

    ``weather`` is an hourly frame with ``time`` (UTC) and weather columns, e.g.
    ``weather_hourly`` or ``hourly_observations``; with a ``location`` column only that
    location's rows are used. The result has the columns of the ``weather_forecasts`` frame,
    ``location, issue_time, time, lead`` and the weather columns of ``weather`` (of
    :data:`airquality_assets.columns.WEATHER`: perturbed ones per :data:`PERTURBED`, the
    rest copied; pollutants are never carried over), one row per (issue, lead) whose target hour
    ``weather`` holds, sorted by issue then lead. The same (location, issue, seed) gives the
    same errors as the replay source's forecast bodies (before their rounding).
    """
    model = model or ForecastErrorModel()
    lead_array = np.asarray(list(leads), dtype=np.int64)
    if lead_array.size == 0 or lead_array.min() < 1:
        raise ValueError("leads must be a non-empty sequence of hours >= 1")
    rows = weather
    if LOCATION in weather.columns:
        rows = weather.loc[(weather[LOCATION].astype(str) == location).to_numpy()]
    times = pd.DatetimeIndex(rows[TIME])
    if times.tz is None:
        raise ValueError("weather time must be timezone-aware (UTC)")
    obs_epochs = times.tz_convert(UTC).asi8 // 10**9
    order = np.argsort(obs_epochs, kind="stable")
    obs_epochs = obs_epochs[order]
    issues = issue_epochs(
        list(issue_times) if not isinstance(issue_times, pd.Index) else issue_times
    )
    value_columns = [c for c in WEATHER if c in rows.columns]  # never a pollutant

    max_lead = int(lead_array.max())
    errors = model.errors(location, pd.to_datetime(issues, unit="s", utc=True), max_lead)
    targets = issues[:, None] + lead_array[None, :] * _HOUR_S  # (issues, leads)
    position = np.searchsorted(obs_epochs, targets)
    found = position < len(obs_epochs)
    found[found] = obs_epochs[position[found]] == targets[found]
    issue_index, lead_index = np.nonzero(found)
    picked = order[position[issue_index, lead_index]]

    observed = {
        c: rows[c].to_numpy(dtype=np.float64, na_value=np.nan)[picked] for c in value_columns
    }
    lead_columns = lead_array[lead_index] - 1
    picked_errors = {name: e[issue_index, lead_columns] for name, e in errors.items()}
    values = apply_errors(observed, picked_errors)
    to_time = lambda seconds: pd.to_datetime(seconds, unit="s", utc=True).as_unit("ns")  # noqa: E731
    frame = pd.DataFrame(
        {
            LOCATION: pd.array([location] * len(picked), dtype="string"),
            ISSUE_TIME: to_time(issues[issue_index]),
            TIME: to_time(targets[issue_index, lead_index]),
            LEAD: lead_array[lead_index],
            **{c: values[c] for c in value_columns},
        }
    )
    return frame


def perturb_frame(
    weather: pd.DataFrame,
    issued_at: datetime,
    location: str,
    leads: Sequence[int] | range = range(1, FORECAST_HOURS + 1),
    model: ForecastErrorModel | None = None,
) -> pd.DataFrame:
    """One issue's stand-in forecast from observed hourly ``weather``: see
    :func:`stand_in_forecasts`."""
    return stand_in_forecasts(weather, [issued_at], location, leads, model)
