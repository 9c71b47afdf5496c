"""Static checks of the docker-compose stack (no Docker engine needed).

The compose file is validated against the compose-spec JSON schema (vendored by the
check-jsonschema package, the schema `docker compose config` itself applies), then checked
for what the schema cannot see: every service's build context, bind mount, named volume,
variable, port and dependency is consistent with the repository and with the rest of the
stack, and no secret has a default.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from airquality_assets.settings import project_root

ROOT = project_root()
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PUBLISHED = {3000: "webserver", 3001: "bento", 3002: "grafana", 5000: "mlflow", 9090: "prometheus"}
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "API_KEY")
# Variables read by the libraries and images the stack runs, not by this repository's code.
LIBRARY_VARIABLES = {
    "DAGSTER_HOME",  # dagster
    "MLFLOW_TRACKING_URI",  # mlflow client
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_BACKEND_STORE_URI",  # mlflow server --backend-store-uri
    "BENTOML_DO_NOT_TRACK",  # bentoml
    "POSTGRES_USER",  # postgres image
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
}
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts.append((source, target))
    return mounts


def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    import check_jsonschema
    import jsonschema

    schema_path = (
        Path(check_jsonschema.__file__).parent / "builtin_schemas/vendor/compose-spec.json"
    )
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors


def test_compose_schema_check_can_fail() -> None:
    """The schema check above is not vacuous: a misspelt key is rejected."""
    import check_jsonschema
    import jsonschema

    schema_path = (
        Path(check_jsonschema.__file__).parent / "builtin_schemas/vendor/compose-spec.json"
    )
    schema = json.loads(schema_path.read_text())
    broken = {"services": {"web": {"image": "x", "depends_on": {"db": {"condition": "up"}}}}}
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


@pytest.mark.skipif(not shutil.which("docker"), reason="no docker CLI on this machine")
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker CLI here has no compose plugin")
    env = tmp_path / ".env"
    values = {name: "x" for name in _example_variables()}
    env.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "--env-file", str(env), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def _example_variables() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_every_variable_is_in_env_example_and_secrets_have_no_default() -> None:
    text = COMPOSE_FILE.read_text()
    example = _example_variables()
    used = {}
    for match in VARIABLE.finditer(text):
        used.setdefault(match.group(1), set()).add(match.group(2) or "")
    assert used, "the compose file interpolates nothing from .env"
    assert set(used) <= set(example), sorted(set(used) - set(example))
    for name, forms in used.items():
        if any(word in name for word in SECRET_WORDS if word != "API_KEY"):
            # required (${VAR:?...}) everywhere, and empty in the committed example
            assert all(form.startswith(":?") for form in forms), (name, forms)
            assert example[name] == "", name


def test_no_literal_secret_in_any_service(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in _environment(service).items():
            if any(word in key for word in SECRET_WORDS) or ("://" in value and "@" in value):
                assert "${" in value or value == "", (name, key)


def test_only_uis_and_the_prediction_api_are_published_on_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    published: dict[int, str] = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            host_ip, host_port, _container = str(port).split(":")
            assert host_ip == "127.0.0.1", (name, port)
            published[int(host_port)] = name
    assert published == PUBLISHED


def test_builds_bind_mounts_and_named_volumes_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        else:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), (name, image)
        for source, target in _bind_mounts(service):
            assert target.startswith("/"), (name, target)
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
            else:
                used.add(source)
    assert used == declared, (sorted(used - declared), sorted(declared - used))


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for other, spec in depends.items():
            assert other in services, (name, other)
            assert spec["condition"] == "service_healthy", (name, other)


def test_project_variables_are_ones_the_repository_reads(
    services: dict[str, dict[str, Any]],
) -> None:
    """A variable set for a project container that nothing reads is a typo or dead config."""
    sources = [*ROOT.glob("airquality_assets/**/*.py"), *ROOT.glob("bento/*.py")]
    sources += [ROOT / "deploy/dagster.yaml", *ROOT.glob("deploy/bento/*.sh")]
    corpus = "\n".join(path.read_text() for path in sources)
    for name, service in services.items():
        if "build" not in service:
            continue
        for key in _environment(service):
            assert key in LIBRARY_VARIABLES or key in corpus, (name, key)


def test_dagster_workspace_points_at_the_code_server(services: dict[str, dict[str, Any]]) -> None:
    workspace = yaml.safe_load((ROOT / "deploy/workspace.docker.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert server["host"] in services
    command = services[server["host"]]["command"]
    assert f"-p {server['port']}" in command
    assert f"--location-name {server['location_name']}" in command
    for user in ("webserver", "daemon"):
        assert "deploy/workspace.docker.yaml" in services[user]["command"]


def test_dagster_containers_use_the_production_instance(
    services: dict[str, dict[str, Any]],
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "cp deploy/dagster.yaml" in dockerfile
    production = (ROOT / "deploy/dagster.yaml").read_text()
    for name in ("code-server", "webserver", "daemon"):
        env = _environment(services[name])
        for variable in re.findall(r"\{env: (\w+)\}", production):
            assert variable in env, (name, variable)


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".data", ".dagster_home", ".git"} <= ignored


def test_the_image_builds_without_buildkit() -> None:
    """Debian's docker.io has only the classic builder, which rejects ``RUN --mount``."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--mount=" not in dockerfile
    assert "# syntax=" not in dockerfile


def test_the_code_server_outlasts_its_runs_graceful_stop(
    services: dict[str, dict[str, Any]],
) -> None:
    """Runs are the code server's subprocesses; a stop that kills it before they record
    their end leaves them STARTED (22 s seen for a training step; compose's default is 10 s)."""
    grace = services["code-server"].get("stop_grace_period", "10s")
    assert re.fullmatch(r"\d+s", grace), grace
    assert int(grace[:-1]) >= 45


def test_mlflow_allows_the_host_name_its_clients_use(
    services: dict[str, dict[str, Any]],
) -> None:
    from urllib.parse import urlsplit

    tracking = urlsplit(_environment(services["code-server"])["MLFLOW_TRACKING_URI"])
    command = services["mlflow"]["command"].split()
    allowed = command[command.index("--allowed-hosts") + 1].split(",")
    assert tracking.netloc in allowed, (tracking.netloc, allowed)
    assert tracking.hostname in allowed
    health = " ".join(services["mlflow"]["healthcheck"]["test"])
    assert "/health'" not in health and "/api/2.0/mlflow/" in health
    assert f"'Host': '{tracking.netloc}'" in health


def test_bento_health_means_alive_not_ready(services: dict[str, dict[str, Any]]) -> None:
    """A fresh volume has no champion for a while: the service is waiting, not broken."""
    test = services["bento"]["healthcheck"]["test"]
    assert "/readyz" not in " ".join(test)
    script = ROOT / test[-1]
    assert script.is_file() and "/livez" in script.read_text()
