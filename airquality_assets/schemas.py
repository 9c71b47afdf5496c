"""Pandera models for every hourly frame, and a lazy validator that reports all failures at once.

Decisions, documented once:

* **Types.** ``time`` is ``datetime64[ns, UTC]``: naive timestamps fail (a silently localised
  local time would shift a whole series). Measurements are float64 and nullable, because
  missing is a fact of this data; ``aqi`` is nullable ``Int64``. ``location`` is a pandas
  string column but is *coerced*: whether it arrives as ``object`` or ``string`` says nothing
  about data quality, and Parquet round trips can change it.
* **Ranges** come from :data:`airquality_assets.bounds.PHYSICAL_BOUNDS`, the same
  table cleaning uses, so a cleaned frame passes by construction and a raw frame fails exactly
  when cleaning would have had to remove something. Bounds are inclusive; NaN is allowed.
* **Keys.** (location, time) is unique and ``time`` strictly increases within each location
  in row order (a dataframe-level check; interleaved locations are fine). Times must be whole
  UTC hours. The *regular* hourly grid of ``hourly_observations`` is guaranteed by
  ``merge_hourly`` rather than validated: a partitioned store legitimately holds non-adjacent
  days.
* **Strict.** Every model is ``strict=True``: an unknown column (``pm25`` for ``pm2_5``, a
  forgotten helper column) is reported, since a renamed feature would otherwise be silently
  ignored downstream. ``HourlyObservationsSchema`` declares the cleaning audit columns
  (``<col>_interpolated`` bool, ``<col>_spike`` float) by regex, as optional.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from airquality_assets.bounds import PHYSICAL_BOUNDS
from airquality_assets.columns import (
    FORECAST_HOURS,
    ISSUE_TIME,
    LEAD,
    LOCATION,
    TIME,
    column_description,
)

UtcTimestamp = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]

#: How many failing values per (column, check) the human message quotes.
EXAMPLES_PER_CHECK = 5


def _bounded(column: str) -> Any:
    """Nullable field with the column's physical bounds (inclusive)."""
    lo, hi = PHYSICAL_BOUNDS[column]
    return pa.Field(nullable=True, ge=lo, le=hi, description=column_description(column))


def _flag(column: str) -> Any:
    """0/1 flag that may be unknown."""
    return pa.Field(nullable=True, isin=[0.0, 1.0], description=column_description(column))


class _KeyedHourly(pa.DataFrameModel):
    """Key columns and key checks shared by every hourly frame."""

    location: Series[pd.StringDtype] = pa.Field(
        coerce=True, nullable=False, description=column_description(LOCATION)
    )
    time: Series[UtcTimestamp] = pa.Field(nullable=False, description=column_description(TIME))

    class Config:
        strict = True
        unique = [LOCATION, TIME]  # noqa: RUF012 (pandera reads a list)

    @pa.check(TIME, name="on_whole_utc_hour", error="time must be on a whole UTC hour")
    @classmethod
    def _on_whole_hour(cls, time: Series[UtcTimestamp]) -> Series[bool]:
        return time.dt.floor("h") == time

    @pa.dataframe_check(
        name="time_increasing_per_location",
        error="time must strictly increase within each location (row order)",
    )
    @classmethod
    def _time_increasing(cls, frame: pd.DataFrame) -> Series[bool]:
        step = frame.groupby(LOCATION, sort=False, observed=True)[TIME].diff()
        return step.isna() | (step > pd.Timedelta(0))


class AirQualityHourlySchema(_KeyedHourly):
    """``air_quality_hourly``: one row per (location, UTC hour) from OWM Air Pollution."""

    co: Series[float] = _bounded("co")
    no: Series[float] = _bounded("no")
    no2: Series[float] = _bounded("no2")
    o3: Series[float] = _bounded("o3")
    so2: Series[float] = _bounded("so2")
    pm2_5: Series[float] = _bounded("pm2_5")
    pm10: Series[float] = _bounded("pm10")
    nh3: Series[float] = _bounded("nh3")
    aqi: Series[pd.Int64Dtype] = _bounded("aqi")


class _WeatherColumns(pa.DataFrameModel):
    temp: Series[float] = _bounded("temp")
    feelslike: Series[float] = _bounded("feelslike")
    humidity: Series[float] = _bounded("humidity")
    dew: Series[float] = _bounded("dew")
    precip: Series[float] = _bounded("precip")
    precipprob: Series[float] = _bounded("precipprob")
    snow: Series[float] = _bounded("snow")
    snowdepth: Series[float] = _bounded("snowdepth")
    windgust: Series[float] = _bounded("windgust")
    windspeed: Series[float] = _bounded("windspeed")
    winddir: Series[float] = _bounded("winddir")
    pressure: Series[float] = _bounded("pressure")
    visibility: Series[float] = _bounded("visibility")
    cloudcover: Series[float] = _bounded("cloudcover")
    solarradiation: Series[float] = _bounded("solarradiation")
    solarenergy: Series[float] = _bounded("solarenergy")
    uvindex: Series[float] = _bounded("uvindex")
    is_rain: Series[float] = _flag("is_rain")
    is_snow: Series[float] = _flag("is_snow")


class WeatherHourlySchema(_WeatherColumns, _KeyedHourly):
    """``weather_hourly``: one row per (location, UTC hour) from Visual Crossing (metric)."""


class HourlyObservationsSchema(_WeatherColumns, AirQualityHourlySchema):
    """``hourly_observations``: both sources on one grid, cleaned, with optional audit columns."""

    interpolated_flags: Series[bool] = pa.Field(
        alias=r"^.+_interpolated$", regex=True, required=False, nullable=False
    )
    spike_values: Series[float] = pa.Field(
        alias=r"^.+_spike$", regex=True, required=False, nullable=True, ge=0.0
    )


