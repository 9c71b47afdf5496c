"""The test RMSE a week of forecasts is judged against: the strictest among its issuers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from airquality_assets.monitoring.reference import strictest_reference, window_issuers
from airquality_assets.monitoring.scoring import WINDOWS, degradation

NOW = datetime(2014, 3, 25, 23, tzinfo=UTC)


def _forecasts(rows: list[tuple[int, str]]) -> pd.DataFrame:
    """One row per (hours before NOW of the target, version)."""
    return pd.DataFrame(
        {
            "target_time": [pd.Timestamp(NOW - timedelta(hours=h)) for h, _ in rows],
            "model_name": ["m"] * len(rows),
            "model_version": [v for _, v in rows],
        }
    )


def test_the_issuers_are_those_of_the_targets_in_the_window() -> None:
    forecasts = _forecasts([(0, "3"), (5, "1"), (167, "1"), (168, "2"), (-1, "4")])
    # 168 h before is outside (now - 7 d, now]; a target after now has no actual yet
    assert window_issuers(forecasts, NOW, WINDOWS["7d"]) == [("m", "1"), ("m", "3")]
    assert window_issuers(forecasts.iloc[0:0], NOW, WINDOWS["7d"]) == []


def test_the_lowest_positive_rmse_per_horizon_wins() -> None:
    assert strictest_reference([{1: 20.0, 24: 60.0}, {1: 25.0, 24: 50.0, 6: 0.0}]) == {
        1: 20.0,
        24: 50.0,
    }


def test_a_promotion_does_not_resolve_the_old_champions_degraded_week() -> None:
    """The Fahrenheit simulation: v1's week degraded (ratio 1.53 at h24), v3 promoted with a
    higher test RMSE on its gate windows; against v3 alone the ratio fell under 1.5 and the
    check sent "resolved" while the fault went on."""
    scores = pd.DataFrame({"window": ["7d"], "status": ["ok"], "horizon": [24], "rmse": [88.0]})
    v1, v3 = {24: 50.0}, {24: 64.0}
    assert not degradation(scores, v3, factor=1.5)[0]  # the champion of the moment only
    reference = strictest_reference([v3, v1])  # v1 issued forecasts scored in the week
    exceeded, ratios = degradation(scores, reference, factor=1.5)
    assert exceeded and round(ratios[24], 2) == 1.76


def test_the_asset_reads_every_issuer_of_the_week(monkeypatch) -> None:
    """``forecast_accuracy``'s reference: the champion's and each other issuer's, read from
    the registry; a version that cannot be read is skipped."""
    from types import SimpleNamespace

    from airquality_assets.defs.loop import assets
    from airquality_assets.ml import registry

    def record(rmse: float) -> SimpleNamespace:
        return SimpleNamespace(test_rmse_by_horizon=lambda: {24: rmse})

    def read_version(_client: object, _name: str, version: str) -> SimpleNamespace:
        if version == "2":
            raise LookupError("deleted")
        return record({"1": 50.0}[version])

    monkeypatch.setattr(registry, "read_version", read_version)
    champion = SimpleNamespace(name="m", version="3", test_rmse_by_horizon=lambda: {24: 64.0})
    mlflow = SimpleNamespace(client=lambda: None)
    forecasts = _forecasts([(0, "3"), (10, "1"), (20, "2")])
    assert assets._week_reference(mlflow, champion, forecasts, NOW) == {24: 50.0}
    only_champion = _forecasts([(0, "3")])
    assert assets._week_reference(mlflow, champion, only_champion, NOW) == {24: 64.0}
