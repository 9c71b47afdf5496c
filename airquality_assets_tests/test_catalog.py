"""Owners, tags, code versions and code references: pure helpers, then on the loaded graph."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from airquality_assets import catalog
from airquality_assets.definitions import defs as load_defs


def _package(tmp_path: Path) -> Path:
    root = tmp_path / catalog.PACKAGE
    (root / "defs").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "defs" / "__init__.py").write_text("")
    (root / "defs" / "a.py").write_text(
        "import os\nfrom airquality_assets import rules\n"
        "def f():\n    from airquality_assets.defs.b import g\n"
    )
    (root / "defs" / "b.py").write_text("def g(): ...\n")
    (root / "rules.py").write_text("LIMIT = 3\n")
    (root / "unrelated.py").write_text("X = 1\n")
    return root


def test_closure_follows_package_imports_including_lazy_ones(tmp_path: Path) -> None:
    root = _package(tmp_path)
    files = catalog.module_closure("airquality_assets.defs.a", root)
    assert [p.relative_to(root).as_posix() for p in files] == [
        "__init__.py",  # importing from the package runs its __init__
        "defs/a.py",
        "defs/b.py",
        "rules.py",
    ]
    assert catalog.module_name(root / "defs" / "a.py", root) == "airquality_assets.defs.a"
    assert catalog.module_name(root / "__init__.py", root) == "airquality_assets"
    assert catalog.module_name(tmp_path / "elsewhere.py", root) is None


def test_code_version_changes_with_an_imported_module_only(tmp_path: Path) -> None:
    root = _package(tmp_path)
    before = catalog.code_version.__wrapped__("airquality_assets.defs.a", root)
    (root / "unrelated.py").write_text("X = 2\n")
    assert catalog.code_version.__wrapped__("airquality_assets.defs.a", root) == before
    (root / "rules.py").write_text("LIMIT = 4\n")
    after = catalog.code_version.__wrapped__("airquality_assets.defs.a", root)
    assert after != before and len(after) == 12


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("git@github.com:acme/airquality-assets.git", "https://github.com/acme/airquality-assets"),
        ("https://github.com/acme/aq.git", "https://github.com/acme/aq"),
        ("https://user@gitlab.example.com/g/sub/aq", "https://gitlab.example.com/g/sub/aq"),
        ("ssh://git@github.com:22/acme/aq.git", "https://github.com/acme/aq"),
        ("https://bitbucket.org/acme/aq.git", None),
        ("/srv/git/aq.git", None),
        ("../aq", None),
    ],
)
def test_browsable_git_url(remote: str, url: str | None) -> None:
    assert catalog.browsable_git_url(remote) == url


@pytest.mark.usefixtures("data_dir")
def test_every_asset_has_owners_tags_code_version_and_source() -> None:
    graph = load_defs().resolve_asset_graph()
    keys = list(graph.get_all_asset_keys())
    assert keys
    versions = {}
    for key in keys:
        node = graph.get(key)
        assert node.owners, key
        assert node.tags["domain"] == "air-quality" and node.tags["stage"] != "other", key
        assert node.code_version and node.code_version != catalog.code_version("nothing"), key
        refs = node.metadata["dagster/code_references"].code_references
        assert refs and Path(refs[0].file_path).name.endswith(".py"), key
        versions[key.to_user_string()] = node.code_version
    assert versions["raw_air_quality"] != versions["tuned_lstm"]


@pytest.mark.usefixtures("data_dir")
def test_code_references_link_to_the_commit_with_a_github_remote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airquality_assets import definitions

    answers = {
        ("remote", "get-url", "origin"): "git@github.com:acme/aq.git",
        ("rev-parse", "HEAD"): "0123abc",
    }
    monkeypatch.setattr(definitions, "_git", lambda *args: answers.get(args))
    node = load_defs().resolve_asset_graph().get(dg.AssetKey("raw_weather"))
    (ref,) = node.metadata["dagster/code_references"].code_references
    assert ref.url.startswith(
        "https://github.com/acme/aq/tree/0123abc/airquality_assets/defs/data/ingestion.py#L"
    )


@pytest.mark.usefixtures("data_dir")
def test_loading_prints_no_beta_or_preview_notices() -> None:
    """The code server loads these definitions at start and on every reload: quiet console."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_defs()
    noisy = [w for w in caught if issubclass(w.category, (dg.BetaWarning, dg.PreviewWarning))]
    assert not noisy, [str(w.message)[:80] for w in noisy]


def test_closure_reads_every_import_form_and_skips_prose(tmp_path: Path) -> None:
    """Only the package's import statements are parsed (not whole modules): parenthesised
    over lines, ``import ... as``, indented in a function; a docstring line that reads like
    an import but is not Python adds nothing."""
    root = tmp_path / "airquality_assets"
    (root / "defs").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "defs" / "__init__.py").write_text("")
    (root / "defs" / "a.py").write_text(
        '"""Notes.\n\nfrom airquality_assets the rules are imported lazily.\n"""\n'
        "from airquality_assets.defs.b import (\n    g,\n    h as k,\n)\n"
        "import airquality_assets.rules as rules\n"
        "def f():\n    from airquality_assets import c\n"
    )
    for name in ("defs/b.py", "rules.py", "c.py", "unrelated.py"):
        (root / name).write_text("X = 1\n")
    files = catalog.module_closure("airquality_assets.defs.a", root)
    assert [p.relative_to(root).as_posix() for p in files] == [
        "__init__.py",
        "c.py",
        "defs/a.py",
        "defs/b.py",
        "rules.py",
    ]
