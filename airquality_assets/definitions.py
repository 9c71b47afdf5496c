"""The one entry point: ``workspace.yaml``, ``dg`` and ``dagster dev`` all load this.

The environment is read here, once per load, and handed down as :class:`Settings`; every
asset then gets the catalog's owners, tags, code version and code references.
"""

import subprocess
import warnings

import dagster as dg

from airquality_assets import catalog
from airquality_assets.defs import build_definitions
from airquality_assets.settings import Settings, project_root

CODE_REFERENCES = "dagster/code_references"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(project_root()), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _code_references(defs: dg.Definitions) -> tuple[dict, dict[dg.AssetKey, str]]:
    """Code-reference metadata per asset (the defining line, as a link at the checked-out
    commit when the checkout has a GitHub/GitLab ``origin``, else as a local file) and the
    file that defines each asset."""
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        referenced = dg.with_source_code_references(assets)
        files = {
            key: refs.code_references[0].file_path
            for assets_def in referenced
            for key, metadata in assets_def.metadata_by_key.items()  # type: ignore[union-attr]
            if (refs := metadata.get(CODE_REFERENCES)) is not None and refs.code_references
        }
        remote = _git("remote", "get-url", "origin")
        url = catalog.browsable_git_url(remote) if remote else None
        commit = _git("rev-parse", "HEAD") if url else None
        if url and commit:
            referenced = dg.link_code_references_to_git(
                referenced,
                git_url=url,
                git_branch=commit,
                file_path_mapping=dg.AnchorBasedFilePathMapping(
                    local_file_anchor=project_root() / "pyproject.toml",
                    file_anchor_path_in_repository="pyproject.toml",
                ),
            )
    references = {
        key: metadata[CODE_REFERENCES]
        for assets_def in referenced
        for key, metadata in assets_def.metadata_by_key.items()  # type: ignore[union-attr]
        if CODE_REFERENCES in metadata
    }
    return references, files


def with_catalog_metadata(defs: dg.Definitions) -> dg.Definitions:
    """Owners, tags, code versions and code references on every asset (see ``catalog``)."""
    references, files = _code_references(defs)

    def annotate(spec: dg.AssetSpec) -> dg.AssetSpec:
        module = catalog.module_name(files[spec.key]) if spec.key in files else None
        spec = spec.merge_attributes(
            owners=[o for o in catalog.owners(spec.group_name) if o not in spec.owners],
            tags={
                k: v for k, v in catalog.catalog_tags(spec.group_name).items() if k not in spec.tags
            },
            metadata={CODE_REFERENCES: references[spec.key]} if spec.key in references else {},
        )
        if spec.code_version is None and module:
            spec = spec.replace_attributes(code_version=catalog.code_version(module))
        return spec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return defs.map_asset_specs(func=annotate)


@dg.definitions
def defs() -> dg.Definitions:
    # Beta/preview APIs this project uses on purpose (single-run backfill policy, multi-partition
    # mappings, dagster-pandera's types; see the pytest filters in pyproject.toml): their
    # notices would print on every load of the code server, 18 lines each time.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return with_catalog_metadata(build_definitions(Settings.from_env()))
