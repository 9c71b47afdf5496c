"""GET /forecast's answers, from a store written by the loop's own ForecastStore: the body
as stored and banded, validators and 304s, 404 for an unknown location, 503 when stale."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import numpy as np
import pandas as pd

from airquality_assets.monitoring.forecasting import ForecastStore
from airquality_assets.serving.latest import LatestForecast, LatestForecasts

from .conftest import ISSUED, store_issue


def endpoint(base: Path, now: datetime, max_age_h: float = 3.0) -> LatestForecasts:
    return LatestForecasts(ForecastStore(base), lambda: now, timedelta(hours=max_age_h))


def test_the_newest_issue_as_stored_with_aqi_bands(tmp_path: Path) -> None:
    store_issue(tmp_path, "beijing", ISSUED - pd.Timedelta(hours=1), [[1, 1]] * 3, version="6")
    store_issue(tmp_path, "beijing", ISSUED, [[9.99, 3.0], [-2.0, 1.5], [80.0, np.nan]])
    answer = endpoint(tmp_path, datetime(2014, 12, 30, 19, tzinfo=UTC)).answer("beijing")
    assert answer.status == 200 and answer.headers["content-type"] == "application/json"
    body = json.loads(answer.body)
    LatestForecast.model_validate(body)  # the documented schema
    assert body["model"] == {"name": "airquality-lstm", "version": "7"}
    assert body["location"] == "beijing" and body["units"] == "ug/m3"
    assert body["issued_at"] == "2014-12-30T18:00:00Z" and body["computed_at"] is None
    assert body["horizons"] == [1, 6, 24]
    assert body["times"] == ["2014-12-30T19:00:00Z", "2014-12-31T00:00:00Z", "2014-12-31T18:00:00Z"]
    # Clipped at 0 as /predict does; PM2.5 10.0 would be band 2, 9.99 is band 1; 80 is 5.
    assert body["pollutants"]["pm2_5"] == {"values": [9.99, 0.0, 80.0], "aqi": [1, 1, 5]}
    assert body["pollutants"]["nh3"] == {"values": [3.0, 1.5, None], "aqi": None}  # no scale
    assert body["aqi"] == [1, 1, 5]
    assert "interval" not in answer.body.decode()  # not built: absent, not faked
    assert answer.headers["last-modified"] == "Tue, 30 Dec 2014 18:00:00 GMT"  # issue time
    assert answer.headers["cache-control"] == "no-cache"


def test_computed_at_is_returned_and_is_last_modified(tmp_path: Path) -> None:
    computed = pd.Timestamp("2014-12-30T18:10:07Z")
    store_issue(tmp_path, "delhi", ISSUED, [[20.0, 1.0]] * 3, computed_at=computed)
    answer = endpoint(tmp_path, datetime(2014, 12, 30, 19, tzinfo=UTC)).answer("delhi")
    assert json.loads(answer.body)["computed_at"] == "2014-12-30T18:10:07Z"
    assert answer.headers["last-modified"] == "Tue, 30 Dec 2014 18:10:07 GMT"


def test_validators_give_304_until_a_new_issue_is_stored(tmp_path: Path) -> None:
    store_issue(tmp_path, "beijing", ISSUED, [[20.0, 1.0]] * 3)
    api = endpoint(tmp_path, datetime(2014, 12, 30, 20, tzinfo=UTC))
    first = api.answer("beijing")
    etag = first.headers["etag"]
    assert etag.startswith('"') and api.answer("beijing").headers["etag"] == etag  # stable
    for given in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        again = api.answer("beijing", if_none_match=given)
        assert (again.status, again.body) == (304, b""), given
        assert again.headers["etag"] == etag and "last-modified" in again.headers
    assert api.answer("beijing", if_none_match='"other"').status == 200
    later = format_datetime(datetime(2014, 12, 30, 18, 30, tzinfo=UTC), usegmt=True)
    earlier = format_datetime(datetime(2014, 12, 30, 17, tzinfo=UTC), usegmt=True)
    assert api.answer("beijing", if_modified_since=later).status == 304
    assert api.answer("beijing", if_modified_since=earlier).status == 200
    assert api.answer("beijing", if_modified_since="yesterday").status == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110).
    assert api.answer("beijing", if_none_match='"other"', if_modified_since=later).status == 200

    store_issue(tmp_path, "beijing", ISSUED + pd.Timedelta(hours=1), [[25.0, 1.0]] * 3)
    newer = api.answer("beijing", if_none_match=etag)
    assert newer.status == 200 and newer.headers["etag"] != etag
    assert json.loads(newer.body)["issued_at"] == "2014-12-30T19:00:00Z"


def test_unknown_location_is_a_404_naming_the_stored_ones(tmp_path: Path) -> None:
    now = datetime(2014, 12, 30, 19, tzinfo=UTC)
    empty = endpoint(tmp_path, now).answer("beijing")
    assert empty.status == 404
    assert "holds none yet" in json.loads(empty.body)["details"][0]["reason"]
    store_issue(tmp_path, "beijing", ISSUED, [[20.0, 1.0]] * 3)
    store_issue(tmp_path, "delhi", ISSUED, [[20.0, 1.0]] * 3)
    for name in ("paris", "../forecasts", "x" * 5000):
        answer = endpoint(tmp_path, now).answer(name)
        body = json.loads(answer.body)
        assert answer.status == 404 and set(body) == {
            "error",
            "details",
            "problem_count",
            "truncated",
        }
        first = body["details"][0]
        assert (first["field"], first["code"]) == ("location", "unknown_location")
        assert first["reason"].endswith("stored: beijing, delhi") and len(answer.body) < 1000
    missing = endpoint(tmp_path, now).answer(None)
    assert missing.status == 422 and json.loads(missing.body)["details"][0]["code"] == "missing"


def test_a_stale_newest_forecast_is_a_503_with_the_reason(tmp_path: Path) -> None:
    store_issue(tmp_path, "beijing", ISSUED, [[20.0, 1.0]] * 3)
    fresh = endpoint(tmp_path, datetime(2014, 12, 30, 21, tzinfo=UTC))  # exactly 3 h: fresh
    etag = fresh.answer("beijing").headers["etag"]
    assert fresh.answer("beijing").status == 200
    stale = endpoint(tmp_path, datetime(2014, 12, 30, 21, 1, tzinfo=UTC))
    for answer in (stale.answer("beijing"), stale.answer("beijing", if_none_match=etag)):
        assert answer.status == 503 and "etag" not in answer.headers
        first = json.loads(answer.body)["details"][0]
        assert (first["field"], first["code"]) == ("issued_at", "stale")
        assert "issued at 2014-12-30T18:00:00Z, 3.0 h before the clock" in first["reason"]
        assert "(2014-12-30T21:01:00Z); the limit is 3.0 h" in first["reason"]
        assert "AIRQUALITY_FORECAST_MAX_AGE_HOURS" in first["reason"]
    # A clock behind the newest issue (a replay instant before a later run's issues): fresh.
    assert endpoint(tmp_path, datetime(2014, 12, 30, tzinfo=UTC)).answer("beijing").status == 200
