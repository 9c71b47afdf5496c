"""What the model-half steps hand to each other (stored between steps by the pickle IO manager).

Typed values instead of dicts, so a renamed field fails at the producer, not three steps
later. Light on purpose: no keras, jax or mlflow import, so Dagster definitions can name
these types without paying for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainedCandidate:
    """One trained grid candidate: its validation result and where MLflow keeps it."""

    name: str
    params: dict[str, Any]
    val_loss: float
    val_rmse_mean: float
    epochs: int
    fit_seconds: float
    run_id: str
    #: The logged model (``models:/m-...``): what evaluation loads and the registry registers.
    model_uri: str


@dataclass(frozen=True)
class TunedModel:
    """The grid's winner (lowest validation loss) and every candidate's name, best first."""

    best: TrainedCandidate
    ranking: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Evaluation:
    """The tuned model against the baselines on the test window, in ug/m3."""

    candidate: TrainedCandidate
    score: float
    score_name: str
    #: Mean test RMSE per model ("lstm", "persistence", "seasonal_naive", ...).
    mean_rmse: dict[str, float]
    rmse_ratio_vs_persistence: float
    rmse_ratio_vs_ridge: float
    #: baseline -> pollutant -> horizons where the model is not better.
    losing_horizons: dict[str, dict[str, list[int]]]
    #: model -> one record per (pollutant, horizon) with every metric.
    metrics: dict[str, list[dict[str, Any]]]
    markdown: str
    plot_path: str
    test_window: dict[str, Any]
    #: Diebold-Mariano against every baseline (:meth:`ml.comparison.Comparison.records`).
    significance: list[dict[str, Any]] = field(default_factory=list)
    #: Its Markdown table (ratio and p-value per baseline at a few horizons and the mean).
    significance_markdown: str = ""
    #: Where the model is not significantly better than a baseline it should beat
    #: ("not significantly better than LightGBM at 1-5 h"); empty: better everywhere.
    shortfalls: list[str] = field(default_factory=list)
