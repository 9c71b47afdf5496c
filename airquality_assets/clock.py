"""The one owner of "now": the wall clock for live sources, a replay instant for bundled data.

Schedules, freshness checks and the replay sources all ask a :class:`Clock` instead of
calling ``datetime.now`` or holding their own instant, so a replay deployment behaves like a
live one whose present is ``replay_now``. A clock is a value: to let simulated time move,
build a new one from run configuration or a sensor cursor; nothing here is a module-level
"current time".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

#: Default replay instant: the last day of the bundled data, so almost five years are "past".
REPLAY_DEFAULT_NOW = datetime(2014, 12, 31, tzinfo=UTC)


def to_utc(value: datetime | str) -> datetime:
    """An ISO string or datetime as tz-aware UTC; a naive value is taken as UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Clock:
    """``replay_now`` set: a fixed replay instant; ``None``: the wall clock (live sources)."""

    replay_now: datetime | None = None

    def __post_init__(self) -> None:
        if self.replay_now is not None:
            object.__setattr__(self, "replay_now", to_utc(self.replay_now))

    @property
    def is_replay(self) -> bool:
        return self.replay_now is not None

    def now(self, wall: datetime | None = None) -> datetime:
        """The present in UTC. ``wall`` is the caller's wall time (e.g. a schedule tick's
        scheduled time), used instead of ``datetime.now`` by a wall clock; a replay clock
        ignores it."""
        if self.replay_now is not None:
            return self.replay_now
        return to_utc(wall) if wall is not None else datetime.now(UTC)
