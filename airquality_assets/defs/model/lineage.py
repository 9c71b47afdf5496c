"""Training records its data: the sequence tensors' record (digest, split ranges, raw
partition versions, the config that built them) as the MLflow runs' dataset input.

``sequence_tensors`` puts the record in its materialization's metadata (and its digest as
its data version); the training and evaluation steps read it back from the instance, check
it is the record of the tensors they loaded, and log it on their MLflow runs.
"""

import json
from typing import Any

import dagster as dg

from airquality_assets.ml.lineage import DataRecord, split_ranges, tensors_digest
from airquality_assets.transforms.windowing import SequenceTensors

RECORD_KEY = "data_record"
RAW_ASSETS = ("raw_air_quality", "raw_weather", "raw_weather_forecast")


def record_metadata(record: DataRecord) -> dict[str, Any]:
    return {
        "tensors_digest": record.digest,
        RECORD_KEY: dg.MetadataValue.json(
            {"source": record.source, **json.loads(record.profile())}
        ),
        "raw_partitions": len(record.partitions),
    }


def tensors_record(
    instance: dg.DagsterInstance, tensors: SequenceTensors, log: Any = None
) -> DataRecord:
    """The record of ``tensors``: the newest ``sequence_tensors`` materialization's, when it
    is theirs (same digest); else (tensors handed in without one) their digest and split
    ranges alone, with a warning, so the run still says what it trained on."""
    digest = tensors_digest(tensors)
    event = instance.get_latest_materialization_event(dg.AssetKey("sequence_tensors"))
    materialization = event.asset_materialization if event else None
    metadata = materialization.metadata if materialization is not None else {}
    if RECORD_KEY in metadata and metadata["tensors_digest"].value == digest:
        data = dict(metadata[RECORD_KEY].value)  # type: ignore[arg-type]
        source = data.pop("source")
        return DataRecord.from_profile(digest, str(source), json.dumps(data))
    if log is not None:
        log.warning(
            f"no sequence_tensors materialization records tensors {digest[:12]}: their "
            "digest and splits are logged without partition versions"
        )
    return DataRecord(digest, split_ranges(tensors), {}, {}, "")
