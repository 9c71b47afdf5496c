"""When to ask for a retrain: one request per episode, with a cool-down.

A *trigger* is drift at ERROR or a rolling forecast error above ``accuracy_factor`` x the
champion's test error at matched horizons. An episode starts when a trigger first holds and
ends on the first evaluation where none holds; a request is made at the start of an episode
unless the last request is younger than the cool-down (then the episode is noted, and a
request follows once the cool-down has passed while the trigger still holds).

An episode's run answers the triggers that held when it was requested. A trigger that joins
later (the accuracy degrading days into a drift episode, as after a unit change: the 7-day
RMSE worse than persistence, and no retrain because the drift request had been made) gets
one request of its own, after the cool-down, with its own run key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class RetrainPolicy:
    accuracy_factor: float = 1.5
    """Rolling 7-day RMSE above this multiple of the champion's test RMSE (matched horizon)."""
    cooldown_hours: int = 72
    """No second request within this long after one (training takes minutes to hours)."""


@dataclass
class RetrainState:
    """Kept in the retraining sensor's cursor."""

    episode_start: str | None = None
    requested_for_episode: bool = False
    last_request_at: str | None = None
    requested_for: tuple[str, ...] = ()
    """The triggers the episode's requests answered."""

    def to_cursor(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> RetrainState:
        if not cursor:
            return cls()
        doc = json.loads(cursor)
        doc["requested_for"] = tuple(doc.get("requested_for", ()))
        return cls(**doc)


@dataclass(frozen=True)
class Decision:
    request: bool
    reason: str
    run_key: str | None
    state: RetrainState


def decide(
    now: datetime,
    drift_error: bool,
    accuracy_exceeded: bool,
    state: RetrainState,
    policy: RetrainPolicy,
    detail: str = "",
) -> Decision:
    """The decision at ``now`` given the current triggers and the cursor state."""
    reasons = [r for r, on in (("drift", drift_error), ("accuracy", accuracy_exceeded)) if on]
    if not reasons:
        return Decision(False, "no trigger", None, RetrainState(None, False, state.last_request_at))
    new = RetrainState(
        state.episode_start or now.isoformat(),
        state.requested_for_episode,
        state.last_request_at,
        state.requested_for if state.episode_start else (),
    )
    if new.requested_for_episode and not new.requested_for:
        new.requested_for = ("drift",)  # a cursor from before the triggers were recorded
    joined = [r for r in reasons if r not in new.requested_for]
    if new.requested_for_episode and not joined:
        return Decision(
            False,
            f"episode since {new.episode_start} already has a run (for "
            f"{'+'.join(new.requested_for)}); the next request waits for a new trigger",
            None,
            new,
        )
    asked = joined if new.requested_for_episode else reasons
    reason = "+".join(asked) + (f": {detail}" if detail else "")
    if state.last_request_at is not None:
        since = now - datetime.fromisoformat(state.last_request_at)
        if since < timedelta(hours=policy.cooldown_hours):
            return Decision(
                False, f"{'+'.join(asked)}: cool-down ({since} since the last request)", None, new
            )
    key = f"retrain:{new.episode_start}"
    if new.requested_for_episode:
        key += ":" + "+".join(asked)
    new.requested_for_episode = True
    new.requested_for = tuple(sorted({*new.requested_for, *reasons}))
    new.last_request_at = now.isoformat()
    return Decision(True, reason, key, new)


def trigger_detail(drift: Mapping[str, Any], accuracy: Mapping[str, Any]) -> str:
    """One readable line of the evidence (a run tag and the sensor's log): the drift status
    with its score and per-location reasons, and the worst 7-day RMSE / test RMSE ratio."""
    score = drift.get("drift_score")
    text = f"drift {drift.get('status', 'none')}"
    if isinstance(score, float) and math.isfinite(score):
        text += f" (score {score:.2f})"
    reasons = drift.get("reasons") or {}
    shown = "; ".join(f"{loc}: {why}" for loc, why in reasons.items() if why)
    if shown:
        text += f": {shown}"
    ratios = {h: r for h, r in (accuracy.get("ratio_to_test_rmse_7d") or {}).items() if r == r}
    if ratios:
        horizon, worst = max(ratios.items(), key=lambda kv: kv[1])
        text += (
            f"; 7-day RMSE / test RMSE at most {worst:.2f} (h{horizon}; retrain above "
            f"{accuracy.get('accuracy_factor', '?')})"
        )
    else:
        text += "; 7-day RMSE not scored yet"
    return text
