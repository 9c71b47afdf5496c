"""Stored files: atomic writes and the layout of raw bodies, partitioned frames and tensors.

The storage root is a local directory or an object-store URL (``s3://bucket/prefix``, or any
fsspec protocol whose package is installed): :func:`storage_location` makes it a
``pathlib.Path`` or a ``upath.UPath``, and every function here takes either, so the IO
managers and the raw store run the same code against a disk and a bucket.

Atomic either way, so a crash or a failed pull never leaves a half-written file where a good
one used to be: on disk every write goes to a temporary file in the target directory that is
then renamed over the target (``os.replace`` is atomic on POSIX); on an object store a file
is one PUT of the finished bytes, which S3 applies whole or not at all (a failed upload
leaves the previous object), so no temporary object and no rename are needed. No Dagster
here: the IO managers and the raw assets call these functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from airquality_assets.transforms.windowing import Scaler, SequenceTensors, tensor_summary

TENSOR_FORMAT_VERSION = 1
TENSOR_ARRAYS_FILE = "sequence_tensors.npz"
TENSOR_METADATA_FILE = "sequence_tensors.json"

#: A stored file's location: a local path, or a path on an object store.
StoragePath = Path | UPath
#: fsspec protocols whose directory listings we never cache: another process (a pod, the
#: next run) may have written since, and a stale listing would hide a stored raw body.
_UNCACHED_LISTINGS = {"s3", "s3a", "gs", "gcs", "abfs", "az"}


def storage_location(root: str | os.PathLike[str]) -> StoragePath:
    """A local directory as a ``Path``; a URL with a scheme (``s3://...``) as a ``UPath``.

    Credentials and the endpoint come from the store's usual environment (for S3:
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``), never from here.
    """
    text = os.fspath(root)
    if "://" not in text or text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    protocol = text.split("://", 1)[0]
    if protocol in _UNCACHED_LISTINGS:
        return UPath(text, use_listings_cache=False)
    return UPath(text)


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


def atomic_write_bytes(path: StoragePath, data: bytes) -> StoragePath:
    """Write ``data`` to ``path`` atomically; the previous file survives any failure."""
    if not isinstance(path, Path):
        path.write_bytes(data)  # one PUT: the object is replaced whole or not at all
        return path
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def frame_dir(base_dir: StoragePath, asset: str, location: str) -> StoragePath:
    """``<base>/frames/<asset>/<location>/``: every partition file of one location."""
    return base_dir / "frames" / asset / location


def frame_path(base_dir: StoragePath, asset: str, location: str, day: date) -> StoragePath:
    """``<base>/frames/<asset>/<location>/<YYYY-MM-DD>.parquet`` (the partition's first day)."""
    return frame_dir(base_dir, asset, location) / f"{day.isoformat()}.parquet"


def write_frame_atomic(frame: pd.DataFrame, path: StoragePath) -> StoragePath:
    """Write one partition's frame as Parquet, atomically."""
    return write_table_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)


def write_table_atomic(table: pa.Table, path: StoragePath) -> StoragePath:
    """Write an Arrow table as Parquet, atomically (temp file in the same folder + rename;
    on an object store: the finished file in one PUT).

    Writers of many partitions convert their frame to Arrow once and pass zero-copy slices
    here: a pandas-to-Arrow conversion per partition would dominate a long backfill.
    """
    if not isinstance(path, Path):
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, compression="zstd")
        path.write_bytes(buffer.getvalue().to_pybytes())
        return path
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def read_frames(paths: Iterable[StoragePath]) -> pd.DataFrame | None:
    """Read many partition files in one pyarrow call (multithreaded), or ``None`` if none.

    Reading a long range file by file through pandas costs seconds (1,800 daily files did); one
    ``pq.read_table`` over the list lets pyarrow parallelise and concatenate natively.
    """
    existing = [p for p in paths if p.exists()]
    if not existing:
        return None
    import pyarrow.dataset as ds

    first = existing[0]
    if isinstance(first, Path):
        table = ds.dataset([str(p) for p in existing], format="parquet").to_table()
    else:  # the store's fsspec filesystem, wrapped by pyarrow
        files = [p.path for p in existing]  # type: ignore[union-attr]
        table = ds.dataset(files, format="parquet", filesystem=first.fs).to_table()
    return table.to_pandas()


# --------------------------------------------------------------------------- raw bodies by span
# A raw partition is a (UTC month, location); it holds one body per request, named by the
# span of UTC hours the request covered: a history backfill stores one body for the whole
# month, the hourly path adds small bodies for the newest hours. Parsing reads them in name
# order (first hour, then last hour), so a later, overlapping pull wins a duplicate hour.

