"""The one entry point: ``workspace.yaml``, ``dg`` and ``dagster dev`` all load this.

The environment is read here, once per load, and handed down as :class:`Settings`.
"""

import dagster as dg

from airquality_assets.defs import build_definitions
from airquality_assets.settings import Settings


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
