"""The high-pollution alert sensor: subscribers hear when the air is forecast to be Poor.

Each tick reads every location's newest stored forecast (the forecast store, as
``GET /forecast`` does) and hands them to
:func:`airquality_assets.monitoring.pollution_alerts.step`, which decides per episode; the
episode state is the sensor's cursor. Messages go through Apprise to
``AIRQUALITY_SUBSCRIBER_ALERT_URLS`` (the public's channel, apart from the operators'
``AIRQUALITY_ALERT_URLS``); without any, the Dagster log is the channel.
"""

from collections.abc import Iterator

import dagster as dg

from airquality_assets.defs.resources import DeploymentResource, OperationsResource
from airquality_assets.monitoring.alerts import AppriseNotifier, parse_urls
from airquality_assets.monitoring.forecasting import ForecastStore
from airquality_assets.monitoring.pollution_alerts import EpisodeState, outlook, step


def pollution_tick(
    deployment: DeploymentResource, operations: OperationsResource, cursor: str | None
) -> tuple[str, list[str]]:
    """One evaluation: ``(new cursor, lines saying what was sent or why nothing was)``.
    Apart from the sensor so the simulation ticks it the way the daemon does."""
    settings = deployment.settings
    store = ForecastStore(settings.storage_root)
    threshold = operations.pollution_alert_band
    outlooks = {loc: outlook(store.latest(loc), threshold) for loc in settings.location_names}
    notifier = AppriseNotifier(
        parse_urls(operations.subscriber_alert_urls), attempts=operations.alert_attempts
    )
    outcome = step(outlooks, EpisodeState.from_cursor(cursor), notifier, threshold=threshold)
    lines = [f"sent: {a.title}: {a.body}" for a in outcome.delivered]
    lines += [f"not delivered (retried next tick): {a.title}" for a in outcome.failed]
    return outcome.state.to_cursor(), lines


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
