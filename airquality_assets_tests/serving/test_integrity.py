"""A model package's archive is checked before anything loads it: whole, truncated, corrupt."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from airquality_assets.ml.package import MODEL_FILE, load_package
from airquality_assets.serving.bentoml_store import import_model_package
from airquality_assets.serving.integrity import CorruptModel, verify_package


def _copy(package_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "pkg"
    shutil.copytree(package_dir, target)
    return target


def test_a_whole_package_passes_and_loads(package_dir: Path) -> None:
    assert verify_package(package_dir) == package_dir / MODEL_FILE
    load_package(package_dir)  # what the check vouches for really loads


def test_a_truncated_archive_is_named_with_its_size(package_dir: Path, tmp_path: Path) -> None:
    pkg = _copy(package_dir, tmp_path)
    path = pkg / MODEL_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModel, match=r"not a whole Keras archive") as caught:
        verify_package(pkg)
    assert str(path) in str(caught.value) and f"({len(data) // 2} bytes)" in str(caught.value)


def test_a_flipped_byte_inside_a_member_fails_its_crc(package_dir: Path, tmp_path: Path) -> None:
    pkg = _copy(package_dir, tmp_path)
    path = pkg / MODEL_FILE
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    data = bytearray(path.read_bytes())
    # inside the member's data: past its local header (30 bytes + name + extra)
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptModel, match=r"model\.weights\.h5|not a whole"):
        verify_package(pkg)


def test_an_archive_without_weights_is_refused(package_dir: Path, tmp_path: Path) -> None:
    pkg = _copy(package_dir, tmp_path)
    path = pkg / MODEL_FILE
    with zipfile.ZipFile(package_dir / MODEL_FILE) as source, zipfile.ZipFile(path, "w") as out:
        for name in source.namelist():
            if name != "model.weights.h5":
                out.writestr(name, source.read(name))
    with pytest.raises(CorruptModel, match=r"lacks model\.weights\.h5"):
        verify_package(pkg)


def test_the_store_refuses_to_import_a_corrupt_package(
    package_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home"))
    pkg = _copy(package_dir, tmp_path)
    (pkg / MODEL_FILE).write_bytes((pkg / MODEL_FILE).read_bytes()[:1000])
    with pytest.raises(CorruptModel):
        import_model_package(pkg)
