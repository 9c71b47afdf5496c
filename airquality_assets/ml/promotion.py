"""The promotion gate: the rule, and the evidence it is decided on.

On a month of test windows two models 0.5-2 % apart are indistinguishable: hourly errors
are autocorrelated, so 696 windows hold far fewer independent pieces of evidence. Before
this gate the alias moved on any lower mean RMSE, and at least four of five retrain "wins"
were noise (Diebold-Mariano p = 0.59-0.78). The rule, stated here once (the README and
docs/operations.md quote it):

    **Promote** when there is no champion; or when the challenger's loss on the clean gate
    windows is significantly lower than the champion's (Diebold-Mariano, one-sided
    p < 0.05); or when the champion's accuracy has degraded (the retrain was requested by
    the accuracy trigger) and the challenger is not significantly worse (one-sided
    p >= 0.05). Otherwise, or with fewer than a week of clean windows, the champion stays.

* **Gate windows**: the challenger's test windows neither model trained on
  (:func:`airquality_assets.ml.training_steps.gate_tensors`).
* **Clean**: a window whose inputs (the look-back hours) or actuals (the forecast hours)
  touch an hour the drift check flags as faulty data (a stuck reading, a feature out of its
  seasonal range: :mod:`airquality_assets.monitoring.flags`) is left out and counted by
  reason. Faulty hours measure which model copes with a broken sensor, not which one
  forecasts air quality.
* **Loss**: per window, the squared error averaged over horizons and pollutants; the test
  (:func:`airquality_assets.ml.significance.diebold_mariano`, HAC lag ``max horizon - 1``,
  HLN-corrected) asks whether the mean loss differential challenger - champion is zero.
* **Scale shift**: a recalibrated sensor stays inside the range, so the champion's own
  forecasts of the gate windows are the reference: from a day on which the target sits
  above (or below) them day after day to the newest day, its hours are flagged too
  (:mod:`airquality_assets.monitoring.level_shift`), and the degradation that shift
  explains is the data's: the "champion degraded" rule does not apply.
* Drift alone does not lower the bar: in this loop a drift ERROR is a data fault (a stuck
  sensor, a unit change) far more often than a changed world, and those hours are exactly
  the ones left out, so a fresher model has nothing to show for it.

What was decided, on what, goes on the new MLflow version's tags (``gate_*``), the
``champion_model`` asset's metadata and the simulation's timeline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from airquality_assets.ml.registry import TAG_RMSE_BY_HORIZON, Judgement, PromotionDecision
from airquality_assets.ml.significance import ALPHA, DMResult, diebold_mariano, format_p
from airquality_assets.ml.training_steps import (
    MIN_GATE_WINDOWS,
    SCORE_NAME,
    _load_forward,
    gate_tensors,
    inputs_for,
    predict,
)
from airquality_assets.transforms.windowing import SequenceTensors, network_inputs

#: Fewer clean gate windows than a week: no verdict is possible, the champion stays.
MIN_CLEAN_WINDOWS = MIN_GATE_WINDOWS

SIGNIFICANTLY_BETTER = "significantly better"
DEGRADED_NOT_WORSE = "champion degraded, challenger not significantly worse"
NOT_BETTER = "not significantly better"
TOO_FEW = "too few clean windows"
UNTESTED = "untested"

#: Flags per tensor row: reason -> boolean mask over ``tensors.features`` rows.
RowFlags = Mapping[str, np.ndarray]
#: ``(gate tensors, actuals, champion forecasts) -> (flags, note)``: a target scale shift.
ShiftFlagsFor = Callable[[SequenceTensors, np.ndarray, np.ndarray], tuple[RowFlags, str]]


def windows_touching(tensors: SequenceTensors, ends: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Per window end, whether a flagged row lies among its inputs or its actuals: rows
    ``end - lookback + 1 .. end + max_horizon`` (valid windows never cross a location or a
    gap, so these rows are one location's consecutive hours)."""
    counts = np.r_[0, np.cumsum(np.asarray(flagged, dtype=np.int64))]
    last = len(flagged) - 1
    lo = np.clip(ends - tensors.lookback + 1, 0, last)
    hi = np.clip(ends + tensors.max_horizon, 0, last)
    return (counts[hi + 1] - counts[lo]) > 0


