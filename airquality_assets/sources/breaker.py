"""A circuit breaker per source: stop a long pull when the API is plainly down.

Each pull already retries transient failures (``RetryPolicy``); when the API is down, every
partition of a three-year backfill would still retry five times (about 14 s each) and the
run would take hours to fail. The breaker counts consecutive failed pulls of one source and,
after ``threshold`` of them, refuses the rest with one clear error naming the source and the
last errors. Any success closes it again. Pure: no Dagster, no clock, no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TypeVar

from airquality_assets.sources.base import SourceError

T = TypeVar("T")

#: The variable a user sets to move the threshold (the breaker's messages name it).
THRESHOLD_VARIABLE = "AIRQUALITY_CIRCUIT_BREAKER_FAILURES"


class CircuitOpenError(RuntimeError):
    """The breaker of a source tripped; the message names the source and the last errors."""

    def __init__(self, source: str, failures: int, last_errors: list[str]) -> None:
        self.source = source
        self.failures = failures
        self.last_errors = last_errors
        listed = "\n".join(f"  - {error}" for error in last_errors)
        super().__init__(
            f"{source}: circuit breaker open after {failures} consecutive failed pulls; "
            f"stopping instead of working through the rest of the range ({THRESHOLD_VARIABLE}"
            f"={failures}; 0 never stops). Last errors:\n{listed}"
        )


class CircuitBreaker:
    """Counts consecutive :class:`SourceError` failures of one source.

    ``threshold`` consecutive failures open the breaker; :meth:`call` then raises
    :class:`CircuitOpenError` instead of calling. ``threshold=0`` disables it.
    """

    def __init__(self, source: str, threshold: int, keep_errors: int = 3) -> None:
        if threshold < 0:
            raise ValueError(
                f"{THRESHOLD_VARIABLE} must be >= 0 (0 disables the breaker), got {threshold}"
            )
        self.source = source
        self.threshold = threshold
        self.consecutive_failures = 0
        self._last_errors: deque[str] = deque(maxlen=max(keep_errors, 1))

    @property
    def is_open(self) -> bool:
        return self.threshold > 0 and self.consecutive_failures >= self.threshold

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self._last_errors.clear()

    def record_failure(self, error: SourceError) -> None:
        self.consecutive_failures += 1
        self._last_errors.append(str(error))

    def open_error(self) -> CircuitOpenError:
        return CircuitOpenError(self.source, self.consecutive_failures, list(self._last_errors))

    def call(self, pull: Callable[[], T]) -> T:
        """Run ``pull``; count its :class:`SourceError`; raise once the breaker is open.

        The error of the pull that trips the breaker is replaced by :class:`CircuitOpenError`
        (which lists it), so the caller stops at once.
        """
        if self.is_open:
            raise self.open_error()
        try:
            result = pull()
        except SourceError as exc:
            self.record_failure(exc)
            if self.is_open:
                raise self.open_error() from None
            raise
        self.record_success()
        return result
