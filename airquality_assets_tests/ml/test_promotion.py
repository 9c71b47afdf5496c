"""The promotion rule on synthetic forecasts: evidence, not a lower number, moves the alias;
windows touching faulty hours are left out and counted."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from airquality_assets.ml.promotion import (
    DEGRADED_NOT_WORSE,
    MIN_CLEAN_WINDOWS,
    NOT_BETTER,
    SIGNIFICANTLY_BETTER,
    TOO_FEW,
    clean_windows,
    decide,
    gate_evidence,
    mean_rmse,
    windows_touching,
)
from airquality_assets.transforms.windowing import build_sequence_tensors, relative_split, windows


def _tensors(days: int = 120):
    times = pd.date_range("2014-01-01", periods=days * 24, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"location": "x", "time": times, "pm2_5": rng.gamma(2.0, 40.0, len(times)),
         "temp": rng.normal(10, 5, len(times))}
    )  # fmt: skip
    return build_sequence_tensors(
        frame, ["pm2_5", "temp"], ["pm2_5"], 24, range(1, 25), relative_split(times[-1])
    )


def _ar_errors(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Errors autocorrelated along the windows (as hourly forecast errors are)."""
    noise = rng.normal(0.0, scale, shape)
    out = np.empty_like(noise)
    out[0] = noise[0]
    for i in range(1, len(noise)):
        out[i] = 0.9 * out[i - 1] + noise[i]
    return out


@pytest.fixture(scope="module")
def gate():
    tensors = _tensors()
    _, y = windows(tensors, "test")
    return tensors, y


def test_a_window_touches_the_flagged_hours_of_its_inputs_and_its_actuals(gate) -> None:
    tensors, _ = gate
    ends = tensors.ends["test"]
    flagged = np.zeros(len(tensors.times), dtype=bool)
    hour = int(ends[100])
    flagged[hour] = True
    touched = windows_touching(tensors, ends, flagged)
    # windows ending from 24 h before the hour (actuals reach it) to 23 h after (inputs do)
    expected = (ends >= hour - tensors.max_horizon) & (ends <= hour + tensors.lookback - 1)
    assert np.array_equal(touched, expected)
    assert touched.sum() == tensors.max_horizon + tensors.lookback
    keep, excluded_by = clean_windows(tensors, ends, {"pm2_5 stuck": flagged})
    assert excluded_by == {"pm2_5 stuck": 48} and keep.sum() == len(ends) - 48


def test_noise_does_not_promote_a_real_gain_does(gate) -> None:
    tensors, y = gate
    rng = np.random.default_rng(1)
    champion = y + _ar_errors(rng, y.shape, 10.0)
    # 0.5 % lower RMSE: what a month of windows cannot tell apart
    close = y + (champion - y) * 0.995 + _ar_errors(rng, y.shape, 1.0)
    evidence = gate_evidence(tensors, y, close, champion, {})
    assert evidence.used == evidence.windows == len(y)
    verdict = decide(evidence)
    assert not verdict.promote and verdict.rule == NOT_BETTER, verdict
    assert evidence.p_better > 0.05
    # 30 % lower error is evidence
    clearly = y + (champion - y) * 0.7
    verdict = decide(gate_evidence(tensors, y, clearly, champion, {}))
    assert verdict.promote and verdict.rule == SIGNIFICANTLY_BETTER, verdict


def test_a_degraded_champion_gives_way_to_a_challenger_not_significantly_worse(gate) -> None:
    tensors, y = gate
    rng = np.random.default_rng(2)
    champion = y + _ar_errors(rng, y.shape, 10.0)
    similar = y + _ar_errors(rng, y.shape, 10.0)
    plain = decide(gate_evidence(tensors, y, similar, champion, {}))
    degraded = decide(gate_evidence(tensors, y, similar, champion, {}, "accuracy degraded"))
    assert not plain.promote
    assert degraded.promote and degraded.rule == DEGRADED_NOT_WORSE
    assert "accuracy degraded" in degraded.reason
    # ... but never one that is significantly worse
    worse = y + (champion - y) * 1.5
    assert not decide(gate_evidence(tensors, y, worse, champion, {}, "accuracy degraded")).promote


def test_a_challenger_that_wins_only_on_faulty_hours_is_not_promoted(gate) -> None:
    tensors, y = gate
    ends = tensors.ends["test"]
    rng = np.random.default_rng(3)
    champion = y + _ar_errors(rng, y.shape, 5.0)
    challenger = y + _ar_errors(rng, y.shape, 5.0)  # as good as the champion, elsewhere
    # the last 5 days are faulty: there the champion is far off, the challenger is not
    faulty_rows = np.zeros(len(tensors.times), dtype=bool)
    faulty_rows[ends[-5 * 24] :] = True
    touched = windows_touching(tensors, ends, faulty_rows)
    champion[touched] += 40.0
    naive = gate_evidence(tensors, y, challenger, champion, {})
    assert naive.challenger_rmse < naive.champion_rmse and decide(naive).promote
    evidence = gate_evidence(tensors, y, challenger, champion, {"pm2_5 out of range": faulty_rows})
    assert evidence.excluded == int(touched.sum()) == evidence.excluded_by["pm2_5 out of range"]
    assert evidence.challenger_rmse == pytest.approx(evidence.champion_rmse, rel=0.2)
    verdict = decide(evidence)
    assert not verdict.promote, verdict
    assert f"{evidence.excluded} left out: {evidence.excluded} pm2_5 out of range" in verdict.reason
    tags = evidence.tags()
    assert tags["gate_windows_excluded"] == str(evidence.excluded)
    clean_rmse = json.loads(tags["gate_challenger_rmse_by_horizon"])
    assert list(clean_rmse) == [str(h) for h in tensors.horizons]
    assert np.mean(list(clean_rmse.values())) == pytest.approx(evidence.challenger_rmse, abs=1e-3)
    assert float(tags["gate_p_better"]) == pytest.approx(evidence.p_better)


