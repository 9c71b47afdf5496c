"""The two Dagster instance files: the embedded default and the production variant.

Both are loaded with Dagster's own config machinery (``DagsterInstance.from_config``), so a
key Dagster does not know, a wrong type or a missing environment variable fails here, not
on the first deploy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import pytest
import yaml

from airquality_assets.settings import project_root
from airquality_assets_tests.deploy.conftest import query

EMBEDDED = project_root() / "dagster.yaml"
PRODUCTION = project_root() / "deploy" / "dagster.yaml"
PG_VARIABLES = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_DB",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
)


def _home(tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(source, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict) and set(node) != {"env"}:
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield path, node


@dg.asset
def _probe() -> int:
    return 1


def test_embedded_default_needs_no_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = _home(tmp_path, EMBEDDED, monkeypatch)
    monkeypatch.chdir(home)  # its paths are relative to the project root, where commands run
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        # a run whose process dies is seen: run monitoring and a launcher that can tell
        assert instance.run_monitoring_enabled
        assert instance.run_launcher.supports_check_run_worker_health
        assert dg.materialize([_probe], instance=instance).success
    state = home / ".dagster_home"
    assert (state / "history" / "runs.db").exists()
    assert {p.name for p in home.iterdir()} == {"dagster.yaml", ".dagster_home"}


def test_production_variant_takes_every_connection_setting_from_the_environment() -> None:
    config = yaml.safe_load(PRODUCTION.read_text())
    storage = config["storage"]["custom"]
    assert storage["module"] == "airquality_assets.deployment"
    database = dict(_leaves(storage["config"]["postgres_db"]))
    from_env = {
        path[-1]: value["env"] for path, value in database.items() if isinstance(value, dict)
    }
    assert from_env == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "db_name": "DAGSTER_PG_DB",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
    }
    # anything else that looks like a credential must come from the environment too
    for path, value in _leaves(config):
        if any(word in part for part in path for word in ("password", "secret", "token")):
            assert isinstance(value, dict), path


def test_production_variant_without_its_environment_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = _home(tmp_path, PRODUCTION, monkeypatch)
    with pytest.raises(Exception, match="DAGSTER_PG_"):
        dg.DagsterInstance.from_config(str(home))


def test_production_variant_runs_on_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_database: Callable[[str], str]
) -> None:
    url = new_database("dagster_prod")
    parts = urlsplit(url)
    monkeypatch.setenv("DAGSTER_PG_HOST", parts.hostname or "")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(parts.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", parts.path.lstrip("/"))
    monkeypatch.setenv("DAGSTER_PG_USER", parts.username or "")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", parts.password or "")
    home = _home(tmp_path, PRODUCTION, monkeypatch)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        from dagster_postgres import (
            PostgresEventLogStorage,
            PostgresRunStorage,
            PostgresScheduleStorage,
        )

        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        queue = instance.run_coordinator.get_run_queue_config()  # type: ignore[attr-defined]
        assert queue.max_concurrent_runs == 4
        assert queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": 2}]
        assert type(instance.run_launcher).__name__ == "WatchedRunLauncher"
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_poll_interval_seconds == 30
        result = dg.materialize([_probe], instance=instance)
        assert result.success

    assert query(url, "SELECT run_id, status FROM runs") == [(result.run_id, "SUCCESS")]
    events = query(
        url,
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    assert events == [(1,)]
