"""Prometheus and Grafana configuration against the code, so dashboards cannot rot.

* Prometheus scrapes exactly the compose services that expose metrics, on their ports.
* Every metric a Grafana panel queries is one the code defines: the pipeline's names come
  from ``airquality_assets.monitoring.metrics.METRICS`` (imported), the service's own from
  the ``prometheus_client`` constructors in its source, BentoML's request metrics from the
  installed BentoML's source (so an upgrade that renames them fails here).
* ``promtool check config`` and ``promtool check metrics`` (Debian's prometheus package,
  installed by scripts/postgres.sh) where promtool exists.
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

from airquality_assets.monitoring.metrics import METRICS, PipelineMetrics
from airquality_assets.settings import project_root

ROOT = project_root()
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
GRAFANA = ROOT / "deploy/grafana"
PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "rate", "irate", "increase", "histogram_quantile",
    "time", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "topk", "bottomk", "abs", "delta", "deriv", "clamp_min",
    "clamp_max", "label_replace", "vector", "scalar", "avg_over_time", "max_over_time",
}  # fmt: skip
# The scrape targets Prometheus must have: compose service -> port its process listens on.
SCRAPED = {"bento": 3001, "pushgateway": 9091}
promtool = shutil.which("promtool")


def _histogram_names(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


def pipeline_metric_names() -> set[str]:
    """Names as Prometheus stores them (counters are defined with their ``_total``)."""
    return {spec.name for spec in METRICS}


def service_metric_names() -> set[str]:
    """The service's own metrics: its declared list of exposed names where the code has one,
    and the names in the prometheus_client constructors of its source."""
    try:
        from airquality_assets.serving.metrics import EXPOSED_NAMES  # type: ignore[import-not-found]
    except ImportError:
        EXPOSED_NAMES = ()
    names: set[str] = set(EXPOSED_NAMES)
    sources = [ROOT / "bento/service.py", *ROOT.glob("airquality_assets/serving/*.py")]
    constructor = re.compile(
        r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\""
    )
    for path in sources:
        for kind, name in constructor.findall(path.read_text()):
            if kind == "Counter":
                names.add(f"{name.removesuffix('_total')}_total")
            elif kind == "Histogram":
                names |= _histogram_names(name)
            elif kind == "Summary":
                names |= {name, f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return names


def bentoml_metric_names() -> set[str]:
    """BentoML's HTTP metrics as the installed version names them for new-style services."""
    import _bentoml_impl.server.app as app
    import bentoml._internal.server.http.instruments as instruments

    namespaces = set(re.findall(r'namespace="(\w+)"', Path(app.__file__).read_text()))
    source = Path(instruments.__file__).read_text()
    names = set()
    for namespace in namespaces:
        for kind, name in re.findall(
            r'metrics_client\.(\w+)\(\s*namespace=[^,]+,\s*name="(\w+)"', source
        ):
            full = f"{namespace}_{name}"
            names |= _histogram_names(full) if kind == "Histogram" else {full}
    return names


def known_metric_names() -> set[str]:
    return pipeline_metric_names() | service_metric_names() | bentoml_metric_names()


def metrics_in(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (label matchers, groupings stripped)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        name = match.group(0)
        rest = expr[match.end() :].lstrip()
        if name in PROMQL_WORDS or rest.startswith("("):
            continue
        names.add(name)
    return names


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in (GRAFANA / "dashboards").glob("*.json")}


def panel_queries() -> list[tuple[str, str, str]]:
    return [
        (file, panel["title"], target["expr"])
        for file, board in dashboards().items()
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def test_prometheus_scrapes_what_compose_exposes() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    scraped = {
        host: int(port) for host, port in (t.rsplit(":", 1) for t in targets) if host != "localhost"
    }
    assert scraped == SCRAPED
    assert set(scraped) <= set(compose)
    # the service listens where Prometheus looks for it
    assert 'PORT="${PORT:-3001}"' in (ROOT / "deploy/bento/serve.sh").read_text()
    assert "PORT" not in (compose["bento"].get("environment") or {})
    for name in ("code-server", "daemon"):  # runs and sensors push where Prometheus looks
        pushes_to = compose[name]["environment"]["AIRQUALITY_PUSHGATEWAY_URL"]
        assert pushes_to == f"http://pushgateway:{SCRAPED['pushgateway']}", name
    gateway = next(j for j in config["scrape_configs"] if j["job_name"] == "pushgateway")
    assert gateway["honor_labels"] is True  # keep the pushing job's labels
    mount = "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
    assert mount in compose["prometheus"]["volumes"]


def test_grafana_provisions_the_datasource_and_the_dashboards() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in compose["volumes"])
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/airquality.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert mounts["./deploy/grafana/dashboards"] == path
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    boards = dashboards()
    assert len(boards) == 2 and len({b["uid"] for b in boards.values()}) == 2
    for file, board in boards.items():
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], (file, panel["title"])
            assert panel["targets"], (file, panel["title"])


def test_metric_extraction_finds_names_and_skips_labels() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, pollutant) (rate(x_bucket{a="b"}[5m]))) '
        '/ ignoring(model) y{model="c"} - time()'
    )
    assert metrics_in(expr) == {"x_bucket", "y"}


def test_every_panel_queries_metrics_the_code_defines() -> None:
    known = known_metric_names()
    # the sources are really read (the catalogue is not empty per source)
    assert "data_ingestion_total" in known and "forecast_rmse" in known
    assert "airquality_predictions_total" in known
    assert "bentoml_service_request_duration_seconds_bucket" in known
    unknown = [
        (file, title, name)
        for file, title, expr in panel_queries()
        for name in metrics_in(expr)
        if name not in known
    ]
    assert not unknown, unknown


def test_dashboards_cover_what_the_issue_asks() -> None:
    queried = {name for _, _, expr in panel_queries() for name in metrics_in(expr)}
    for name in (
        "bentoml_service_request_total",  # request rate, errors by status
        "bentoml_service_request_duration_seconds_bucket",  # latency percentiles
        "airquality_predicted_concentration_ug_m3_sum",  # predicted values per pollutant
        "data_ingestion_total",  # ingestion
        "data_ingestion_time_seconds",
        "data_ingestion_volume_bytes",
        "data_ingestion_last_successful_timestamp_seconds",
        "data_ingestion_errors_total",
        "forecast_rmse",  # rolling RMSE vs persistence by horizon
        "data_drift_score",  # drift
        "alerts_sent_total",  # failed checks
    ):
        assert name in queried, name


@pytest.mark.skipif(not promtool, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run(
        [str(promtool), "check", "config", "--syntax-only", str(PROMETHEUS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not promtool, reason="promtool not installed (Debian package prometheus)")
def test_promtool_lints_the_pipeline_metrics_exposition() -> None:
    from prometheus_client import generate_latest

    metrics = PipelineMetrics()
    for spec in METRICS:
        labels = {label: "x" for label in spec.labels}
        if spec.kind == "counter":
            metrics.inc(spec.name, **labels)
        else:
            metrics.set(spec.name, 1.0, **labels)
    exposition = generate_latest(metrics.registry)
    result = subprocess.run(
        [str(promtool), "check", "metrics"], input=exposition, capture_output=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    for spec in METRICS:  # every defined metric was exposed and linted
        assert f"# TYPE {spec.name} {spec.kind}\n".encode() in exposition, spec.name
