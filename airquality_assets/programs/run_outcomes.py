"""What a finished run decided, read back from the instance's events.

A run created from the code location and executed by ``execute_run`` (so the UI files it
under its job) keeps no outputs in memory, unlike ``execute_in_process``: the training
run's promotion decision is read from ``champion_model``'s materialization metadata,
which records every field the simulation's timeline prints.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


def _plain(value: Any) -> Any:
    value = getattr(value, "value", value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _optional_float(value: Any) -> float | None:
    if value in (None, "None", ""):
        return None
    return float(value)


def champion_decision(result: Any) -> SimpleNamespace | None:
    """The ``champion_model`` decision of a run's result (``promoted``, ``reason``,
    ``new_version``, ``candidate_score``, ``champion_score``, ``evidence``), or None when
    the run materialized no ``champion_model``."""
    for event in result.get_asset_materialization_events():
        if event.asset_key is None or event.asset_key.path[-1] != "champion_model":
            continue
        metadata = {k: _plain(v) for k, v in event.materialization.metadata.items()}
        evidence = {k: str(v) for k, v in metadata.items() if k.startswith("gate_")}
        return SimpleNamespace(
            promoted=bool(metadata.get("promoted")),
            reason=str(metadata.get("reason", "")),
            new_version=metadata.get("new_version"),
            candidate_score=float(metadata.get("candidate_score", float("nan"))),
            champion_score=_optional_float(metadata.get("previous_champion_score")),
            evidence=evidence,
        )
    return None
