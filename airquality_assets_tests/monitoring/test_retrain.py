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
