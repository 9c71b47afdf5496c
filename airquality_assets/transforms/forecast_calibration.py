"""How wrong the stored weather forecasts turned out to be, as a scale of the error model.

A live deployment has no archived forecasts for its history, so its models train on the
observed weather with :class:`~airquality_assets.sources.forecast_errors.ForecastErrorModel`
applied. Once it has stored some real forecasts (``weather_forecasts``) and the hours they
were for have been observed, the model's default figures can be checked against the real
errors: this module measures the error of every (issue, lead) against the observation of
its target hour and expresses it relative to the model's figures at scale 1, as one scale
for every variable and as one per error series. Pure: pandas and numpy, no I/O, no Dagster.

The estimator, for a series with forecast errors ``e_i`` at leads ``h_i`` and the model's
sd at scale 1 ``sd(h) = sd24 * sqrt(h / 24)``::

    scale**2 = sum(e_i**2) / sum(sd(h_i)**2)

the scale whose model variance, summed over the matched hours, equals the observed squared
error (unbiased for ``scale**2`` when the errors follow the model). It is not the maximum
likelihood ``mean((e_i / sd(h_i))**2)``: that weighs the short leads by ``1 / sd(h)**2``, and
real forecasts have an error at lead 1 the model's ``sqrt`` growth does not have (their
analysis is not the observation), which would inflate the scale many times over. Here each
hour counts by the model's variance at its lead, so the day-ahead leads the forecast model
uses most decide it. The pooled scale does the same over every series, each in units of its
own ``sd24``. The mean error (bias) counts as error: a model with the calibrated scale has
the same mean squared error, not the same bias.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airquality_assets.columns import FORECAST_HOURS, ISSUE_TIME, LEAD, LOCATION, TIME
from airquality_assets.sources.forecast_errors import ERROR_SERIES, ForecastErrorModel

#: Frame columns each error series is measured from (wind: speed and direction, as a vector).
SERIES_COLUMNS: dict[str, tuple[str, ...]] = {
    "temp": ("temp",),
    "dew": ("dew",),
    "pressure": ("pressure",),
    "wind_u": ("windspeed", "winddir"),
    "wind_v": ("windspeed", "winddir"),
}
#: Columns of :attr:`ErrorCalibration.by_lead`.
BY_LEAD_COLUMNS: tuple[str, ...] = ("series", "lead", "pairs", "rmse", "bias", "model_sd", "ratio")


@dataclass(frozen=True)
class ErrorCalibration:
    """The stored forecasts' errors relative to ``base``'s figures at scale 1.

    ``scale``: one multiple of every figure (pooled over the series); ``scales``: one per
    error series (NaN for a series without matched hours); ``pairs``: matched (forecast,
    observation) hours per series; ``ar_coefficient``: the lag-1 correlation of the
    standardized errors of consecutive leads of one issue (NaN without such pairs; the
    model's is 0.95); ``by_lead``: per series and lead, ``pairs``, ``rmse`` and ``bias`` in
    the frame's units, the model's sd at scale 1 and their ``ratio``.
    """

    scale: float
    scales: dict[str, float]
    pairs: dict[str, int]
    ar_coefficient: float
    by_lead: pd.DataFrame
    base: ForecastErrorModel

    def model(self, per_series: bool = False) -> ForecastErrorModel:
        """``base`` with the calibrated scale; with ``per_series``, scale 1 and each figure
        multiplied by its own series' scale instead (the two wind components share one
        figure: their pooled scale). A series without pairs keeps its default figure."""
        if not per_series:
            return dataclasses.replace(self.base, scale=self.scale)
        wind = _pooled(self.by_lead, ("wind_u", "wind_v"), self.base)

        def scaled(figure: float, factor: float) -> float:
            return figure * factor if np.isfinite(factor) else figure

        return dataclasses.replace(
            self.base,
            scale=1.0,
            temp_sd24=scaled(self.base.temp_sd24, self.scales["temp"]),
            dew_sd24=scaled(self.base.dew_sd24, self.scales["dew"]),
            pressure_sd24=scaled(self.base.pressure_sd24, self.scales["pressure"]),
            wind_component_sd24_ms=scaled(self.base.wind_component_sd24_ms, wind),
        )


def forecast_errors(
    forecasts: pd.DataFrame, observations: pd.DataFrame, max_lead: int = FORECAST_HOURS
) -> pd.DataFrame:
    """One row per forecast hour whose target hour was observed: ``location``,
    ``issue_time``, ``time``, ``lead`` and, per error series, ``forecast - observed`` in the
    frame's units (wind components in km/h; NaN where either side is unknown).

    ``forecasts`` has the ``weather_forecasts`` columns; ``observations`` is an hourly frame
    with ``location``, ``time`` and the weather columns (``weather_hourly`` is the honest
    choice: ``hourly_observations`` has interpolated some hours). Leads outside
    1..``max_lead`` are left out.
    """
    keys = [LOCATION, TIME]
    value_columns = sorted({c for cols in SERIES_COLUMNS.values() for c in cols})
    wanted = [c for c in value_columns if c in forecasts.columns and c in observations.columns]
    lead = forecasts[LEAD].to_numpy()
    rows = forecasts.loc[(lead >= 1) & (lead <= max_lead), [*keys, ISSUE_TIME, LEAD, *wanted]]
    observed = observations[[*keys, *wanted]].drop_duplicates(keys, keep="last")
    matched = rows.astype({LOCATION: str}).merge(
        observed.astype({LOCATION: str}), on=keys, how="inner", suffixes=("", "_observed")
    )
    out = matched[[LOCATION, ISSUE_TIME, TIME, LEAD]].reset_index(drop=True)
    for name in ("temp", "dew", "pressure"):
        if name in wanted:
            out[name] = (matched[name] - matched[f"{name}_observed"]).to_numpy(dtype=float)
        else:
            out[name] = np.nan
    if "windspeed" in wanted and "winddir" in wanted:
        u_f, v_f = _components(matched["windspeed"], matched["winddir"])
        u_o, v_o = _components(matched["windspeed_observed"], matched["winddir_observed"])
        out["wind_u"], out["wind_v"] = u_f - u_o, v_f - v_o
    else:
        out["wind_u"] = out["wind_v"] = np.nan
    return out.sort_values([LOCATION, ISSUE_TIME, LEAD], kind="stable", ignore_index=True)


def calibrate_error_model(
    forecasts: pd.DataFrame,
    observations: pd.DataFrame,
    base: ForecastErrorModel | None = None,
    max_lead: int = FORECAST_HOURS,
    min_pairs: int = 1,
) -> ErrorCalibration | None:
    """The error scale of stored ``forecasts`` against the later ``observations`` (see the
    module docstring), relative to ``base``'s figures (default: the documented ones) at
    scale 1 (``base.scale`` is ignored). ``None`` when fewer than ``min_pairs`` forecast
    hours (over all series) have been observed yet: nothing to calibrate from."""
    base = dataclasses.replace(base or ForecastErrorModel(), scale=1.0)
    errors = forecast_errors(forecasts, observations, max_lead)
    by_lead = _by_lead(errors, base)
    pairs = {
        name: int(by_lead.loc[by_lead["series"] == name, "pairs"].sum()) for name in ERROR_SERIES
    }
    if sum(pairs.values()) < max(min_pairs, 1):
        return None
    scales = {name: _pooled(by_lead, (name,), base) for name in ERROR_SERIES}
    return ErrorCalibration(
        scale=_pooled(by_lead, ERROR_SERIES, base),
        scales=scales,
        pairs=pairs,
        ar_coefficient=_lag_one_correlation(errors, base),
        by_lead=by_lead,
        base=base,
    )


def _components(speed: pd.Series, direction: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in the speed's unit; a calm hour is (0, 0) with or without a direction, a
    speed without a direction is unknown."""
    s = speed.to_numpy(dtype=float)
    radians = np.deg2rad(direction.to_numpy(dtype=float))
    calm = s == 0
    u = np.where(calm, 0.0, s * np.sin(radians))
    v = np.where(calm, 0.0, s * np.cos(radians))
    return u, v