class _ForecastKeys(pa.DataFrameModel):
    """Key columns and key checks of a forecast frame."""

    location: Series[pd.StringDtype] = pa.Field(
        coerce=True, nullable=False, description=column_description(LOCATION)
    )
    issue_time: Series[UtcTimestamp] = pa.Field(
        nullable=False, description=column_description(ISSUE_TIME)
    )
    time: Series[UtcTimestamp] = pa.Field(nullable=False, description=column_description(TIME))
    lead: Series[int] = pa.Field(
        nullable=False, ge=1, le=FORECAST_HOURS, description=column_description(LEAD)
    )

    class Config:
        strict = True
        unique = [LOCATION, ISSUE_TIME, TIME]  # noqa: RUF012 (pandera reads a list)

    @pa.check(TIME, ISSUE_TIME, name="on_whole_utc_hour", error="must be on a whole UTC hour")
    @classmethod
    def _on_whole_hour(cls, values: Series[UtcTimestamp]) -> Series[bool]:
        return values.dt.floor("h") == values

    @pa.dataframe_check(name="lead_is_hours_after_issue", error="lead != (time - issue_time) / 1 h")
    @classmethod
    def _lead_matches(cls, frame: pd.DataFrame) -> Series[bool]:
        return (frame[TIME] - frame[ISSUE_TIME]) == pd.to_timedelta(frame[LEAD], unit="h")

    @pa.dataframe_check(
        name="time_increasing_per_issue",
        error="time must strictly increase within each (location, issue_time) (row order)",
    )
    @classmethod
    def _time_increasing(cls, frame: pd.DataFrame) -> Series[bool]:
        step = frame.groupby([LOCATION, ISSUE_TIME], sort=False, observed=True)[TIME].diff()
        return step.isna() | (step > pd.Timedelta(0))


class WeatherForecastsSchema(_WeatherColumns, _ForecastKeys):
    """``weather_forecasts``: one row per (location, issue, target hour), leads 1..48 h.

    The weather columns and their bounds are ``weather_hourly``'s; ``lead`` must equal
    ``(time - issue_time) / 1 h``, and within an issue the target hours strictly increase.
    """


SchemaLike = type[pa.DataFrameModel] | pa.DataFrameSchema

_FRAME_LEVEL = "DataFrameSchema"


def _schema_name(schema: SchemaLike) -> str:
    return getattr(schema, "__name__", None) or getattr(schema, "name", None) or "schema"


def _examples(values: pd.Series) -> str:
    shown = [str(v) for v in values.head(EXAMPLES_PER_CHECK)]
    more = len(values) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _describe(failure_cases: pd.DataFrame) -> list[str]:
    """One line per failed (column, check); frame-level checks are collapsed to rows."""
    lines: list[str] = []
    fc = failure_cases
    frame_level = fc["schema_context"].eq(_FRAME_LEVEL) & fc["index"].notna()
    for check, group in fc[frame_level].groupby("check", sort=True):
        rows = group["index"].drop_duplicates()
        keyed = group[group["column"].isin([LOCATION, TIME])]
        if not keyed.empty:
            pairs = keyed.pivot_table(
                index="index", columns="column", values="failure_case", aggfunc="first"
            )
            examples = [
                ", ".join(f"{c}={pairs.at[i, c]}" for c in pairs.columns) for i in pairs.index
            ]
            sample = _examples(pd.Series([f"({e})" for e in examples]))
        else:
            sample = "rows " + _examples(rows)
        lines.append(f"- check {check}: {len(rows)} row(s), e.g. {sample}")
    for (context, column, check), group in fc[~frame_level].groupby(
        ["schema_context", "column", "check"], sort=True, dropna=False
    ):
        if check == "column_in_schema":
            lines.append(f"- unexpected column(s): {_examples(group['failure_case'])}")
        elif check == "column_in_dataframe":
            lines.append(f"- missing column(s): {_examples(group['failure_case'])}")
        elif group["index"].isna().all():  # dtype and other whole-column failures
            lines.append(
                f"- column {column!r}, check {check}: got {_examples(group['failure_case'])}"
            )
        else:
            rows = group["index"].tolist()
            lines.append(
                f"- column {column!r}, check {check}: {len(group)} failure(s), "
                f"e.g. {_examples(group['failure_case'])} (rows {_examples(pd.Series(rows))})"
            )
        del context
    return lines


def validate_lazily(schema: SchemaLike, frame: pd.DataFrame) -> tuple[bool, pd.DataFrame, str]:
    """Validate with ``lazy=True`` so one report lists every failure, not just the first.

    Returns ``(ok, failure_cases, message)``. ``failure_cases`` is Pandera's table (columns
    ``schema_context, column, check, check_number, failure_case, index``; empty when ok) and
    ``message`` a readable summary: per failed column and check the count and the first few
    failing values and rows; per frame-level check (uniqueness, time order) the rows with
    their location and time. The frame is never modified.
    """
    name = _schema_name(schema)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        failure_cases = err.failure_cases.reset_index(drop=True)
    except pa.errors.SchemaError as err:  # raised eagerly by some backends despite lazy=True
        failure_cases = pd.DataFrame(
            {
                "schema_context": [type(err.schema).__name__],
                "column": [getattr(err.schema, "name", None)],
                "check": [str(err.check) if err.check is not None else str(err.reason_code)],
                "check_number": [None],
                "failure_case": [str(err)],
                "index": [None],
            }
        )
    else:
        return True, pd.DataFrame(), f"{name}: {len(frame)} rows valid"
    lines = _describe(failure_cases)
    header = f"{name}: {len(failure_cases)} failure case(s) in {len(lines)} check(s)"
    return False, failure_cases, "\n".join([header, *lines])
