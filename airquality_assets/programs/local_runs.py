"""Run a job of the project's code location in this process, recorded as the UI records it.

``job.execute_in_process`` writes runs without a code-location origin: the Dagster UI then
lists them under no job (empty Jobs page history, no "materialized by" run on the job) and
never on the Overview timeline. This module creates each run the way ``dagster job launch``
does, from the job as the code location named in ``workspace.yaml`` serves it (same
repository label, so the UI files the run under its job), and then executes it here, as
a run worker would, so the demo needs no daemon and pays the definitions' import once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airquality_assets.settings import project_root

if TYPE_CHECKING:
    import dagster as dg
    from dagster._core.execution.api import JobExecutionResult
    from dagster._core.remote_representation.code_location import CodeLocation

#: The code location's name: ``location_name`` in workspace.yaml and ``code_location_name``
#: under ``[tool.dg.project]`` in pyproject.toml (a test keeps the three equal).
LOCATION_NAME = "airquality_assets"
DEFINITIONS_MODULE = "airquality_assets.definitions"


def use_project_instance() -> str:
    """``DAGSTER_HOME`` as the README's commands set it: the caller's, else the project root,
    whose ``dagster.yaml`` keeps the instance under ``.dagster_home/`` by relative paths, so
    the process then works from the project root (as ``dg dev`` does)."""
    home = os.environ.setdefault("DAGSTER_HOME", str(project_root()))
    if os.path.samefile(home, project_root()):
        os.chdir(project_root())
    return home


@contextmanager
def load_code_location(
    instance: dg.DagsterInstance, working_directory: str | None = None
) -> Iterator[CodeLocation]:
    """The project's definitions loaded in this process under the workspace's location name."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=DEFINITIONS_MODULE, working_directory=working_directory),
        location_name=LOCATION_NAME,
    )
    with origin.create_location(instance) as location:
        yield location


def run_job(
    location: CodeLocation,
    instance: dg.DagsterInstance,
    job_name: str,
    *,
    tags: Mapping[str, str] | None = None,
    run_config: Mapping[str, Any] | None = None,
    partition_key: str | None = None,
) -> JobExecutionResult:
    """Create a run of ``job_name`` with the location's origin, then execute it here.

    The job's own executor is used (so the ``full`` profile's multiprocess executor runs its
    candidates side by side), unlike ``execute_in_process``, which forces one process.
    A ``partition_key`` (a multi-partition key too) becomes the run's partition tags, as
    the daemon tags a run request's partition.
    """
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.execution.api import execute_run

    from airquality_assets.deployment import this_process_tag

    (repository,) = location.get_repositories().values()
    remote_job = location.get_job(
        JobSubsetSelector(
            location_name=location.name,
            repository_name=repository.name,
            job_name=job_name,
            op_selection=None,
        )
    )
    config = dict(run_config or {})
    partition_tags: dict[str, str] = {}
    if partition_key is not None:
        partitions_def = (
            location.get_reconstructable_job(  # type: ignore[attr-defined]
                repository.name, job_name
            )
            .get_definition()
            .partitions_def
        )
        partition_tags = dict(partitions_def.get_tags_for_partition_key(partition_key))
    plan = location.get_execution_plan(
        remote_job, config, step_keys_to_execute=None, known_state=None, instance=instance
    ).execution_plan_snapshot
    run = instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config=config,
        resolved_op_selection=None,
        step_keys_to_execute=plan.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        # the process executing it, so run monitoring can tell when it dies
        tags={**remote_job.tags, **partition_tags, **(tags or {}), **this_process_tag()},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repository.asset_graph,
    )
    recon_job = location.get_reconstructable_job(repository.name, job_name)  # type: ignore[attr-defined]
    return execute_run(recon_job, run, instance)
