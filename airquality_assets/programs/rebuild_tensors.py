"""Rebuild a registered model's training tensors from the stored data and check the digest.

The model version's ``data.run_id`` tag names the run whose ``sequence_tensors`` dataset
input records the tensors' digest, the raw partitions' data versions and the config that
built them. This compares those versions with what is stored now (a partition that differs
can be brought back with ``programs.restore_pull``), rebuilds frames and tensors from the
stored raw bodies in a scratch directory (nothing pulled, the stored frames untouched) and
compares the digest::

    python -m airquality_assets.programs.rebuild_tensors              # the @champion
    python -m airquality_assets.programs.rebuild_tensors --version 3
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from airquality_assets.settings import Settings
from airquality_assets.storage import load_tensors, raw_month_digest, storage_location


@dataclass(frozen=True)
class Rebuild:
    recorded: str
    rebuilt: str
    changed_partitions: list[str]  # raw partitions whose stored data differ from the record

    @property
    def matches(self) -> bool:
        return self.recorded == self.rebuilt


def rebuild(settings: Settings, version: str | None = None, alias: str = "champion") -> Rebuild:
    import dagster as dg
    from mlflow import MlflowClient

    from airquality_assets.defs.data.frames import frame_assets
    from airquality_assets.defs.model.tensors import sequence_tensors
    from airquality_assets.defs.partitions import build_partitions, range_tags
    from airquality_assets.defs.resources import RawStore, build_resources
    from airquality_assets.ml.lineage import RUN_TAG, read_data_record, tensors_digest

    client = MlflowClient(settings.mlflow_tracking_uri)
    name = settings.model_name
    found = (
        client.get_model_version(name, version)
        if version
        else client.get_model_version_by_alias(name, alias)
    )
    record = read_data_record(client, found.tags.get(RUN_TAG) or found.run_id)
    root = storage_location(settings.storage_root)
    changed = []
    for key, recorded in sorted(record.partitions.items()):
        asset, month, location = key.split("|")
        if raw_month_digest(root, asset, location, date.fromisoformat(month)) != recorded:
            changed.append(key)
    with tempfile.TemporaryDirectory(prefix="aq-rebuild-") as scratch:
        local = settings.replace(data_dir=Path(scratch), storage_url=None)
        partitions = build_partitions(local)
        resources = build_resources(local)
        resources["raw_store"] = RawStore(base_dir=settings.storage_root)
        months = partitions.monthly.get_partition_keys()
        first, last = (str(k).split("|")[0] for k in (months[0], months[-1]))
        dg.materialize(
            [*frame_assets(partitions), sequence_tensors],
            selection=[
                "hourly_observations",
                "air_quality_hourly",
                "weather_hourly",
                "weather_forecasts",
                "sequence_tensors",
            ],
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
            tags=range_tags(first, last, local.location_names),
            run_config={"ops": {"sequence_tensors": {"config": record.config}}},
            raise_on_error=True,
        )
        rebuilt = load_tensors(Path(scratch) / "tensors" / "sequence_tensors")
        return Rebuild(record.digest, tensors_digest(rebuilt), changed)


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="a model version (default: the alias's)")
    parser.add_argument("--alias", default="champion")
    args = parser.parse_args(argv)
    outcome = rebuild(settings or Settings.from_env(), args.version, args.alias)
    for key in outcome.changed_partitions:
        print(f"stored data differ from the record: {key}")
    print(f"recorded {outcome.recorded}\nrebuilt  {outcome.rebuilt}")
    print("bit-exact" if outcome.matches else "DIFFERENT")
    return 0 if outcome.matches else 1


if __name__ == "__main__":
    raise SystemExit(main())
