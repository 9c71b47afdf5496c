"""The per-source circuit breaker."""

from __future__ import annotations

import pytest

from airquality_assets.sources.base import SourceError
from airquality_assets.sources.breaker import CircuitBreaker, CircuitOpenError


def _failing(day: int) -> SourceError:
    return SourceError("openweathermap", "x", f"day {day}", "server error", status=503)


def test_trips_after_threshold_consecutive_failures_and_names_the_last_errors() -> None:
    breaker = CircuitBreaker("openweathermap", threshold=3, keep_errors=2)
    calls = []

    def pull(day: int):
        def run() -> None:
            calls.append(day)
            raise _failing(day)

        return run

    for day in (1, 2):
        with pytest.raises(SourceError):
            breaker.call(pull(day))
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(pull(3))
    message = str(caught.value)
    assert "openweathermap: circuit breaker open after 3 consecutive failed pulls" in message
    assert "AIRQUALITY_CIRCUIT_BREAKER_FAILURES=3; 0 never stops" in message  # what to set
    assert "day 3" in message and "day 2" in message and "day 1" not in message
    with pytest.raises(CircuitOpenError):
        breaker.call(pull(4))
    assert calls == [1, 2, 3]  # nothing sent once open


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker("visualcrossing", threshold=2)
    for day in range(5):
        with pytest.raises(SourceError):
            breaker.call(lambda d=day: (_ for _ in ()).throw(_failing(d)))
        assert breaker.call(lambda: "ok") == "ok"
    assert not breaker.is_open


def test_zero_disables_and_negative_is_rejected() -> None:
    breaker = CircuitBreaker("x", threshold=0)
    for day in range(10):
        with pytest.raises(SourceError):
            breaker.call(lambda d=day: (_ for _ in ()).throw(_failing(d)))
    with pytest.raises(ValueError, match="AIRQUALITY_CIRCUIT_BREAKER_FAILURES must be >= 0"):
        CircuitBreaker("x", threshold=-1)
