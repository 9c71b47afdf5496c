"""Files on disk: atomic writes and the layout of raw bodies, partitioned frames and tensors.

Every write goes to a temporary file in the target directory and is then renamed over the
target (``os.replace`` is atomic on POSIX), so a crash or a failed pull can never leave a
half-written file where a good one used to be. No Dagster here: the IO managers and the raw
assets call these functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airquality_assets.transforms.windowing import Scaler, SequenceTensors, tensor_summary

TENSOR_FORMAT_VERSION = 1
TENSOR_ARRAYS_FILE = "sequence_tensors.npz"
TENSOR_METADATA_FILE = "sequence_tensors.json"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to: renamed over ``path`` when the block
    succeeds, deleted when it raises (the previous ``path`` is then untouched)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; the previous file survives any failure."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def frame_dir(base_dir: Path, asset: str, location: str) -> Path:
    """``<base>/frames/<asset>/<location>/``: every partition file of one location."""
    return base_dir / "frames" / asset / location


def frame_path(base_dir: Path, asset: str, location: str, day: date) -> Path:
    """``<base>/frames/<asset>/<location>/<YYYY-MM-DD>.parquet`` (the partition's first day)."""
    return frame_dir(base_dir, asset, location) / f"{day.isoformat()}.parquet"


def write_frame_atomic(frame: pd.DataFrame, path: Path) -> Path:
    """Write one partition's frame as Parquet, atomically."""
    return write_table_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)


def write_table_atomic(table: pa.Table, path: Path) -> Path:
    """Write an Arrow table as Parquet, atomically (temp file in the same folder + rename).

    Writers of many partitions convert their frame to Arrow once and pass zero-copy slices
    here: a pandas-to-Arrow conversion per partition would dominate a long backfill.
    """
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def read_frames(paths: Iterable[Path]) -> pd.DataFrame | None:
    """Read many partition files in one pyarrow call (multithreaded), or ``None`` if none.

    Reading 1,800 daily files one by one through pandas costs seconds; one
    ``pq.read_table`` over the list lets pyarrow parallelise and concatenate natively.
    """
    existing = [str(p) for p in paths if p.exists()]
    if not existing:
        return None
    import pyarrow.dataset as ds

    table = ds.dataset(existing, format="parquet").to_table()
    return table.to_pandas()


# --------------------------------------------------------------------------- raw bodies by span
# A raw partition is a (UTC month, location); it holds one body per request, named by the
# span of UTC hours the request covered: a history backfill stores one body for the whole
# month, the hourly path adds small bodies for the newest hours. Parsing reads them in name
# order (first hour, then last hour), so a later, overlapping pull wins a duplicate hour.

_SPAN_FORMAT = "%Y-%m-%dT%H"


def raw_month_dir(base_dir: Path, asset: str, location: str, month: date) -> Path:
    """``<base>/raw/<asset>/<location>/<YYYY-MM>/``: every body of one raw partition."""
    return base_dir / "raw" / asset / location / f"{month:%Y-%m}"


def raw_span_path(
    base_dir: Path, asset: str, location: str, first_hour: datetime, last_hour: datetime
) -> Path:
    """``.../<YYYY-MM>/<first>_<last>.json`` (UTC hours, both inclusive) in ``first``'s month."""
    name = f"{first_hour:{_SPAN_FORMAT}}_{last_hour:{_SPAN_FORMAT}}.json"
    return raw_month_dir(base_dir, asset, location, first_hour.date()) / name


def raw_span(path: Path) -> tuple[datetime, datetime]:
    """The (first, last) UTC hours a stored body covers, from its file name."""
    first, last = path.stem.split("_")
    return (
        datetime.strptime(first, _SPAN_FORMAT).replace(tzinfo=UTC),
        datetime.strptime(last, _SPAN_FORMAT).replace(tzinfo=UTC),
    )


def raw_month_bodies(base_dir: Path, asset: str, location: str, month: date) -> list[Path]:
    """The stored bodies of one raw partition, oldest span first (name order)."""
    directory = raw_month_dir(base_dir, asset, location, month)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*_*.json") if not p.name.startswith("."))


