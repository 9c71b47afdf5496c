"""Serving: the ``bento`` asset packages the champion for BentoML (``bento/service.py``)."""

from __future__ import annotations

import dagster as dg


def definitions() -> dg.Definitions:
    from airquality_assets.defs.serving.bento import bento

    return dg.Definitions(assets=[bento])
