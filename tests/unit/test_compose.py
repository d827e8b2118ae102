"""docker-compose.yml and the Dockerfile: valid, healthy-by-construction, non-root.

``docker-compose config`` (Debian's docker-compose, no engine needed) validates the file when it
is installed; the structural checks run everywhere.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"kafka", "topics-init", "postgres", "mlflow", "worker", "retrainer", "prometheus",
            "dashboard"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_docker_compose_config_accepts_the_file() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed (Debian package 'docker-compose'; "
                    "run scripts/install-system-deps.sh)")
    result = subprocess.run([tool, "-f", "docker-compose.yml", "config"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == SERVICES
    worker = resolved["services"]["worker"]
    assert worker["environment"]["SENTINEL_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_the_stack_has_every_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    assert compose["services"]["kafka"]["image"] == "apache/kafka:3.9.1"
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == \
        "broker,controller"


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {})
        if name == "topics-init":
            assert check.get("disable") is True  # a one-shot job
            continue
        assert check.get("test"), f"{name} has no healthcheck"


def test_services_wait_for_their_dependencies_to_be_healthy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("worker", "retrainer"):
        deps = services[name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["mlflow"]["condition"] == "service_healthy"
        assert deps["topics-init"]["condition"] == "service_completed_successfully"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["dashboard"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name, service in services.items():  # every condition names a real service
        assert set(service.get("depends_on", {})) <= set(services), name


def test_two_workers_share_one_consumer_group(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert "SENTINEL_WORKER__APP_ID" not in worker["environment"]  # same app id = same group
    assert "container_name" not in worker and "ports" not in worker  # would clash at 2 replicas


def test_mlflow_uses_postgres_and_a_persistent_artifact_volume(compose: dict[str, Any]) -> None:
    mlflow = compose["services"]["mlflow"]
    command = " ".join(mlflow["command"])
    assert "--backend-store-uri=postgresql+psycopg2://" in command
    assert "mlflow-artifacts:/mlartifacts" in mlflow["volumes"]
    assert "mlflow-artifacts" in compose["volumes"]


def test_prometheus_mounts_the_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert (ROOT / "deploy" / "prometheus" / "alerts.yml").exists()


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", _dockerfile(), re.M | re.I)
    assert [image for image, _ in stages] == ["python:3.11-slim", "python:3.11-slim"]
    assert [name for _, name in stages] == ["builder", "runtime"]
    assert "pip wheel" in _dockerfile()
    assert "--no-index" in _dockerfile()  # the runtime installs the builder's wheels only


def test_dockerfile_runs_as_a_non_root_user() -> None:
    runtime = _dockerfile().split("AS runtime", 1)[1]
    users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    assert users, "the runtime stage sets no USER"
    assert users[-1] not in {"root", "0", "0:0"}


def test_dockerfile_healthcheck_hits_the_worker_health_endpoint() -> None:
    runtime = _dockerfile().split("AS runtime", 1)[1]
    match = re.search(r"^HEALTHCHECK\s+(.*?)\n(?!\s)", runtime, re.M | re.S)
    assert match is not None
    assert "/health" in match.group(1) and "6066" in match.group(1)
    assert re.search(r'^CMD \["sentinel", "worker"\]', runtime, re.M)


def test_dashboard_takes_its_sources_from_settings_and_publishes_on_loopback(
    compose: dict[str, Any],
) -> None:
    dashboard = compose["services"]["dashboard"]
    assert dashboard["command"] == ["sentinel", "dashboard"]
    env = dashboard["environment"]
    assert env["SENTINEL_DASHBOARD__PROMETHEUS_URL"] == "http://prometheus:9090"
    assert all(str(p).startswith("127.0.0.1:") for p in dashboard["ports"])
    assert dashboard["depends_on"]["mlflow"]["condition"] == "service_healthy"  # the profile
