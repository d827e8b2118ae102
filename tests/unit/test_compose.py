"""docker-compose.yml, its local-image override and the Dockerfile: checked without an engine.

``docker-compose config`` (Debian's docker-compose, no engine needed) validates the files when
it is installed; the structural checks run everywhere. tests/stack starts the stack for real.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"kafka", "topics-init", "postgres", "mlflow", "worker-1", "worker-2", "retrainer",
            "prometheus", "dashboard"}
SENTINEL = {"topics-init", "mlflow", "worker-1", "worker-2", "retrainer", "dashboard"}
WORKERS = ("worker-1", "worker-2")
PASSWORD = "test-only-password"
TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def local() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.local.yml").read_text()))


def _config(*files: str, password: str | None = PASSWORD,
            token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed (Debian package 'docker-compose'; "
                    "run scripts/install-system-deps.sh)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_DB_PASSWORD", "SENTINEL_API_TOKEN")}
    if password is not None:
        env["MLFLOW_DB_PASSWORD"] = password
    if token is not None:
        env["SENTINEL_API_TOKEN"] = token
    args = [arg for name in files for arg in ("-f", name)]
    with tempfile.TemporaryDirectory() as tmp:  # an empty --env-file: a developer's .env is ignored
        empty = Path(tmp) / "empty.env"
        empty.touch()
        return subprocess.run([tool, *args, "--env-file", str(empty), "config"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60, check=False)


def test_docker_compose_config_accepts_the_file() -> None:
    result = _config("docker-compose.yml")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == SERVICES
    worker = resolved["services"]["worker-1"]
    assert worker["environment"]["SENTINEL_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    uri = resolved["services"]["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert f"mlflow:{PASSWORD}@postgres:5432" in uri


def test_the_stack_refuses_to_start_without_a_database_password() -> None:
    result = _config("docker-compose.yml", password=None)
    assert result.returncode != 0
    assert "MLFLOW_DB_PASSWORD" in result.stderr and "scripts/stack-env.sh" in result.stderr


def test_the_workers_bind_wider_only_with_a_token() -> None:
    result = _config("docker-compose.yml", token=None)
    assert result.returncode != 0
    assert "SENTINEL_API_TOKEN" in result.stderr and "scripts/stack-env.sh" in result.stderr
    resolved = yaml.safe_load(_config("docker-compose.yml").stdout)
    for worker in ("worker-1", "worker-2"):
        env = resolved["services"][worker]["environment"]
        assert env["SENTINEL_WORKER__WEB_HOST"] == "0.0.0.0"  # noqa: S104 - what is checked
        assert env["SENTINEL_HTTP__TOKENS"] == TOKEN


def test_no_default_password_is_written_anywhere(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "MLFLOW_DB_PASSWORD:-" not in text and "MLFLOW_DB_PASSWORD-" not in text
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${MLFLOW_DB_PASSWORD:?")
    assert "postgresql" not in " ".join(compose["services"]["mlflow"]["command"])  # not in `ps`


def test_the_local_override_changes_images_only(local: dict[str, Any]) -> None:
    assert set(local["services"]) <= SERVICES
    for name, service in local["services"].items():
        assert set(service) <= {"image", "build"}, name
        if "build" in service:
            assert name in SENTINEL
            assert set(service["build"]["args"]) == {"PYTHON_IMAGE"}
    assert {n for n, s in local["services"].items() if "build" in s} == SENTINEL
    assert {n for n, s in local["services"].items() if "image" in s} == \
        {"kafka", "postgres", "prometheus"}


def test_both_paths_resolve_to_the_same_definitions() -> None:
    official = _config("docker-compose.yml")
    merged = _config("docker-compose.yml", "docker-compose.local.yml")
    assert official.returncode == 0 and merged.returncode == 0, merged.stderr
    a, b = yaml.safe_load(official.stdout), yaml.safe_load(merged.stdout)
    for services in (a["services"], b["services"]):
        for service in services.values():
            service.pop("image", None)
            service.get("build", {}).pop("args", None)
    assert a == b  # environment, healthchecks, volumes, ports, start-up order: identical
    assert b["services"]["kafka"] and "image" not in b["services"]["kafka"]


def test_the_stack_has_every_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    assert compose["services"]["kafka"]["image"] == "apache/kafka:3.9.1"
    assert compose["services"]["postgres"]["image"] == "postgres:15"  # Debian bookworm's major
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == \
        "broker,controller"


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {})
        if name == "topics-init":
            assert check.get("disable") is True  # a one-shot job
            continue
        assert check.get("test"), f"{name} has no healthcheck"


def test_worker_healthchecks_are_readiness(compose: dict[str, Any]) -> None:
    for name in WORKERS:
        test = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert "/ready" in test and "-f" in test, name  # curl -f: non-2xx is unhealthy


def test_only_the_needed_ports_are_published_on_loopback(compose: dict[str, Any]) -> None:
    published = {n for n, s in compose["services"].items() if s.get("ports")}
    assert published == {"kafka", "mlflow", "worker-1", "prometheus", "dashboard"}
    for name in published:
        for port in compose["services"][name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
    listeners = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "HOST://localhost:" in listeners


def test_postgres_starts_as_its_own_user(compose: dict[str, Any]) -> None:
    assert compose["services"]["postgres"]["user"] == "postgres"


def test_sentinel_services_run_under_an_init(compose: dict[str, Any]) -> None:
    for name in SENTINEL:
        assert compose["services"][name].get("init") is True, name


def test_services_wait_for_their_dependencies_to_be_healthy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*WORKERS, "retrainer"):
        deps = services[name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["mlflow"]["condition"] == "service_healthy"
        assert deps["topics-init"]["condition"] == "service_completed_successfully"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["dashboard"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name, service in services.items():  # every condition names a real service
        assert set(service.get("depends_on", {})) <= set(services), name


def test_two_workers_share_one_consumer_group(compose: dict[str, Any]) -> None:
    one, two = (compose["services"][w] for w in WORKERS)
    assert one["command"] == two["command"] == ["sentinel", "worker"]
    assert one["environment"] == two["environment"]
    assert "SENTINEL_WORKER__APP_ID" not in one["environment"]  # same app id = same group
    for worker in (one, two):
        assert "deploy" not in worker  # compose v1 ignores deploy.replicas
        assert worker["networks"]["default"]["aliases"] == ["worker"]  # Prometheus' DNS name
        assert "container_name" not in worker
    assert "ports" not in two


def test_prometheus_finds_every_worker_by_its_alias() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["sentinel-worker"]["dns_sd_configs"][0]["names"] == ["worker"]


def test_mlflow_uses_postgres_and_a_persistent_artifact_volume(compose: dict[str, Any]) -> None:
    mlflow = compose["services"]["mlflow"]
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith(
        "postgresql+psycopg2://")
    assert "mlflow-artifacts:/mlartifacts" in mlflow["volumes"]
    assert "mlflow-artifacts" in compose["volumes"]
    command = " ".join(mlflow["command"])
    assert "--allowed-hosts=" in command and "mlflow:*" in command  # MLflow 3 checks Host


def test_prometheus_mounts_the_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert (ROOT / "deploy" / "prometheus" / "alerts.yml").exists()


def test_secrets_stay_out_of_git_and_of_the_image() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_stack_env_writes_a_private_password_once(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run = {"env": {**os.environ, "SENTINEL_STACK_ENV_FILE": str(env_file)},
           "capture_output": True, "text": True, "timeout": 30, "check": True}
    subprocess.run(["bash", str(ROOT / "scripts" / "stack-env.sh")], **run)  # type: ignore[call-overload]
    first = env_file.read_text()
    assert re.fullmatch(r"MLFLOW_DB_PASSWORD=[0-9a-f]{48}\nSENTINEL_API_TOKEN=[0-9a-f]{48}\n",
                        first)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    subprocess.run(["bash", str(ROOT / "scripts" / "stack-env.sh")], **run)  # type: ignore[call-overload]
    assert env_file.read_text() == first  # kept
    subprocess.run(["bash", str(ROOT / "scripts" / "stack-env.sh"), "--force"], **run)  # type: ignore[call-overload]
    assert env_file.read_text() != first


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_builds_with_the_classic_builder_from_constraints() -> None:
    text = _dockerfile()
    assert "--mount" not in text and "# syntax=" not in text  # BuildKit-only
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.findall(r"^FROM\s+(\S+)", text, re.M) == ["${PYTHON_IMAGE}"]
    installs = re.findall(r"pip install[^\n]*", text)
    assert installs and all("-c constraints.txt" in line for line in installs)
    assert "COPY pyproject.toml constraints.txt" in text


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", _dockerfile(), re.M)
    assert users, "the image sets no USER"
    assert users[-1] not in {"root", "0", "0:0"}


def test_dockerfile_healthcheck_is_worker_readiness() -> None:
    match = re.search(r"^HEALTHCHECK\s+(.*?)\n(?!\s)", _dockerfile(), re.M | re.S)
    assert match is not None
    assert "/ready" in match.group(1) and "SENTINEL_WORKER__WEB_PORT" in match.group(1)
    assert re.search(r'^CMD \["sentinel", "worker"\]', _dockerfile(), re.M)


def test_constraints_pin_the_image_extra() -> None:
    pins = (ROOT / "constraints.txt").read_text().split()
    assert any(p.startswith("psycopg2-binary==") for p in pins)


def test_local_images_keep_the_official_contracts() -> None:
    local = ROOT / "deploy" / "local"
    kafka = (local / "kafka.Dockerfile").read_text()
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in kafka  # the compose healthcheck
    assert re.search(r"^USER appuser$", kafka, re.M)
    postgres = (local / "postgres.Dockerfile").read_text()
    assert "postgresql-15" in postgres and re.search(r"^USER postgres$", postgres, re.M)
    prometheus = (local / "prometheus.Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/bin/prometheus"]' in prometheus and "wget" in prometheus
    assert re.search(r"^USER nobody$", prometheus, re.M)
    python = (local / "python.Dockerfile").read_text()
    assert "python3.11" in python and "python3.11-venv" in python
    for script in ("kafka-run.sh", "kafka-broker-api-versions.sh", "postgres-run.sh"):
        assert os.access(local / script, os.X_OK), script


def test_dashboard_takes_its_sources_from_settings_and_publishes_on_loopback(
    compose: dict[str, Any],
) -> None:
    dashboard = compose["services"]["dashboard"]
    assert dashboard["command"] == ["sentinel", "dashboard"]
    env = dashboard["environment"]
    assert env["SENTINEL_DASHBOARD__PROMETHEUS_URL"] == "http://prometheus:9090"
    assert all(str(p).startswith("127.0.0.1:") for p in dashboard["ports"])
    assert dashboard["depends_on"]["mlflow"]["condition"] == "service_healthy"  # the profile
