"""Files on disk: atomic writes and the layout of raw bodies and partitioned frames.

Every write goes to a temporary file in the target directory and is then renamed over the
target (``os.replace`` is atomic on POSIX), so a crash or a failed pull can never leave a
half-written file where a good one used to be. No Dagster here: the IO manager and the raw
assets call these functions.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; the previous file survives any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    here: pandas-to-Arrow conversion costs milliseconds per call for a wide frame, which
    dominates when a five-year backfill writes 1,800 daily files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
