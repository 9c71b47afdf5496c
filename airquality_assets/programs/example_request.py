"""Write ``bento/example_request.json``: a /predict body for the demo's champion, from the
bundled data.

    python -m airquality_assets.programs.example_request [--check] [--out PATH]

The demo's champion reads the last 24 observed hours and the weather forecast of its 24
target hours. The body holds the 24 real observations of 2014-12-29 (UTC) of the default
location, pulled, parsed and cleaned as the data half does (replay sources, the project's
parsers and cleaning), and, as ``forecast``, what the newest weather forecast issued at or
before the last of them (every ``AIRQUALITY_FORECAST_ISSUE_HOURS`` from 00 UTC: 18:00) says
for 2014-12-30 00:00 .. 23:00 (the bundled data ends at 2014-12-31 15:00 UTC, so that is
the last whole day a forecast can be made of). In replay that forecast is the source's
stand-in (the bundled observations plus the seeded error model at the configured scale),
exactly what ``weather_forecasts`` stores, so the body is what a client holding that issue
would send at that hour. The body is checked against the contract the demo's champion gets
(:class:`RequestSpec`) before it is written; ``--check`` compares instead of writing (a
test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airquality_assets.columns import TIME
from airquality_assets.serving.request import RequestSpec, parse_request
from airquality_assets.settings import Settings, project_root

LAST_OBSERVATION = datetime(2014, 12, 29, 23, tzinfo=UTC)
DEFAULT_OUT = Path("bento") / "example_request.json"


def demo_spec(settings: Settings) -> RequestSpec:
    """The request contract of the champion the demo trains (its default configuration)."""
    from airquality_assets.defs.model.tensors import SequenceConfig
    from airquality_assets.transforms.features import default_feature_names
    from airquality_assets.transforms.forecast_inputs import future_feature_names

    config = SequenceConfig()
    features = config.features or default_feature_names(list(settings.targets))
    future = future_feature_names() if config.weather_forecasts else []
    return RequestSpec.for_features(
        features,
        config.lookback_hours,
        future_feature_names=future,
        horizons=range(1, config.max_horizon_hours + 1),
    )


def _value(row: dict[str, Any], field: str) -> float:
    """A field of one hour; a calm hour's missing direction is sent as 0 (the contract wants
    a number, and a calm hour's direction never reaches the model: its wind vector is 0)."""
    value = float(row[field])
    if value != value and field == "winddir" and row.get("windspeed") == 0:
        return 0.0
    return value


def _rows(frame: Any, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {TIME: row[TIME].strftime("%Y-%m-%dT%H:%M:%SZ"), **{f: _value(row, f) for f in fields}}
        for row in frame.to_dict("records")
    ]


def example_request(settings: Settings, spec: RequestSpec) -> dict[str, Any]:
    """The body: observations up to :data:`LAST_OBSERVATION`, and the forecast after it."""
    import pandas as pd

    from airquality_assets.sources.forecast_errors import ForecastErrorModel
    from airquality_assets.sources.replay import ReplayAirPollutionSource, ReplayWeatherSource
    from airquality_assets.sources.spans import due_issue
    from airquality_assets.transforms.cleaning import clean_observations
    from airquality_assets.transforms.merging import merge_hourly
    from airquality_assets.transforms.parsing import (
        parse_air_pollution,
        parse_weather,
        parse_weather_forecasts,
    )

    location = settings.locations[0]
    first = LAST_OBSERVATION - timedelta(hours=spec.lookback - 1)
    pulled = first - timedelta(days=1)  # cleaning's context before the window, as the frame has
    air = ReplayAirPollutionSource(now=LAST_OBSERVATION).history(location, pulled, LAST_OBSERVATION)
    error_model = ForecastErrorModel(scale=settings.forecast_error_scale)
    weather = ReplayWeatherSource(now=LAST_OBSERVATION, error_model=error_model)
    days = weather.timeline(location, pulled.date(), LAST_OBSERVATION.date())
    merged = merge_hourly(
        parse_air_pollution(air.body, location.name), parse_weather(days.body, location.name)
    )
    cleaned, _ = clean_observations(merged, audit_columns=False)  # as hourly_observations
    hours = cleaned[(cleaned[TIME] >= first) & (cleaned[TIME] <= LAST_OBSERVATION)]
    entry: dict[str, Any] = {"location": location.name, "observations": _rows(hours, spec.fields)}
    if spec.reads_forecast:
        issued_at = due_issue(LAST_OBSERVATION, settings.forecast_issue_hours)
        body = weather.forecast(location, issued_at).body
        forecast = parse_weather_forecasts([(issued_at, body)], location.name)
        targets = pd.date_range(
            LAST_OBSERVATION + timedelta(hours=1), periods=spec.forecast_hours, freq="h"
        )
        ahead = forecast[forecast[TIME].isin(targets)].sort_values(TIME)
        if len(ahead) != spec.forecast_hours:
            raise SystemExit(f"the {issued_at:%Y-%m-%dT%H}Z issue does not cover {targets[-1]}")
        entry["forecast"] = _rows(ahead, spec.forecast_fields)
    return {"locations": [entry]}


def render(body: dict[str, Any]) -> str:
    """One hour per line, so a diff of the file reads like the data."""
    parts = []
    for entry in body["locations"]:
        blocks = [f'{{"location": {json.dumps(entry["location"])}']
        for key in ("observations", "forecast"):
            if key in entry:
                lines = ",\n".join(f"    {json.dumps(hour)}" for hour in entry[key])
                blocks.append(f'"{key}": [\n{lines}\n]')
        parts.append(", ".join(blocks) + "}")
    return '{"locations": [' + ",\n".join(parts) + "]}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=project_root() / DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    spec = demo_spec(settings)
    text = render(example_request(settings, spec))
    parse_request(text.encode(), spec)  # a body the demo's champion accepts, or it raises
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python -m {__spec__.name}", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}: {spec.lookback} observed hours, {spec.forecast_hours} forecast hours")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
