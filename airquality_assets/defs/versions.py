"""Data versions: a raw partition's version is the content hash of what it stored.

Dagster records one data version per output; a single-run backfill over many partitions
would give them all the same one, so the raw assets log each partition's materialization
themselves (``output_required=False``: Dagster adds none of its own, so the event count per
partition is what it was), each tagged with its partition's content hash. Downstream assets
keep Dagster's logical versions, which are computed from these: an identical re-pull leaves
them fresh, a changed body makes exactly the partitions that read it stale. The frames'
automation condition follows data versions rather than new materializations, so an
identical re-pull recomputes nothing.
"""

from collections.abc import Mapping

import dagster as dg

# Dagster's own tag names (``dagster._core.definitions.data_version``): the staleness
# resolver and the automation conditions read these from a materialization's tags.
DATA_VERSION_TAG = "dagster/data_version"
DATA_VERSION_IS_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
CODE_VERSION_TAG = "dagster/code_version"


def versioned_materialization(
    context: dg.AssetExecutionContext,
    asset_name: str,
    partition_key: str,
    data_version: str,
    metadata: Mapping[str, object],
) -> dg.AssetMaterialization:
    """One partition's materialization carrying its data version (and the asset's code
    version, so a code change still reads as one)."""
    key = dg.AssetKey(asset_name)
    tags = {DATA_VERSION_TAG: data_version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"}
    code_version = context.assets_def.code_versions_by_key.get(key)
    if code_version:
        tags[CODE_VERSION_TAG] = code_version
    return dg.AssetMaterialization(
        asset_key=key,
        partition=partition_key,
        metadata={**metadata, "data_version": data_version[:12]},
        tags=tags,
    )


def any_deps_data_changed() -> dg.AutomationCondition:
    """``any_deps_updated`` with a new data version in place of a new materialization."""
    return dg.AutomationCondition.any_deps_match(
        (
            dg.AutomationCondition.data_version_changed()
            & ~dg.AutomationCondition.executed_with_root_target()
        ).with_label("data_version_changed_without_root")
        | dg.AutomationCondition.will_be_requested()
    ).with_label("any_deps_data_changed")


def eager_on_data() -> dg.AutomationCondition:
    """``AutomationCondition.eager()`` that ignores re-materializations of unchanged data:
    eager's ``any_deps_updated`` fires on every new event, so an identical re-pull would
    rebuild every frame downstream of it."""
    return (
        dg.AutomationCondition.eager()
        .replace("any_deps_updated", any_deps_data_changed())
        .with_label("eager_on_data")
    )


def latest_partition_versions(
    instance: dg.DagsterInstance, asset_names: tuple[str, ...]
) -> dict[str, str]:
    """``"<asset>|<partition>" -> data version`` of every materialized partition of the
    assets, one query per asset (the query Dagster itself uses for input versions)."""
    from dagster._core.events import DagsterEventType

    out: dict[str, str] = {}
    for name in asset_names:
        tags = instance.event_log_storage.get_latest_tags_by_partition(
            dg.AssetKey(name), DagsterEventType.ASSET_MATERIALIZATION, [DATA_VERSION_TAG]
        )
        for partition, found in sorted(tags.items()):
            if DATA_VERSION_TAG in found:
                out[f"{name}|{partition}"] = found[DATA_VERSION_TAG]
    return out