def store_raw_span(
    base_dir: Path,
    asset: str,
    location: str,
    first_hour: datetime,
    last_hour: datetime,
    body: bytes,
) -> Path:
    """Write one body atomically, then drop the bodies whose span it covers entirely.

    A re-pull of a span answers for every hour of the older, covered bodies, so those are
    superseded (as a re-pulled day replaced its file before); overlapping but not covered
    bodies stay, and name order makes the newer one win their common hours.
    """
    path = atomic_write_bytes(raw_span_path(base_dir, asset, location, first_hour, last_hour), body)
    for other in raw_month_bodies(base_dir, asset, location, first_hour.date()):
        if other == path:
            continue
        first, last = raw_span(other)
        if first_hour <= first and last <= last_hour:
            other.unlink(missing_ok=True)
    return path


def stored_through(base_dir: Path, asset: str, location: str, month: date) -> datetime | None:
    """The last UTC hour any stored body of the partition covers, or None if none is stored."""
    bodies = raw_month_bodies(base_dir, asset, location, month)
    return max((raw_span(p)[1] for p in bodies), default=None)


def save_tensors(tensors: SequenceTensors, directory: str | os.PathLike[str]) -> Path:
    """Write ``sequence_tensors.npz`` (uncompressed) and ``.json``, each atomically.

    The JSON is written last and records the SHA-256 of the npz, so a reader never pairs
    metadata with a different (half-replaced) array file without noticing.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "features": tensors.features,
        "targets": tensors.targets,
        "times": tensors.times,
        "location_codes": tensors.location_codes,
        "feature_mean": tensors.scaler.feature_mean,
        "feature_std": tensors.scaler.feature_std,
        "target_mean": tensors.scaler.target_mean,
        "target_std": tensors.scaler.target_std,
    }
    arrays.update({f"ends_{name}": ends for name, ends in tensors.ends.items()})
    with atomic_path(target / TENSOR_ARRAYS_FILE) as tmp_npz:
        with tmp_npz.open("wb") as handle:
            np.savez(handle, **arrays)
        metadata = {
            "format_version": TENSOR_FORMAT_VERSION,
            "feature_names": tensors.feature_names,
            "target_names": tensors.target_names,
            "locations": tensors.locations,
            "lookback": tensors.lookback,
            "horizons": tensors.horizons,
            "splits": list(tensors.ends),
            "dropped": tensors.dropped,
            "purged": tensors.purged,
            "split_mode": tensors.split_mode,
            "split_bounds": {k: list(v) for k, v in tensors.split_bounds.items()},
            "dropped_features": tensors.dropped_features,
            "scaler_fitted_rows": tensors.scaler.fitted_rows,
            "npz_sha256": _sha256(tmp_npz),
            "summary": tensor_summary(tensors),
        }
    atomic_write_bytes(target / TENSOR_METADATA_FILE, json.dumps(metadata, indent=2).encode())
    return target


def load_tensors(directory: str | os.PathLike[str]) -> SequenceTensors:
    """Read what :func:`save_tensors` wrote; checks the npz against the recorded hash."""
    source = Path(directory)
    meta_path, npz_path = source / TENSOR_METADATA_FILE, source / TENSOR_ARRAYS_FILE
    for path in (meta_path, npz_path):
        if not path.exists():
            raise FileNotFoundError(f"no {path.name} in {source}")
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    if metadata.get("format_version") != TENSOR_FORMAT_VERSION:
        raise ValueError(f"unsupported sequence tensor format {metadata.get('format_version')}")
    if _sha256(npz_path) != metadata["npz_sha256"]:
        raise ValueError(f"{npz_path.name} does not match {meta_path.name} (hash differs)")
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    scaler = Scaler(
        arrays["feature_mean"],
        arrays["feature_std"],
        arrays["target_mean"],
        arrays["target_std"],
        fitted_rows=int(metadata["scaler_fitted_rows"]),
    )
    return SequenceTensors(
        features=arrays["features"],
        targets=arrays["targets"],
        feature_names=list(metadata["feature_names"]),
        target_names=list(metadata["target_names"]),
        times=arrays["times"],
        location_codes=arrays["location_codes"],
        locations=list(metadata["locations"]),
        lookback=int(metadata["lookback"]),
        horizons=[int(h) for h in metadata["horizons"]],
        ends={name: arrays[f"ends_{name}"] for name in metadata["splits"]},
        scaler=scaler,
        dropped={k: int(v) for k, v in metadata["dropped"].items()},
        purged={k: int(v) for k, v in metadata["purged"].items()},
        split_mode=str(metadata["split_mode"]),
        split_bounds={k: (int(v[0]), int(v[1])) for k, v in metadata["split_bounds"].items()},
        dropped_features=list(metadata.get("dropped_features", [])),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
