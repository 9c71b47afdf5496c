"""Check alerts: one message per failure episode, one when it resolves, through Apprise.

A failed asset check does not fail its run, so run-failure sensors never see it. The alert
sensor hands this module the check evaluations recorded since its cursor, in order; an
*episode* starts at the first failed evaluation of a (asset, partition, check) and ends at
the next passing one. Every start sends "failure" once, every end "resolved" once. A check
on daily partitions is one stream per location (its episodes span days), and a pass for
lack of evidence (``inconclusive``: "warming up", "not enough data") ends nothing.

Delivery goes through Apprise (``json://``, ``slack://``, ``mailto://``, ... one library for
every channel). A receiver that fails or times out is retried; if it still fails, processing
stops *before* that alert and the cursor stays there, so the next tick tries again; after
``give_up_after`` failed ticks the alert is given up on explicitly (logged, counted) and the
cursor moves on. The cursor never passes an alert that was neither delivered nor given up.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

logger = logging.getLogger(__name__)

FAILURE, RESOLVED = "failure", "resolved"
#: Check metadata key: a passing evaluation that passed for lack of evidence ("warming up",
#: "not enough data") and so must not resolve an open episode.
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class CheckEvaluation:
    """One recorded check evaluation (from an ``ASSET_CHECK_EVALUATION`` event)."""

    storage_id: int
    asset: str
    check: str
    partition: str | None
    passed: bool
    severity: str  # "ERROR" or "WARN"
    description: str | None
    run_id: str
    stream: str | None = None
    """What an episode is about when not the partition: a daily-partitioned check's days are
    one stream per location (a fault over six days is one episode, not six)."""
    inconclusive: bool = False
    """Passed for lack of evidence (the check's metadata says ``inconclusive``)."""

    @property
    def episode_key(self) -> str:
        scope = self.stream if self.stream is not None else (self.partition or "")
        return f"{self.asset}|{self.check}|{scope}"


@dataclass(frozen=True)
class Alert:
    kind: str  # FAILURE or RESOLVED
    evaluation: CheckEvaluation
    ui_url: str

    @property
    def title(self) -> str:
        e = self.evaluation
        where = f" [{e.partition}]" if e.partition else ""
        if self.kind == FAILURE:
            return f"{e.severity} check failed: {e.asset}.{e.check}{where}"
        return f"resolved: {e.asset}.{e.check}{where}"

    @property
    def body(self) -> str:
        e = self.evaluation
        lines = [
            f"asset: {e.asset}",
            f"partition: {e.partition or '-'}",
            f"check: {e.check}",
            f"severity: {e.severity}",
            f"reason: {(e.description or ('passes again' if e.passed else 'failed'))[:300]}",
            f"run: {e.run_id}",
            f"ui: {self.ui_url}",
        ]
        return "\n".join(lines)

    @property
    def notify_type(self) -> str:
        """Apprise's notification type."""
        if self.kind == RESOLVED:
            return "success"
        return "failure" if self.evaluation.severity == "ERROR" else "warning"


@dataclass(frozen=True)
class RunFailureAlert:
    """A failed run of any job. For the model half, ``champion`` says the alias did not move
    (the gate runs last); ``partition`` names what a partitioned run was for."""

    job: str
    run_id: str
    error: str
    ui_url: str
    champion: str | None = None
    partition: str | None = None
    kind: str = FAILURE

    @property
    def title(self) -> str:
        where = f" [{self.partition}]" if self.partition else ""
        return f"ERROR run failed: {self.job} {self.run_id[:8]}{where}"

    @property
    def body(self) -> str:
        lines = [f"job: {self.job}", f"run: {self.run_id}"]
        if self.partition:
            lines.append(f"partition: {self.partition}")
        lines.append(f"error: {self.error[:500] or 'no message'}")
        if self.champion is not None:
            lines.append(f"champion: {self.champion} (unchanged)")
        lines.append(f"ui: {self.ui_url}")
        return "\n".join(lines)

    @property
    def notify_type(self) -> str:
        return "failure"


@dataclass
class AlertState:
    """What the sensor keeps in its cursor (JSON)."""

    after_storage_id: int = 0
    open_episodes: list[str] = field(default_factory=list)
    failed_ticks: int = 0
    """Ticks in a row on which the alert at the cursor could not be delivered."""
    counters: dict[str, float] = field(default_factory=dict)
    """Running totals of ``alerts_sent_total`` (see ``metrics.CounterTotals``)."""

    def to_cursor(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> AlertState:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(
            after_storage_id=int(data.get("after_storage_id", 0)),
            open_episodes=list(data.get("open_episodes", [])),
            failed_ticks=int(data.get("failed_ticks", 0)),
            counters={str(k): float(v) for k, v in data.get("counters", {}).items()},
        )


@dataclass
class TickOutcome:
    state: AlertState
    delivered: list[Alert] = field(default_factory=list)
    given_up: list[Alert] = field(default_factory=list)
    blocked: Alert | None = None
    """The alert at which this tick stopped (delivery failed, will be retried next tick)."""


def ui_url(base_url: str, asset: str) -> str:
    """The Dagster UI page of an asset's checks."""
    return f"{base_url.rstrip('/')}/assets/{asset.replace('.', '/')}?view=checks"


def alerts_for(evaluation: CheckEvaluation, open_episodes: set[str], base_url: str) -> Alert | None:
    """The alert an evaluation causes given the open episodes (None: nothing new)."""
    key = evaluation.episode_key
    if not evaluation.passed and key not in open_episodes:
        return Alert(FAILURE, evaluation, ui_url(base_url, evaluation.asset))
    if evaluation.passed and not evaluation.inconclusive and key in open_episodes:
        return Alert(RESOLVED, evaluation, ui_url(base_url, evaluation.asset))
    return None


def latest_per_episode(evaluations: Iterable[CheckEvaluation]) -> list[CheckEvaluation]:
    """Only the newest evaluation of each (asset, check, partition), in storage id order.

    What a sensor turned on for the first time reads: it reports what is failing now, not
    every failure and recovery already in the instance's history.
    """
    latest: dict[str, CheckEvaluation] = {}
    for evaluation in sorted(evaluations, key=lambda e: e.storage_id):
        latest[evaluation.episode_key] = evaluation
    return sorted(latest.values(), key=lambda e: e.storage_id)


def process(
    evaluations: Iterable[CheckEvaluation],
    state: AlertState,
    deliver: Callable[[Alert], bool],
    base_url: str = "http://127.0.0.1:3000",
    give_up_after: int = 3,
) -> TickOutcome:
    """Walk evaluations (storage id order) after the cursor; deliver what they cause.

    ``deliver`` returns True when the alert reached every receiver (it does its own retries).
    """
    open_episodes = set(state.open_episodes)
    new = TickOutcome(state=AlertState(state.after_storage_id, [], state.failed_ticks))
    for evaluation in sorted(evaluations, key=lambda e: e.storage_id):
        if evaluation.storage_id <= new.state.after_storage_id:
            continue
        alert = alerts_for(evaluation, open_episodes, base_url)
        if alert is not None:
            try:
                ok = bool(deliver(alert))
            except Exception as exc:  # a channel's bug must not kill the sensor
                logger.warning("alert delivery raised %s: %s", type(exc).__name__, exc)
                ok = False
            if ok:
                new.delivered.append(alert)
            elif new.state.failed_ticks + 1 >= give_up_after:
                logger.error("giving up on alert after %d ticks: %s", give_up_after, alert.title)
                new.given_up.append(alert)
            else:
                new.state.failed_ticks += 1
                new.blocked = alert
                break
            new.state.failed_ticks = 0
            if alert.kind == FAILURE:
                open_episodes.add(evaluation.episode_key)
            else:
                open_episodes.discard(evaluation.episode_key)
        new.state.after_storage_id = evaluation.storage_id
    new.state.open_episodes = sorted(open_episodes)
    return new


class AppriseNotifier:
    """Sends an alert to every configured Apprise URL, retrying a failed send."""

    def __init__(
        self,
        urls: Sequence[str],
        attempts: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import apprise

        self.urls = [u.strip() for u in urls if u.strip()]
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._apprise = apprise.Apprise()
        for url in self.urls:
            if not self._apprise.add(url):
                raise ValueError(f"not a valid Apprise URL: {_redact(url)}")

    def __call__(self, alert: Alert | RunFailureAlert) -> bool:
        if not self.urls:
            return True  # nothing configured: the Dagster log and the counter are the channel
        for attempt in range(1, self.attempts + 1):
            if self._apprise.notify(
                title=alert.title, body=alert.body, notify_type=alert.notify_type
            ):
                return True
            logger.warning("alert delivery attempt %d/%d failed: %s", attempt, self.attempts,
                           alert.title)  # fmt: skip
            if attempt < self.attempts:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        return False


def parse_urls(text: str | None) -> list[str]:
    """``AIRQUALITY_ALERT_URLS``: comma-separated Apprise URLs."""
    return [u.strip() for u in (text or "").split(",") if u.strip()]


def _redact(url: str) -> str:
    """Scheme and host only: URLs carry tokens and passwords."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0].split('@')[-1]}/..."