def test_too_few_clean_windows_keep_the_champion(gate) -> None:
    tensors, y = gate
    ends = tensors.ends["test"]
    flagged = np.zeros(len(tensors.times), dtype=bool)
    flagged[ends[0] : ends[-(MIN_CLEAN_WINDOWS - 60)]] = True
    better = y * 1.0
    champion = y + 30.0
    evidence = gate_evidence(tensors, y, better, champion, {"temp out of range": flagged})
    assert evidence.used < MIN_CLEAN_WINDOWS
    verdict = decide(evidence)
    assert not verdict.promote and verdict.rule == TOO_FEW


def test_mean_rmse_is_the_mean_over_horizons_of_each_horizons_rmse() -> None:
    y = np.zeros((4, 2, 1))
    pred = np.array([[[1.0], [2.0]]] * 4)
    assert mean_rmse(y, pred) == pytest.approx(1.5)


def test_a_judged_champion_is_held_to_its_clean_window_rmse() -> None:
    """The accuracy check's bar for a promoted version is its RMSE on the gate's clean
    windows, not a test window that may hold a faulty sensor's days."""
    from airquality_assets.ml.registry import TAG_RMSE_BY_HORIZON, ChampionRecord

    record = ChampionRecord(
        name="m", version="2", uri="models:/m/2", metadata=None,
        tags={TAG_RMSE_BY_HORIZON: '{"1": 20.5, "24": 95.25}'},
        metrics={"test_rmse_pm2_5": 300.0},
    )  # fmt: skip
    assert record.test_rmse_by_horizon() == {1: 20.5, 24: 95.25}


def test_each_model_reads_the_gate_inputs_it_was_built_for(monkeypatch, gate) -> None:
    """A challenger reading the weather forecast and an observations-only champion are
    scored on the same gate windows, each given what it reads (a two-input model called
    with one input failed the bootstrap training run)."""
    from airquality_assets.ml import promotion

    tensors, y = gate
    x, _ = windows(tensors, "test")
    future = np.full((len(x), 24, 3), 7.0, dtype=np.float32)

    def observations_only(x_: np.ndarray) -> np.ndarray:
        return np.repeat(x_[:, -1:, :1], 24, axis=1)

    def reads_forecast(x_: np.ndarray, f: np.ndarray) -> np.ndarray:
        assert len(x_) == len(f)  # the same windows
        return f[:, :, :1]

    observations_only.n_inputs = 1  # type: ignore[attr-defined]
    reads_forecast.n_inputs = 2  # type: ignore[attr-defined]
    models = {"champion": observations_only, "challenger": reads_forecast}
    monkeypatch.setattr(promotion, "_load_forward", models.__getitem__)
    challenger = promotion._forecasts("challenger", [x, future])
    champion = promotion._forecasts("champion", [x, future])
    assert challenger.shape == champion.shape == y.shape
    assert (challenger == 7.0).all()
    np.testing.assert_array_equal(champion[:, 0, 0], x[:, -1, 0])
    with pytest.raises(ValueError, match="carry none"):
        promotion._forecasts("challenger", [x])  # tensors without a forecast block


def test_a_recalibrated_target_is_left_out_and_does_not_lower_the_bar(gate) -> None:
    """The recalibration run: actuals 1.5x from some day to the newest, neither model
    follows; the accuracy trigger asked for the retrain. Without the shift detector the
    degraded rule promoted a challenger no better than the champion."""
    from airquality_assets.ml.promotion import judge_forecasts
    from airquality_assets.monitoring.level_shift import tensor_shift_flags

    tensors, y = gate
    ends = tensors.ends["test"]
    rng = np.random.default_rng(2)
    champion = y + _ar_errors(rng, y.shape, 10.0)
    challenger = y + _ar_errors(rng, y.shape, 10.0)
    onset = int(tensors.times[ends[-4 * 24]]) // 86400 * 86400
    faulty_rows = tensors.times >= onset
    actual = y.copy()
    actual[tensors.times[ends] + 3600 >= onset] *= 1.5  # windows whose actuals are faulty
    _, naive_verdict, _ = judge_forecasts(
        tensors, actual, challenger, champion, {}, "accuracy degraded"
    )
    assert naive_verdict.promote and naive_verdict.rule == DEGRADED_NOT_WORSE
    evidence, verdict, note = judge_forecasts(
        tensors, actual, challenger, champion, {}, "accuracy degraded", tensor_shift_flags
    )
    assert not verdict.promote and verdict.rule == NOT_BETTER
    assert "pm2_5 x1.4" in note and "since 2014-04-26" in note and not evidence.champion_degraded
    touched = windows_touching(tensors, ends, faulty_rows)
    assert evidence.excluded_by["pm2_5 scale shift"] >= int(touched.sum())
