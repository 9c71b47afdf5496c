"""Dagster wiring only: each domain package (``data``, ``model``, ``serving``, ``loop``) holds
its assets, checks, jobs, schedules and sensors and calls down into the pure packages.

How definitions are assembled: ``airquality_assets/definitions.py`` reads :class:`Settings`
once and calls :func:`build_definitions`, which merges each domain's ``definitions(...)``
with the deployment's resources (not dg's autoloading: partitions, the training executor and
the resources depend on the settings, so no definition can be a module-level object).
"""

from __future__ import annotations

import dagster as dg

from airquality_assets.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every asset, check, job, schedule and resource of the deployment ``settings`` describe."""
    from airquality_assets.defs import data, loop, model, serving
    from airquality_assets.defs.partitions import build_partitions
    from airquality_assets.defs.resources import build_resources

    return dg.Definitions.merge(
        data.definitions(build_partitions(settings)),
        model.definitions(settings),
        serving.definitions(),
        loop.definitions(settings),
        dg.Definitions(resources=build_resources(settings)),
    )
