"""What a model learned from: the sequence tensors' digest, their split ranges and the data
versions of the raw partitions they were built from, as an MLflow dataset input.

The digest hashes the arrays themselves (names, dtypes, shapes, bytes) and the fields that
shape them, not the ``.npz`` file (a zip whose entries carry write times), so tensors
rebuilt from the same stored data give the same digest. The record is the run's dataset
input (what ``mlflow.log_input`` logs, here through the client, for a run id that is not
the active run) with the split ranges and partition versions as its profile, so the run's
page shows the data, and a model version's tags point to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from airquality_assets.transforms.windowing import SequenceTensors

DATASET_NAME = "sequence_tensors"
#: tags on a run and on its model versions
DIGEST_TAG = "data.tensors_digest"
RUN_TAG = "data.run_id"


def tensors_digest(tensors: SequenceTensors) -> str:
    """SHA-256 of the arrays and the fields that define them: equal iff bit-exact."""
    digest = hashlib.sha256()
    arrays = tensors.arrays()
    for name, array in arrays.items():
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{name}|{contiguous.dtype.str}|{contiguous.shape}|".encode())
        digest.update(contiguous.tobytes())
    fields = {
        "feature_names": tensors.feature_names,
        "target_names": tensors.target_names,
        "future_names": tensors.future_names,
        "locations": tensors.locations,
        "lookback": tensors.lookback,
        "horizons": tensors.horizons,
        "split_bounds": {k: list(v) for k, v in sorted(tensors.split_bounds.items())},
    }
    digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()


def split_ranges(tensors: SequenceTensors) -> dict[str, dict[str, Any]]:
    """Per split: how many windows, and the UTC hours of the first and last window's end
    (ISO text, as a person reads them on the MLflow run's dataset, not epoch seconds)."""
    times = np.asarray(tensors.times)
    out: dict[str, dict[str, Any]] = {}
    for name, ends in tensors.ends.items():
        if len(ends) == 0:
            out[name] = {"windows": 0}
            continue
        first, last = times[int(np.min(ends))], times[int(np.max(ends))]
        out[name] = {"windows": len(ends), "first_end": _utc(first), "last_end": _utc(last)}
    return out


def _utc(epoch_seconds: Any) -> str:
    return datetime.fromtimestamp(int(epoch_seconds), UTC).strftime("%Y-%m-%dT%H:%MZ")


@dataclass(frozen=True)
class DataRecord:
    """The data of one training: digest, split ranges, partition versions, how it was built."""

    digest: str
    splits: dict[str, dict[str, Any]]
    partitions: dict[str, str]  # "<asset>|<month>|<location>" -> data version
    config: dict[str, Any]  # the sequence_tensors run config (a rebuild uses it)
    source: str  # where the tensors are stored

    def profile(self) -> str:
        return json.dumps(
            {"splits": self.splits, "partitions": self.partitions, "config": self.config},
            sort_keys=True,
        )

    @classmethod
    def from_profile(cls, digest: str, source: str, profile: str) -> DataRecord:
        data = json.loads(profile)
        return cls(digest, data["splits"], data["partitions"], data["config"], source)


def data_record(
    tensors: SequenceTensors,
    partitions: Mapping[str, str],
    config: Mapping[str, Any],
    source: str,
) -> DataRecord:
    return DataRecord(
        tensors_digest(tensors), split_ranges(tensors), dict(partitions), dict(config), source
    )


def log_data_record(client: Any, run_id: str, record: DataRecord, context: str) -> None:
    """The record as the run's dataset input (context ``training`` or ``evaluation``)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = Dataset(
        name=DATASET_NAME,
        digest=record.digest[:36],  # MLflow's digest column holds 36 characters
        source_type="local" if "://" not in record.source else record.source.split("://")[0],
        source=json.dumps({"uri": record.source}),
        schema=None,
        profile=record.profile(),
    )
    client.log_inputs(
        run_id, datasets=[DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])]
    )
    client.set_tag(run_id, DIGEST_TAG, record.digest)


def link_data_record(
    client: Any, model_name: str, version: int | str, record: DataRecord, run_id: str
) -> None:
    """Tag a model version with its tensors' digest and the run whose input records them."""
    client.set_model_version_tag(model_name, str(version), DIGEST_TAG, record.digest)
    client.set_model_version_tag(model_name, str(version), RUN_TAG, run_id)


def read_data_record(client: Any, run_id: str) -> DataRecord:
    """The record a run logged (its ``sequence_tensors`` dataset input and digest tag)."""
    run = client.get_run(run_id)
    for dataset_input in run.inputs.dataset_inputs:
        dataset = dataset_input.dataset
        if dataset.name == DATASET_NAME:
            digest = run.data.tags.get(DIGEST_TAG, dataset.digest)
            source = json.loads(dataset.source).get("uri", "")
            return DataRecord.from_profile(digest, source, dataset.profile)
    raise LookupError(f"run {run_id} logged no {DATASET_NAME} dataset input")
