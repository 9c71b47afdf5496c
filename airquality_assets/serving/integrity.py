"""Is a stored model package whole? A cheap check before anything tries to load it.

A truncated or corrupt ``model.keras`` made Keras report "File not found" for a file that
exists, from every service worker, which BentoML then restarted forever. Checking the
archive first (a ``.keras`` file is a zip: its directory, every member's CRC, the members
Keras reads, a parseable ``config.json``) costs milliseconds, needs no Keras, and gives one
error naming the file and what is wrong: the service stops at start-up with it, the
champion watcher refuses such a champion while the old one keeps serving, and the model
store refuses to import one.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

from airquality_assets.ml.package import MODEL_FILE

#: Members every Keras 3 ``.keras`` archive holds.
KERAS_MEMBERS = ("config.json", "model.weights.h5")


class CorruptModel(ValueError):
    """A model package whose ``model.keras`` cannot be loaded; says which file and why."""


def verify_package(directory: str | os.PathLike[str]) -> Path:
    """Raise :class:`CorruptModel` unless ``directory/model.keras`` is a whole archive."""
    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise CorruptModel(f"{path} does not exist")
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [m for m in KERAS_MEMBERS if m not in names]
            if missing:
                raise CorruptModel(f"{path} ({size} bytes) lacks {', '.join(missing)}")
            bad = archive.testzip()  # reads every member: a CRC mismatch or a short member
            if bad is not None:
                raise CorruptModel(f"{path} ({size} bytes): member {bad} is corrupt")
            json.loads(archive.read("config.json"))
    except CorruptModel:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        OSError,
        EOFError,
        ValueError,
    ) as exc:
        raise CorruptModel(
            f"{path} ({size} bytes) is not a whole Keras archive (truncated or corrupt: {exc})"
        ) from None
    return path
