"""How the native stack reads docker-compose.yml (``compose.py``): compose's rules, checked
without starting anything, so the stack test starts what compose would start."""

from __future__ import annotations

from pathlib import Path

import pytest

from airquality_assets.settings import project_root
from airquality_assets_tests.stack.compose import (
    Healthcheck,
    InterpolationError,
    duration_seconds,
    generate_env,
    interpolate,
    load,
)
from airquality_assets_tests.stack.native import dockerfile_env, dockerfile_workdir

ROOT = project_root()


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}/${UNSET}", env) == "x/"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate("$${SET} costs $$5", env) == "${SET} costs $5"
    assert interpolate("${SET:?need it}", env) == "x"
    with pytest.raises(InterpolationError, match="EMPTY: set it"):
        interpolate("${EMPTY:?set it}", env)
    assert interpolate("${EMPTY?only unset fails}", env) == ""


def test_durations() -> None:
    assert duration_seconds("10s") == 10
    assert duration_seconds("1m30s") == 90
    assert duration_seconds("500ms") == 0.5
    with pytest.raises(ValueError, match="duration"):
        duration_seconds("10 seconds")


def test_health_check_forms() -> None:
    shell = Healthcheck.parse({"test": ["CMD-SHELL", "pg_isready && echo $$X"], "retries": 2})
    assert shell.argv == ("/bin/sh", "-c", "pg_isready && echo $$X")
    assert (shell.interval, shell.timeout, shell.retries) == (30, 30, 2)
    assert Healthcheck.parse({"test": ["CMD", "a", "b"], "interval": "5s"}).argv == ("a", "b")


def _stack_env() -> dict[str, str]:
    return generate_env(ROOT / ".env.example")


def test_generated_env_fills_every_secret_of_the_example() -> None:
    env = _stack_env()
    for key in ("POSTGRES_PASSWORD", "AIRQUALITY_API_TOKEN", "GRAFANA_ADMIN_PASSWORD"):
        assert len(env[key]) == 48
    assert env["POSTGRES_USER"] == "airquality"  # given in the example, kept
    assert _stack_env()["POSTGRES_PASSWORD"] != env["POSTGRES_PASSWORD"]


def test_the_compose_file_loads_with_its_anchors_and_order() -> None:
    project = load(ROOT / "docker-compose.yml", _stack_env())
    services = project.services
    order = project.start_order()
    for name, service in services.items():
        for dependency in service.depends_on:
            assert order.index(dependency) < order.index(name), (name, dependency)
    code = services["code-server"]
    assert code.built and code.command[:3] == ("dagster", "code-server", "start")
    assert code.environment["DAGSTER_PG_HOST"] == "postgres"  # the x-dagster-env anchor
    assert code.stop_grace_period == 60
    assert services["postgres"].healthcheck.argv[0] == "/bin/sh"
    assert "$POSTGRES_USER" in services["postgres"].healthcheck.argv[2]  # $$ -> $
    assert ("127.0.0.1", 3000, 3000) in services["webserver"].ports
    assert services["bento"].init
    assert {v.target for v in code.volumes} == {"/data", "/data/mlartifacts"}


def test_a_missing_secret_stops_the_load_as_compose_does() -> None:
    env = _stack_env()
    env["POSTGRES_PASSWORD"] = ""
    with pytest.raises(InterpolationError, match="POSTGRES_PASSWORD"):
        load(ROOT / "docker-compose.yml", env)


def test_the_project_image_is_read_from_its_dockerfile(tmp_path: Path) -> None:
    env = dockerfile_env(ROOT / "Dockerfile")
    assert env["DAGSTER_HOME"] == "/opt/dagster/home"
    assert env["KERAS_BACKEND"] == "jax"
    assert dockerfile_workdir(ROOT / "Dockerfile") == "/opt/dagster/app"
    other = tmp_path / "Dockerfile"
    other.write_text('FROM x\nENV A=1 \\\n    B="two words"\nWORKDIR /a\nWORKDIR /b\n')
    assert dockerfile_env(other) == {"A": "1", "B": "two words"}
    assert dockerfile_workdir(other) == "/b"