def _by_lead(errors: pd.DataFrame, base: ForecastErrorModel) -> pd.DataFrame:
    parts = []
    for name in ERROR_SERIES:
        known = errors[[LEAD, name]].dropna()
        grouped = known.groupby(LEAD, sort=True)[name]
        table = pd.DataFrame(
            {
                "pairs": grouped.size(),
                "rmse": np.sqrt(grouped.apply(lambda e: float(np.mean(np.square(e))))),
                "bias": grouped.mean(),
            }
        ).reset_index()
        table.insert(0, "series", name)
        table["model_sd"] = base.sd(name, table[LEAD].to_numpy())
        table["ratio"] = table["rmse"] / table["model_sd"]
        parts.append(table)
    frame = pd.concat(parts, ignore_index=True)
    frame["pairs"] = frame["pairs"].astype(np.int64)
    frame[LEAD] = frame[LEAD].astype(np.int64)
    return frame[list(BY_LEAD_COLUMNS)]


def _pooled(by_lead: pd.DataFrame, series: tuple[str, ...], base: ForecastErrorModel) -> float:
    """sqrt(sum of squared errors / sum of model variances), each series in its sd24 units."""
    rows = by_lead.loc[by_lead["series"].isin(series)]
    if rows.empty:
        return float("nan")
    unit = np.array([base.sd24(name) for name in rows["series"]])
    observed = (rows["pairs"] * np.square(rows["rmse"]) / np.square(unit)).sum()
    expected = (rows["pairs"] * np.square(rows["model_sd"]) / np.square(unit)).sum()
    return float(np.sqrt(observed / expected)) if expected > 0 else float("nan")


def _lag_one_correlation(errors: pd.DataFrame, base: ForecastErrorModel) -> float:
    """Correlation of standardized errors at leads h and h + 1 of the same issue, pooled."""
    if errors.empty:
        return float("nan")
    issue_key = errors[LOCATION].astype(str) + "|" + errors[ISSUE_TIME].astype(str)
    lead = errors[LEAD].to_numpy()
    following = (issue_key.to_numpy()[1:] == issue_key.to_numpy()[:-1]) & (
        lead[1:] == lead[:-1] + 1
    )
    firsts, seconds = [], []
    for name in ERROR_SERIES:
        standard = errors[name].to_numpy(dtype=float) / base.sd(name, lead)
        a, b = standard[:-1][following], standard[1:][following]
        known = np.isfinite(a) & np.isfinite(b)
        firsts.append(a[known])
        seconds.append(b[known])
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
