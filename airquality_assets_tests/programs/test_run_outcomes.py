"""A training run's promotion decision, read back from champion_model's metadata (a run
executed from the code location keeps no outputs in memory)."""

from __future__ import annotations

import dagster as dg

from airquality_assets.programs.run_outcomes import champion_decision


def _run_with(metadata: dict) -> dg.ExecuteInProcessResult:
    @dg.asset(name="champion_model")
    def champion() -> dg.Output[None]:
        return dg.Output(None, metadata=metadata)

    return dg.materialize([champion])


def test_the_decision_comes_back_from_the_metadata() -> None:
    result = _run_with(
        {
            "promoted": True,
            "reason": "candidate better (p 0.01)",
            "new_version": "3",
            "candidate_score": 41.25,
            "previous_champion_score": "44.5",
            "gate_p_better": 0.01,
            "gate_windows_used": 12.0,
            "gate_windows": 14.0,
            "gate_excluded_by": dg.MetadataValue.json({"stuck": 2}),
        }
    )
    decision = champion_decision(result)
    assert decision is not None
    assert decision.promoted and decision.reason == "candidate better (p 0.01)"
    assert decision.new_version == "3"
    assert decision.candidate_score == 41.25 and decision.champion_score == 44.5
    assert decision.evidence["gate_windows_used"] == "12"  # printed as a count
    assert float(decision.evidence["gate_p_better"]) == 0.01


def test_no_champion_yet_and_no_champion_model() -> None:
    first = champion_decision(
        _run_with(
            {
                "promoted": True,
                "reason": "first",
                "new_version": "1",
                "candidate_score": 40.0,
                "previous_champion_score": "None",
            }
        )
    )
    assert first is not None and first.champion_score is None

    @dg.asset
    def other() -> None:
        return None

    assert champion_decision(dg.materialize([other])) is None
