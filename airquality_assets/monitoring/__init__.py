"""Operating-loop logic without Dagster: metrics, drift statistics, forecast scoring, alerts.

Every module here is pure (or talks only to what it is handed: a registry, a URL) and is
tested without a Dagster instance; ``airquality_assets/defs`` wires it into assets, checks,
sensors and schedules.
"""
