"""One retraining request per episode, and a cool-down between requests."""

from datetime import UTC, datetime, timedelta

from airquality_assets.monitoring.retrain import RetrainPolicy, RetrainState, decide, trigger_detail

T0 = datetime(2014, 3, 1, tzinfo=UTC)
POLICY = RetrainPolicy(cooldown_hours=72)


def test_one_request_per_episode() -> None:
    state = RetrainState()
    requests = []
    triggers = [False, True, True, True, False, False]
    for day, on in enumerate(triggers):
        d = decide(T0 + timedelta(days=day), on, False, state, POLICY)
        state = RetrainState.from_cursor(d.state.to_cursor())
        requests.append(d.run_key)
    assert requests == [None, f"retrain:{(T0 + timedelta(days=1)).isoformat()}", None, None, None,
                        None]  # fmt: skip
    assert state.episode_start is None


def test_cool_down_delays_the_next_episode_request() -> None:
    state = RetrainState()
    first = decide(T0, True, False, state, POLICY)
    assert first.request
    gap = decide(T0 + timedelta(days=1), False, False, first.state, POLICY)
    again = decide(T0 + timedelta(days=2), False, True, gap.state, POLICY)  # new episode
    assert not again.request and "cool-down" in again.reason
    later = decide(T0 + timedelta(days=4), False, True, again.state, POLICY)
    assert later.request and later.reason.startswith("accuracy")
    assert later.run_key == f"retrain:{(T0 + timedelta(days=2)).isoformat()}"


def test_accuracy_degrading_inside_a_drift_episode_gets_its_own_request() -> None:
    """The unit-change run: drift at ERROR from day 0 (one request), the 7-day RMSE
    degraded from day 3 on; the accuracy gets one request after the cool-down, not one
    per day."""
    state = RetrainState()
    keys, reasons = [], []
    for day in range(8):
        d = decide(T0 + timedelta(days=day), True, day >= 3, state, POLICY)
        state = RetrainState.from_cursor(d.state.to_cursor())
        keys.append(d.run_key)
        reasons.append(d.reason)
    episode = T0.isoformat()
    assert keys == [f"retrain:{episode}", None, None, f"retrain:{episode}:accuracy", None,
                    None, None, None]  # fmt: skip
    assert "already has a run (for drift)" in reasons[1]
    assert reasons[3].startswith("accuracy") and "(for accuracy+drift)" in reasons[4]
    # the next episode starts afresh
    gap = decide(T0 + timedelta(days=9), False, False, state, POLICY)
    assert gap.state.requested_for == ()


def test_a_cursor_from_before_the_triggers_were_recorded_still_reads() -> None:
    old = '{"episode_start": "2014-03-01T00:00:00+00:00", "last_request_at": null, ' \
        '"requested_for_episode": true}'  # fmt: skip
    d = decide(T0 + timedelta(days=1), True, False, RetrainState.from_cursor(old), POLICY)
    assert not d.request and "already has a run" in d.reason


def test_no_trigger_never_requests() -> None:
    state = RetrainState()
    for day in range(30):
        d = decide(T0 + timedelta(days=day), False, False, state, POLICY)
        assert not d.request
        state = d.state


def test_trigger_detail_is_one_readable_line() -> None:
    drift = {"status": "error", "drift_score": 0.11976, "reasons": {"beijing": "pm2_5 stuck 25 h"}}
    accuracy = {"ratio_to_test_rmse_7d": {"1": 0.15, "20": 0.68, "24": 0.6}, "accuracy_factor": 1.5}
    assert trigger_detail(drift, accuracy) == (
        "drift error (score 0.12): beijing: pm2_5 stuck 25 h; "
        "7-day RMSE / test RMSE at most 0.68 (h20; retrain above 1.5)"
    )
    assert trigger_detail({}, {"ratio_to_test_rmse_7d": {"1": float("nan")}}) == (
        "drift none; 7-day RMSE not scored yet"
    )
