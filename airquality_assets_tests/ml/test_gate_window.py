"""The promotion gate scores both models on windows neither trained on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airquality_assets.ml.training_steps import MIN_GATE_WINDOWS, gate_tensors
from airquality_assets.transforms.windowing import build_sequence_tensors, relative_split


def _tensors(newest: str):
    times = pd.date_range("2013-06-01", newest, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"location": "x", "time": times, "pm2_5": rng.gamma(2.0, 40.0, len(times)),
         "temp": rng.normal(10, 5, len(times))}
    )  # fmt: skip
    return build_sequence_tensors(
        frame, ["pm2_5", "temp"], ["pm2_5"], 24, range(1, 25), relative_split(times[-1])
    )


def test_gate_window_excludes_both_models_training_data() -> None:
    champion = _tensors("2014-03-31T23:00")  # trained at an earlier clock
    champion_seen_until = champion.split_range("test")[0]
    challenger = _tensors("2014-05-31T23:00")
    gate = gate_tensors(challenger, champion_seen_until)
    # the challenger's own test window starts after its validation: both never trained on it
    assert gate is challenger
    first_gate_end = challenger.times[gate.ends["test"]].min()
    assert first_gate_end >= pd.Timestamp(champion_seen_until).timestamp()
    assert first_gate_end >= challenger.split_bounds["validation"][1]


def test_gate_window_is_cut_when_the_champion_saw_newer_data() -> None:
    challenger = _tensors("2014-05-31T23:00")
    test_start, test_end = challenger.split_range("test")
    seen_until = (pd.Timestamp(test_start) + pd.Timedelta(days=10)).isoformat()
    gate = gate_tensors(challenger, seen_until)
    ends = challenger.times[gate.ends["test"]]
    assert ends.min() >= pd.Timestamp(seen_until).timestamp()
    assert 0 < len(gate.ends["test"]) < len(challenger.ends["test"])
    with pytest.raises(ValueError, match="neither model trained on"):
        gate_tensors(challenger, (pd.Timestamp(test_end) - pd.Timedelta(days=2)).isoformat())
    assert MIN_GATE_WINDOWS == 168