_SPAN_FORMAT = "%Y-%m-%dT%H"


def raw_month_dir(base_dir: StoragePath, asset: str, location: str, month: date) -> StoragePath:
    """``<base>/raw/<asset>/<location>/<YYYY-MM>/``: every body of one raw partition."""
    return base_dir / "raw" / asset / location / f"{month:%Y-%m}"


def raw_span_path(
    base_dir: StoragePath, asset: str, location: str, first_hour: datetime, last_hour: datetime
) -> StoragePath:
    """``.../<YYYY-MM>/<first>_<last>.json`` (UTC hours, both inclusive) in ``first``'s month."""
    name = f"{first_hour:{_SPAN_FORMAT}}_{last_hour:{_SPAN_FORMAT}}.json"
    return raw_month_dir(base_dir, asset, location, first_hour.date()) / name


def raw_span(path: StoragePath) -> tuple[datetime, datetime]:
    """The (first, last) UTC hours a stored body covers, from its file name."""
    first, last = path.stem.split("_")
    return (
        datetime.strptime(first, _SPAN_FORMAT).replace(tzinfo=UTC),
        datetime.strptime(last, _SPAN_FORMAT).replace(tzinfo=UTC),
    )


def raw_month_bodies(
    base_dir: StoragePath, asset: str, location: str, month: date
) -> list[StoragePath]:
    """The stored bodies of one raw partition, oldest span first (name order)."""
    directory = raw_month_dir(base_dir, asset, location, month)
    if not directory.is_dir():
        return []
    bodies = (p for p in directory.glob("*_*.json") if not p.name.startswith("."))
    return sorted(bodies, key=lambda p: p.name)


def store_raw_span(
    base_dir: StoragePath,
    asset: str,
    location: str,
    first_hour: datetime,
    last_hour: datetime,
    body: bytes,
    history_keep: int | None = None,
) -> StoragePath:
    """Write one body atomically; the bodies whose span it covers entirely move to history.

    A re-pull of a span answers for every hour of the older, covered bodies, so those are
    superseded; overlapping but not covered bodies stay, and name order makes the newer one
    win their common hours. Superseded bodies are kept, not deleted (a model can be traced to
    the pull it learned from, and :func:`restore_raw_pull` brings one back): they are copied
    under ``.history/<pull>/`` first, then the new body is written, then they leave the
    current folder, so a failure at any point leaves every body somewhere. An identical
    re-pull changes nothing. ``history_keep``: how many superseded pulls a month keeps
    (None: all).
    """
    target = raw_span_path(base_dir, asset, location, first_hour, last_hour)
    if target.exists() and target.read_bytes() == body:
        return target  # an identical re-pull: nothing superseded, nothing to keep
    month = first_hour.date()
    covered = [
        other
        for other in raw_month_bodies(base_dir, asset, location, month)
        if first_hour <= raw_span(other)[0] and raw_span(other)[1] <= last_hour
    ]
    pull = _pull_stamp(base_dir, asset, location, month) if covered else ""
    for other in covered:  # copied to the history before anything current changes
        keep = raw_history_dir(base_dir, asset, location, month) / pull / other.name
        atomic_write_bytes(keep, other.read_bytes())
    path = atomic_write_bytes(target, body)
    for other in covered:
        if other.name != path.name:
            other.unlink(missing_ok=True)
    if covered and history_keep is not None:
        prune_raw_history(base_dir, asset, location, month, history_keep)
    return path


# --------------------------------------------------------------------------- superseded pulls
# ``<month dir>/.history/<pull>/``: the bodies one re-pull superseded, as they were stored.
# ``<pull>`` is ``<UTC time of the re-pull>-<n>`` (n orders pulls within one second), so
# name order is age order. The dot keeps the folder out of :func:`raw_month_bodies`.

HISTORY_DIR = ".history"


def raw_history_dir(base_dir: StoragePath, asset: str, location: str, month: date) -> StoragePath:
    """``<base>/raw/<asset>/<location>/<YYYY-MM>/.history/``: superseded pulls of a month."""
    return raw_month_dir(base_dir, asset, location, month) / HISTORY_DIR


