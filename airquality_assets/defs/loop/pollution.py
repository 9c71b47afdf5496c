"""The high-pollution alert sensor: subscribers hear when the air is forecast to be Poor.

Each tick reads every location's newest stored forecast (the forecast store, as
``GET /forecast`` does) and hands them to
:func:`airquality_assets.monitoring.pollution_alerts.step`, which decides per episode; the
episode state is the sensor's cursor. Messages go through Apprise to
``AIRQUALITY_SUBSCRIBER_ALERT_URLS`` (the public's channel, apart from the operators'
``AIRQUALITY_ALERT_URLS``); without any, the Dagster log is the channel.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from airquality_assets.defs.resources import DeploymentResource, OperationsResource
from airquality_assets.monitoring.alerts import AppriseNotifier, parse_urls
from airquality_assets.monitoring.forecasting import ForecastStore
from airquality_assets.monitoring.pollution_alerts import EpisodeState, Outlook, outlook, step

#: How far back a tick reads issues it has not seen (a sensor stopped longer starts afresh).
CATCH_UP = timedelta(hours=48)


def new_issues(store: ForecastStore, location: str, last: str | None, now: datetime):
    """The stored issues of ``location`` after ``last`` (at most :data:`CATCH_UP` back), in
    issue order, each as its rows; without ``last`` (a sensor turned on for the first time)
    only the newest: it reports what is forecast now, not yesterday's episodes."""
    start = pd.Timestamp(now) - CATCH_UP
    if last is not None:
        start = max(pd.Timestamp(last) + pd.Timedelta(seconds=1), start)
    rows = store.read(start.to_pydatetime(), now, [location])  # never an issue after now
    if rows.empty:
        return []
    issued = pd.to_datetime(rows["issued_at"], utc=True)
    groups = [group for _, group in rows.groupby(issued, sort=True)]
    return groups if last is not None else groups[-1:]


def pollution_tick(
    deployment: DeploymentResource, operations: OperationsResource, cursor: str | None
) -> tuple[str, list[str]]:
    """One evaluation: ``(new cursor, lines saying what was sent)``. Every issue stored
    since the last tick is stepped through in order, so a tick that stands for many hours
    (a late daemon, the simulation's daily ticks) decides as hourly ticks would."""
    settings = deployment.settings
    store = ForecastStore(settings.storage_root)
    threshold = operations.pollution_alert_band
    now = settings.clock.now()
    state = EpisodeState.from_cursor(cursor)
    by_hour: dict[str, dict[str, Outlook | None]] = {}
    for location in settings.location_names:
        for rows in new_issues(store, location, state.last_issue.get(location), now):
            seen = outlook(rows, threshold)
            if seen is not None:
                by_hour.setdefault(seen.issued_at, {})[location] = seen
    notifier = AppriseNotifier(
        parse_urls(operations.subscriber_alert_urls), attempts=operations.alert_attempts
    )
    lines: list[str] = []
    for hour in sorted(by_hour):
        outcome = step(by_hour[hour], state, notifier, threshold=threshold)
        state = outcome.state
        lines += [f"sent: {a.title}: {a.body}" for a in outcome.delivered]
        if outcome.failed:  # stop here: the next tick retries from this issue
            lines += [f"not delivered (retried next tick): {a.title}" for a in outcome.failed]
            break
    return state.to_cursor(), lines


@dg.sensor(
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Alerts subscribers (AIRQUALITY_SUBSCRIBER_ALERT_URLS, Apprise) once per episode in "
        "which a location's latest forecast reaches the configured OWM band within 24 h "
        "(default 4, Poor), and once when it is over; the episodes are its cursor."
    ),
)
def pollution_alert_sensor(
    context: dg.SensorEvaluationContext,
    deployment: DeploymentResource,
    operations: OperationsResource,
) -> Iterator[dg.SkipReason]:
    cursor, lines = pollution_tick(deployment, operations, context.cursor)
    context.update_cursor(cursor)
    for line in lines:
        context.log.info(line)
    open_now = sorted(EpisodeState.from_cursor(cursor).open_since)
    yield dg.SkipReason(
        "; ".join(lines) or f"no change; open episodes: {', '.join(open_now) or 'none'}"
    )
