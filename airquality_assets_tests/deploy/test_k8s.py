"""The Kubernetes example: executor config through Dagster, resources through the k8s models.

The training job's ``k8s_job_executor`` config is checked by Dagster's own run-config
validation (a misspelt key or a wrong type is shown to fail it). Every ``resources`` block
in the Helm values and the executor config is parsed into the Kubernetes client's
``V1ResourceRequirements`` the way dagster-k8s builds pods (unknown keys fail). The values
file is not validated against the chart's ``values.schema.json``: the dagster Helm chart is
published only in Dagster's Helm repository, which no package registry reachable here
mirrors.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from airquality_assets.defs import build_definitions
from airquality_assets.defs.model.jobs import K8S_TRAINING_EXECUTION
from airquality_assets.settings import Settings, project_root

VALUES = project_root() / "deploy/k8s/values.yaml"


@pytest.fixture(scope="module")
def training_job() -> dg.JobDefinition:
    settings = Settings(data_dir=Path("unused"), profile="full", executor="k8s")
    return build_definitions(settings).resolve_job_def("training")


def _resource_blocks(node: Any, where: str = "") -> Iterator[tuple[str, dict]]:
    """Every ``resources`` mapping under ``node`` with its dotted location."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "resources" and isinstance(value, dict):
                yield f"{where}.{key}", value
            else:
                yield from _resource_blocks(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _resource_blocks(item, f"{where}[{index}]")


def _k8s_resources(block: dict) -> Any:
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
    from kubernetes.client import V1ResourceRequirements

    return k8s_model_from_dict(
        V1ResourceRequirements, k8s_snake_case_dict(V1ResourceRequirements, block)
    )


def test_training_runs_each_step_in_its_own_pod(training_job: dg.JobDefinition) -> None:
    from dagster_k8s import k8s_job_executor

    assert training_job.executor_def is k8s_job_executor
    execution = dg.validate_run_config(training_job, {})["execution"]["k8s"]
    assert execution["max_concurrent"] == 8
    candidate = execution["per_step_k8s_config"]["train_candidate"]["container_config"]
    assert candidate["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    default = execution["step_k8s_config"]["container_config"]["resources"]["requests"]
    assert default == {"cpu": "500m", "memory": "2Gi"}
    # the per-step key names a real op of the training graph (one pod per candidate)
    ops = {node.name for node in training_job.graph.iterate_node_defs()}
    assert "train_candidate" in ops


@pytest.mark.parametrize(
    "path, value",
    [
        (("max_concurrent",), "eight"),
        (("per_step_k8s_config", "train_candidate", "container_confg"), {}),
    ],
)
def test_bad_executor_config_is_rejected(
    training_job: dg.JobDefinition, path: tuple[str, ...], value: object
) -> None:
    config = copy.deepcopy(K8S_TRAINING_EXECUTION)
    node: dict = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(training_job, {"execution": {"config": config}})


def test_local_executor_is_the_default() -> None:
    settings = Settings.from_env({"AIRQUALITY_DATA_DIR": "unused"})
    assert settings.executor == "local"
    job = build_definitions(settings).resolve_job_def("training")
    assert job.executor_def is dg.multi_or_in_process_executor
    with pytest.raises(ValueError, match="AIRQUALITY_EXECUTOR"):
        Settings.from_env({"AIRQUALITY_DATA_DIR": "unused", "AIRQUALITY_EXECUTOR": "celery"})


def test_every_pod_has_resource_requests() -> None:
    values = yaml.safe_load(VALUES.read_text())
    blocks = dict(_resource_blocks(values))
    blocks.update(_resource_blocks(K8S_TRAINING_EXECUTION, "executor"))
    assert {
        ".dagster-user-deployments.deployments[0].resources",
        ".runLauncher.config.k8sRunLauncher.runK8sConfig.containerConfig.resources",
        ".dagsterWebserver.resources",
        ".dagsterDaemon.resources",
        "executor.step_k8s_config.container_config.resources",
        "executor.per_step_k8s_config.train_candidate.container_config.resources",
    } <= set(blocks)
    for where, block in blocks.items():
        parsed = _k8s_resources(block)
        assert parsed.requests and {"cpu", "memory"} <= parsed.requests.keys(), where
    with pytest.raises(Exception, match="Unexpected keys"):
        _k8s_resources({"request": {"cpu": "1"}})  # misspelt: the model refuses it


def test_helm_values_match_the_code() -> None:
    values = yaml.safe_load(VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == "airquality_assets.definitions"
    env = {item["name"]: item["value"] for item in deployment["env"]}
    settings = Settings.from_env(env)  # every value parses as the code expects
    assert settings.executor == "k8s"
    assert settings.storage_url and settings.storage_url.startswith("s3://")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    # no secret in the values: they come from Kubernetes Secrets
    text = VALUES.read_text().lower()
    for word in ("password:", "secret_access_key:", "api_key:"):
        assert word not in text, word
