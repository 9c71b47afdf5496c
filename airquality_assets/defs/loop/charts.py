"""Charts of the operating loop as images Dagster shows inline.

Dagster renders Markdown metadata inline only when it is short, so a base64 PNG hides
behind "[Show Markdown]". Each chart is logged instead as an artifact of the champion's
MLflow run (under ``monitoring/<clock>/``, one folder per materialization, so an old
event keeps its own chart) and the metadata holds a short image link to the tracking
server's artifact route, which the browser loads. Without a champion run to log to, the
chart is embedded (base64) as before.
"""

import base64
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from airquality_assets import markdown
from airquality_assets.defs.model.mlflow import MlflowResource

MONITORING_ARTIFACTS = "monitoring"
#: How many earlier materializations a trend chart goes back (the daily monitoring: ~3 months).
TREND_EVENTS = 90


def monitoring_folder(clock: datetime) -> str:
    """The champion run's artifact folder of one materialization at ``clock``."""
    return f"{MONITORING_ARTIFACTS}/{clock:%Y-%m-%dT%H%MZ}"


def embedded_png(title: str, png: bytes) -> dg.MetadataValue:
    """A PNG as a base64 Markdown image (Dagster shows it behind "[Show Markdown]")."""
    return dg.MetadataValue.md(
        f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
    )


def chart_metadata(
    mlflow: MlflowResource,
    run_id: str | None,
    folder: str,
    charts: dict[str, tuple[str, bytes]],
) -> dict[str, dg.MetadataValue]:
    """Log ``charts`` (metadata key -> (title, PNG)) to ``run_id`` under ``folder`` and
    return their metadata: an inline image each; embedded images when there is no run."""
    if not run_id:
        return {key: embedded_png(title, png) for key, (title, png) in charts.items()}
    client, pages = mlflow.client(), mlflow.pages()
    out: dict[str, dg.MetadataValue] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, (title, png) in charts.items():
            path = Path(tmp) / f"{key}.png"
            path.write_bytes(png)
            client.log_artifact(run_id, str(path), folder)
            url = pages.artifact(run_id, f"{folder}/{path.name}")
            out[key] = dg.MetadataValue.md(markdown.image(title, url))
    return out


def trend_points(
    instance: dg.DagsterInstance,
    asset: str,
    columns: Sequence[str],
    current: Mapping[str, object],
) -> pd.DataFrame:
    """``clock`` and ``columns`` of the asset's last :data:`TREND_EVENTS` materializations
    and of the one being written (``current``), one row per deployment clock (a re-run at
    the same clock replaces the earlier value), in clock order."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=TREND_EVENTS).records
    rows = []
    for record in reversed(records):  # oldest first, so a later value at a clock wins
        meta = record.asset_materialization.metadata if record.asset_materialization else {}
        if "clock" in meta:
            values = {c: getattr(meta.get(c), "value", None) for c in columns}
            rows.append({"clock": meta["clock"].value, **values})
    rows.append({"clock": current["clock"], **{c: current.get(c) for c in columns}})
    frame = pd.DataFrame(rows, columns=["clock", *columns])
    frame["clock"] = pd.to_datetime(frame["clock"], utc=True)
    frame = frame.drop_duplicates("clock", keep="last").sort_values("clock")
    return frame.reset_index(drop=True)