def raw_pulls(base_dir: StoragePath, asset: str, location: str, month: date) -> list[str]:
    """The superseded pulls kept for a month, oldest first (names of ``.history`` folders)."""
    directory = raw_history_dir(base_dir, asset, location, month)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _pull_stamp(base_dir: StoragePath, asset: str, location: str, month: date) -> str:
    """A new pull name after every kept one (wall time, not the replay clock: it dates the
    re-pull itself)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    same_second = [
        int(name.rsplit("-", 1)[1])
        for name in raw_pulls(base_dir, asset, location, month)
        if name.startswith(stamp)
    ]
    return f"{stamp}-{max(same_second, default=-1) + 1:03d}"


def prune_raw_history(
    base_dir: StoragePath, asset: str, location: str, month: date, keep: int
) -> list[str]:
    """Delete all but the ``keep`` newest superseded pulls of a month; the pulls removed."""
    pulls = raw_pulls(base_dir, asset, location, month)
    dropped = pulls[: max(len(pulls) - keep, 0)]
    history = raw_history_dir(base_dir, asset, location, month)
    for name in dropped:
        for body in (history / name).iterdir():
            body.unlink()
        (history / name).rmdir()
    return dropped


def restore_raw_pull(
    base_dir: StoragePath, asset: str, location: str, month: date, pull: str
) -> list[StoragePath]:
    """Make a kept pull the month's current bodies again; the current ones become a pull.

    The restored bodies are written over (atomically) before the current ones leave, and
    those are kept in history first, so a restore is itself undoable and never loses a body.
    """
    history = raw_history_dir(base_dir, asset, location, month)
    source = history / pull
    if not source.is_dir():
        raise FileNotFoundError(f"no kept pull {pull!r} for {asset} {location} {month:%Y-%m}")
    bodies = {p.name: p.read_bytes() for p in source.iterdir() if p.suffix == ".json"}
    current = raw_month_bodies(base_dir, asset, location, month)
    if current:
        stamp = _pull_stamp(base_dir, asset, location, month)
        for body in current:
            atomic_write_bytes(history / stamp / body.name, body.read_bytes())
    directory = raw_month_dir(base_dir, asset, location, month)
    restored = [atomic_write_bytes(directory / name, data) for name, data in sorted(bodies.items())]
    for body in current:
        if body.name not in bodies:
            body.unlink(missing_ok=True)
    for body in source.iterdir():
        body.unlink()
    source.rmdir()
    return restored


def raw_month_digest(base_dir: StoragePath, asset: str, location: str, month: date) -> str:
    """SHA-256 over the partition's current bodies (names and bytes, name order): its data
    version. Same bodies, same digest, whenever and however often they were pulled."""
    digest = hashlib.sha256()
    for path in raw_month_bodies(base_dir, asset, location, month) or raw_issue_bodies(
        base_dir, asset, location, month
    ):
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def stored_whole_month(base_dir: StoragePath, asset: str, location: str, month: date) -> bool:
    """Whether one stored body covers every hour of the month: what the pull of a closed
    month stores (the bodies stored while it was open are pieces, and are then superseded)."""
    first = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    last = following - timedelta(hours=1)
    return any(
        start <= first and end >= last
        for start, end in map(raw_span, raw_month_bodies(base_dir, asset, location, month))
    )


def stored_through(
    base_dir: StoragePath, asset: str, location: str, month: date
) -> datetime | None:
    """The last UTC hour any stored body of the partition covers, or None if none is stored."""
    bodies = raw_month_bodies(base_dir, asset, location, month)
    return max((raw_span(p)[1] for p in bodies), default=None)


# --------------------------------------------------------------------------- forecast bodies
# A forecast partition is a (UTC month, location) too: one body per issue, named by its
# issue hour (``2014-03-01T06.json``) and stored under the month of its issue, whatever
# months its target hours reach into. An issue is stored once: it is never re-fetched.

_ISSUE_FORMAT = "%Y-%m-%dT%H"


def raw_issue_path(
    base_dir: StoragePath, asset: str, location: str, issued_at: datetime
) -> StoragePath:
    """``<base>/raw/<asset>/<location>/<YYYY-MM>/<issue>.json`` (the issue's UTC month)."""
    issue = issued_at.astimezone(UTC)
    return raw_month_dir(base_dir, asset, location, issue.date()) / f"{issue:{_ISSUE_FORMAT}}.json"


def raw_issue_time(path: StoragePath) -> datetime:
    """The UTC issue hour a stored forecast body is named by."""
    return datetime.strptime(path.stem, _ISSUE_FORMAT).replace(tzinfo=UTC)


def raw_issue_bodies(
    base_dir: StoragePath, asset: str, location: str, month: date
) -> list[StoragePath]:
    """The stored forecast bodies of one (month, location) partition, oldest issue first."""
    directory = raw_month_dir(base_dir, asset, location, month)
    if not directory.is_dir():
        return []
    bodies = (
        p for p in directory.glob("*.json") if not p.name.startswith(".") and "_" not in p.stem
    )
    return sorted(bodies, key=lambda p: p.name)


def stored_issues(base_dir: StoragePath, asset: str, location: str, month: date) -> set[datetime]:
    """The issue hours of the partition that are already stored (never fetched again)."""
    return {raw_issue_time(p) for p in raw_issue_bodies(base_dir, asset, location, month)}


def store_raw_issue(
    base_dir: StoragePath, asset: str, location: str, issued_at: datetime, body: bytes
) -> StoragePath:
    """Write one forecast body atomically under its issue hour (a failure keeps any file
    that was there)."""
    return atomic_write_bytes(raw_issue_path(base_dir, asset, location, issued_at), body)


def months_touched(start: datetime, end: datetime) -> list[date]:
    """The first day of every UTC month from ``start``'s to ``end``'s: the month partitions
    (and issue folders) a time range reaches."""
    first = pd.Timestamp(start.astimezone(UTC)).tz_localize(None).to_period("M").to_timestamp()
    last = pd.Timestamp(end.astimezone(UTC)).tz_localize(None)
    return [m.date() for m in pd.date_range(first, last, freq="MS")]


def read_weather_forecasts(
    base_dir: StoragePath,
    locations: Iterable[str],
    start: datetime,
    end: datetime,
    asset: str = "weather_forecasts",
) -> pd.DataFrame | None:
    """The ``weather_forecasts`` rows of the issues in ``[start, end)`` for ``locations``, in
    one pyarrow read of the month files those issues are stored in (a partition holds the
    issues of its month), sorted by location, issue and target hour; ``None`` if none of
    those months is stored. The frame's own schema is in :mod:`airquality_assets.schemas`."""
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    months = months_touched(start_utc, end_utc)
    paths = [frame_path(base_dir, asset, loc, m) for loc in locations for m in months]
    frame = read_frames(paths)
    if frame is None:
        return None
    issued = frame["issue_time"]
    keep = ((issued >= pd.Timestamp(start_utc)) & (issued < pd.Timestamp(end_utc))).to_numpy()
    return (
        frame.loc[keep]
        .sort_values(["location", "issue_time", "time"], kind="stable")
        .reset_index(drop=True)
    )


def save_tensors(
    tensors: SequenceTensors, directory: str | os.PathLike[str] | StoragePath
) -> StoragePath:
    """Write ``sequence_tensors.npz`` (uncompressed) and ``.json``, each atomically.

    The JSON is written last and records the SHA-256 of the npz, so a reader never pairs
    metadata with a different (half-replaced) array file without noticing. On an object
    store both are written locally first, then uploaded in that order (one PUT each).
    """
    if isinstance(directory, UPath) and not isinstance(directory, Path):
        with tempfile.TemporaryDirectory(prefix="aq-tensors-") as tmp:
            _save_tensors_local(tensors, Path(tmp))
            for name in (TENSOR_ARRAYS_FILE, TENSOR_METADATA_FILE):
                atomic_write_bytes(directory / name, (Path(tmp) / name).read_bytes())
        return directory
    return _save_tensors_local(tensors, Path(directory))


def _save_tensors_local(tensors: SequenceTensors, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    arrays = tensors.arrays()
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
            "future_names": tensors.future_names,
            "no_forecast": tensors.no_forecast,
            "forecast_origin": tensors.forecast_origin,
            "scaler_fitted_rows": tensors.scaler.fitted_rows,
            "npz_sha256": _sha256(tmp_npz),
            "summary": tensor_summary(tensors),
        }
    atomic_write_bytes(target / TENSOR_METADATA_FILE, json.dumps(metadata, indent=2).encode())
    return target


def load_tensors(directory: str | os.PathLike[str] | StoragePath) -> SequenceTensors:
    """Read what :func:`save_tensors` wrote; checks the npz against the recorded hash."""
    if isinstance(directory, UPath) and not isinstance(directory, Path):
        with tempfile.TemporaryDirectory(prefix="aq-tensors-") as tmp:
            for name in (TENSOR_METADATA_FILE, TENSOR_ARRAYS_FILE):
                if not (directory / name).exists():
                    raise FileNotFoundError(f"no {name} in {directory}")
                (Path(tmp) / name).write_bytes((directory / name).read_bytes())
            return _load_tensors_local(Path(tmp))
    return _load_tensors_local(Path(directory))


def _load_tensors_local(source: Path) -> SequenceTensors:
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
        future_mean=arrays.get("future_mean"),
        future_std=arrays.get("future_std"),
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
        future=arrays.get("future"),
        future_names=list(metadata.get("future_names", [])),
        no_forecast={k: int(v) for k, v in metadata.get("no_forecast", {}).items()},
        forecast_origin=dict(metadata.get("forecast_origin", {})),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