def clean_windows(
    tensors: SequenceTensors, ends: np.ndarray, flags: RowFlags
) -> tuple[np.ndarray, dict[str, int]]:
    """``(keep, excluded_by)``: which windows touch no flagged hour, and per reason how many
    windows it touches (a window can count under several reasons)."""
    keep = np.ones(len(ends), dtype=bool)
    excluded_by: dict[str, int] = {}
    for reason, mask in sorted(flags.items()):
        touched = windows_touching(tensors, ends, mask)
        if touched.any():
            excluded_by[reason] = int(touched.sum())
            keep &= ~touched
    return keep, excluded_by


def mean_rmse(y: np.ndarray, pred: np.ndarray) -> float:
    """RMSE per (horizon, pollutant) averaged: the gate's score, as ``forecast_metrics``."""
    if len(y) == 0:
        return float("nan")
    return float(np.sqrt(((pred - y) ** 2).mean(axis=0)).mean())


def window_loss(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per window: the squared error averaged over horizons and pollutants."""
    return ((pred - y) ** 2).reshape(len(y), -1).mean(axis=1)


@dataclass(frozen=True)
class GateEvidence:
    """Both models on the gate's clean windows, and the test of their difference."""

    window: tuple[str, str]
    windows: int
    used: int
    excluded_by: dict[str, int]
    challenger_rmse: float
    champion_rmse: float
    test: DMResult
    """Challenger (a) against champion (b): ``p_a_better`` is "the challenger is better"."""
    champion_degraded: bool = False
    degraded_because: str = ""
    challenger_rmse_by_horizon: dict[int, float] = field(default_factory=dict)
    """The challenger's RMSE per horizon on the clean windows (averaged over pollutants):
    what the accuracy check compares its forecasts with once it is the champion."""

    @property
    def excluded(self) -> int:
        return self.windows - self.used

    @property
    def p_better(self) -> float:
        return self.test.p_a_better

    @property
    def p_worse(self) -> float:
        return self.test.p_a_worse

    def tags(self) -> dict[str, str]:
        """MLflow version tags (strings), also the Dagster metadata and the timeline."""
        return {
            "gate_window": f"{self.window[0]}..{self.window[1]}",
            "gate_windows": str(self.windows),
            "gate_windows_used": str(self.used),
            "gate_windows_excluded": str(self.excluded),
            "gate_excluded_by": json.dumps(self.excluded_by, sort_keys=True),
            "gate_challenger_rmse": f"{self.challenger_rmse:.4f}",
            "gate_champion_rmse": f"{self.champion_rmse:.4f}",
            "gate_dm_statistic": f"{self.test.statistic:.4f}",
            "gate_p_better": repr(self.p_better),
            "gate_p_worse": repr(self.p_worse),
            "gate_p_two_sided": repr(self.test.p_value),
            "gate_champion_degraded": self.degraded_because or "no",
            TAG_RMSE_BY_HORIZON: json.dumps(
                {str(h): round(v, 4) for h, v in self.challenger_rmse_by_horizon.items()}
            ),
        }


@dataclass(frozen=True)
class Verdict:
    promote: bool
    rule: str
    reason: str


def decide(evidence: GateEvidence, alpha: float = ALPHA) -> Verdict:
    """The rule of this module's docstring, applied to ``evidence``."""
    scores = (
        f"challenger {evidence.challenger_rmse:.2f} vs champion {evidence.champion_rmse:.2f} "
        f"ug/m3 on {evidence.used} clean of {evidence.windows} gate windows "
        f"{evidence.window[0][:10]}..{evidence.window[1][:10]}"
    )
    if evidence.excluded:
        left_out = ", ".join(f"{n} {why}" for why, n in evidence.excluded_by.items())
        scores += f" ({evidence.excluded} left out: {left_out})"
    p = f"p(better) {format_p(evidence.p_better)}, p(worse) {format_p(evidence.p_worse)}"
    if evidence.used < MIN_CLEAN_WINDOWS:
        return Verdict(
            False, TOO_FEW, f"{TOO_FEW} ({evidence.used}, need {MIN_CLEAN_WINDOWS}): {scores}; "
            "champion stays",
        )  # fmt: skip
    if not (math.isfinite(evidence.p_better) and math.isfinite(evidence.p_worse)):
        why = evidence.test.reason or "no p-value"
        return Verdict(False, UNTESTED, f"untested ({why}): {scores}; champion stays")
    if evidence.p_better < alpha:
        return Verdict(True, SIGNIFICANTLY_BETTER, f"{SIGNIFICANTLY_BETTER} ({p}): {scores}")
    if evidence.champion_degraded and evidence.p_worse >= alpha:
        return Verdict(
            True, DEGRADED_NOT_WORSE,
            f"{DEGRADED_NOT_WORSE} ({evidence.degraded_because}; {p}): {scores}",
        )  # fmt: skip
    return Verdict(False, NOT_BETTER, f"{NOT_BETTER} ({p}): {scores}; champion stays")


def gate_evidence(
    gate: SequenceTensors,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    flags: RowFlags,
    degraded_because: str = "",
) -> GateEvidence:
    """Evidence from both models' forecasts ``(n, horizons, targets)`` of the gate's test
    windows (``y`` the actuals) and the flagged rows."""
    ends = gate.ends["test"]
    keep, excluded_by = clean_windows(gate, ends, flags)
    test = diebold_mariano(
        window_loss(y[keep], challenger[keep]),
        window_loss(y[keep], champion[keep]),
        gate.times[ends][keep],
        gate.max_horizon,
    )
    return GateEvidence(
        window=gate.split_range("test"),
        windows=len(ends),
        used=int(keep.sum()),
        excluded_by=excluded_by,
        challenger_rmse=mean_rmse(y[keep], challenger[keep]),
        champion_rmse=mean_rmse(y[keep], champion[keep]),
        test=test,
        champion_degraded=bool(degraded_because),
        degraded_because=degraded_because,
        challenger_rmse_by_horizon=rmse_by_horizon(y[keep], challenger[keep], gate.horizons),
    )


def judge_forecasts(
    gate: SequenceTensors,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    flags: RowFlags,
    degraded_because: str = "",
    shift_flags_for: ShiftFlagsFor | None = None,
) -> tuple[GateEvidence, Verdict, str]:
    """Evidence and verdict, after a look for a target scale shift in the champion's own
    out-of-sample forecasts (``shift_flags_for``): its rows join the flags, and a found
    shift means the degradation is the data's (a recalibrated sensor), not a changed world,
    so the "champion degraded" rule does not lower the bar. Returns the shift's note too."""
    shift, degraded = "", degraded_because
    if shift_flags_for is not None:
        extra, shift = shift_flags_for(gate, y, champion)
        flags = {**flags, **extra}
        if extra:
            degraded = ""
    evidence = gate_evidence(gate, y, challenger, champion, flags, degraded)
    return evidence, decide(evidence), shift


def rmse_by_horizon(y: np.ndarray, pred: np.ndarray, horizons: list[int]) -> dict[int, float]:
    """RMSE per horizon (averaged over pollutants); empty without windows."""
    if len(y) == 0:
        return {}
    per = np.sqrt(((pred - y) ** 2).mean(axis=0)).mean(axis=1)
    return {int(h): float(v) for h, v in zip(horizons, per, strict=True)}


@dataclass
class _Gate:
    """What the judge needs, computed once: the gate window, the network inputs it offers
    (``[x]`` or ``[x, forecast block]``), its actuals, the challenger's forecasts, the
    flags."""

    tensors: SequenceTensors
    inputs: list[np.ndarray]
    y: np.ndarray
    challenger: np.ndarray
    flags: RowFlags = field(default_factory=dict)


def promote(
    tensors: SequenceTensors,
    evaluation: Any,
    registered_name: str,
    client: Any,
    tags: Mapping[str, str] | None = None,
    *,
    flags_for: Callable[[SequenceTensors, str], RowFlags] | None = None,
    shift_flags_for: ShiftFlagsFor | None = None,
    degraded_because: str = "",
) -> PromotionDecision:
    """Register the tuned model; move ``champion`` only as :func:`decide` says.

    ``evaluation`` is the candidate's :class:`~airquality_assets.ml.handoffs.Evaluation`.
    ``flags_for(gate_tensors, champion_seen_until)`` returns the faulty hours per tensor row
    (the Dagster asset passes the drift check's replay); ``degraded_because`` is non-empty
    when the run was asked for because the champion's accuracy degraded. Nothing is
    ``shift_flags_for(gate_tensors, actuals, champion_forecasts)`` returns the rows of a
    target scale shift (a recalibrated sensor) and a note; when it finds one, the
    degradation is the data's, so the "champion degraded" rule does not apply. Nothing is
    registered when the model does not beat persistence (the blocking check on
    ``model_evaluation`` already stops the run then).
    """
    from airquality_assets.ml.registry import register_and_maybe_promote

    candidate = evaluation.candidate
    if not evaluation.rmse_ratio_vs_persistence < 1.0:
        raise ValueError(
            f"candidate {candidate.name} does not beat persistence "
            f"(RMSE ratio {evaluation.rmse_ratio_vs_persistence:.3f}); nothing registered"
        )
    seen_until = champion_seen_until(client, registered_name)
    # The gate's window: after both models' training and validation data.
    gate_t = gate_tensors(tensors, seen_until)
    inputs, y = network_inputs(gate_t, "test")
    gate = _Gate(gate_t, inputs, y, _forecasts(candidate.model_uri, inputs))
    if seen_until is not None and flags_for is not None:
        gate.flags = flags_for(gate_t, seen_until)
    keep, _ = clean_windows(gate_t, gate_t.ends["test"], gate.flags)
    # The candidate's recorded score: on the clean gate windows (all of them when none is
    # clean: the judge then keeps the champion for too few windows).
    score = evaluation.score
    if seen_until is not None:
        chosen = keep if keep.any() else np.ones(len(keep), dtype=bool)
        score = mean_rmse(y[chosen], gate.challenger[chosen])

    def judge(champion_uri: str) -> Judgement:
        # Each model reads the inputs it was built for, on the same windows: an
        # observations-only champion against a challenger that also reads forecasts.
        champion = _forecasts(champion_uri, gate.inputs)
        evidence, verdict, shift = judge_forecasts(
            gate.tensors, gate.y, gate.challenger, champion, gate.flags, degraded_because,
            shift_flags_for,
        )  # fmt: skip
        reason = verdict.reason + (f"; scale shift: {shift}" if shift else "")
        return Judgement(
            promote=verdict.promote,
            reason=reason,
            champion_score=evidence.champion_rmse,
            tags={
                **evidence.tags(),
                "gate_rule": verdict.rule,
                "gate_scale_shift": shift or "none",
            },
        )

    return register_and_maybe_promote(
        client,
        candidate.model_uri,
        registered_name,
        score,
        SCORE_NAME,
        evaluate_champion=None,
        judge=judge,
        tags={
            **(tags or {}),
            "candidate": candidate.name,
            "test_window": json.dumps(evaluation.test_window),
            "gate_windows": str(len(gate_t.ends["test"])),
            "rmse_ratio_vs_persistence": f"{evaluation.rmse_ratio_vs_persistence:.4f}",
            "test_mean_rmse": json.dumps(evaluation.mean_rmse),
        },
        run_id=candidate.run_id,
    )


def _forecasts(model_uri: str, inputs: list[np.ndarray]) -> np.ndarray:
    """A logged model's forecasts of the gate windows, given the inputs it reads."""
    forward = _load_forward(model_uri)
    return predict(forward, inputs_for(forward, inputs))


def champion_seen_until(client: Any, registered_name: str) -> str | None:
    """Start of the champion's own test window (what it trained and was selected on ends
    there); None when there is no champion yet."""
    from airquality_assets.ml.registry import champion_version

    version = champion_version(client, registered_name)
    if version is None:
        return None
    window = json.loads(version.tags.get("test_window", "{}") or "{}")
    return window.get("start")
