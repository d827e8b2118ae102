"""The compose stack started for real: the quick start, two workers, faults, hygiene.

Tests run in file order on one stack (session fixture ``stack``); each later one builds on the
state the earlier ones left (a champion, streamed slices). Assertions on the worker use its
contract only: the verdicts topic, ``/ready``, ``/metrics``, its consumer group.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.stack.stack import Stack, eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1500)]

SENTINEL_SERVICES = ("mlflow", "worker-1", "worker-2", "retrainer", "dashboard")
WORKERS = ("worker-1", "worker-2")
MODEL = "sentinel-fraud"
TRANSACTIONS, VERDICTS = "sentinel.transactions", "sentinel.verdicts"
SLICE = 1500  # transactions per streamed slice; four slices of one simulated history
RATE = 150.0  # transactions/s: a stream that lasts ~10 s, long enough to fault in the middle


def test_the_stack_is_hardened(stack: Stack) -> None:
    for service in ("kafka", "postgres", "prometheus", *SENTINEL_SERVICES):
        info = stack.inspect(service)
        user = info["Config"]["User"] or "root"
        assert user.split(":")[0] not in {"root", "0"}, f"{service} runs as root"
        for bindings in (info["HostConfig"]["PortBindings"] or {}).values():
            for binding in bindings:
                assert binding["HostIp"] == "127.0.0.1", f"{service} publishes {binding}"
        assert info["Config"].get("Healthcheck", {}).get("Test"), f"{service}: no healthcheck"
    for service in SENTINEL_SERVICES:
        assert stack.inspect(service)["HostConfig"]["Init"] is True, service
    published = {s for s in ("kafka", "postgres", "prometheus", *SENTINEL_SERVICES)
                 if stack.inspect(s)["HostConfig"]["PortBindings"]}
    assert published == {"kafka", "mlflow", "worker-1", "prometheus", "dashboard"}


def test_the_stack_refuses_to_start_without_a_database_password(stack: Stack,
                                                               tmp_path: Path) -> None:
    env = {k: v for k, v in stack.env.items() if k != "MLFLOW_DB_PASSWORD"}
    empty = tmp_path / "empty.env"
    empty.touch()
    result = subprocess.run(["docker-compose", *stack.files, "--env-file", str(empty), "up",
                             "-d", "--no-build", "postgres"], cwd=stack.compose_dir, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "MLFLOW_DB_PASSWORD" in result.stderr and "scripts/stack-env.sh" in result.stderr


def test_workers_are_not_ready_without_a_champion(stack: Stack) -> None:
    for worker in WORKERS:
        ready = stack.exec(worker, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           "http://127.0.0.1:6066/ready", check=False).stdout.strip()
        assert ready == "503", f"{worker} /ready answered {ready} before any model exists"
        assert stack.health(worker) != "healthy"


def test_quick_start_train_promote_predict(stack: Stack) -> None:
    started = time.monotonic()
    out = stack.exec("worker-1", "sentinel", "train", "--customers", "1000", "--terminals",
                     "2000", "--num-trees", "100", "--train-start", "2018-06-20", timeout=900)
    stack.timings["train_s"] = time.monotonic() - started
    registered = re.search(r"version (\d+) is @candidate", out.stdout)
    assert registered, out.stdout[-2000:] + out.stderr[-2000:]
    version = registered.group(1)
    # By version: the retrainer promotes a first candidate by itself when there is no champion
    # (within its promotion interval), so a bare `sentinel promote` may find none left.
    started = time.monotonic()
    out = stack.exec("worker-1", "sentinel", "promote", "--version", version, timeout=300,
                     check=False)
    stack.timings["promote_s"] = time.monotonic() - started
    said = out.stdout + out.stderr
    promoted = out.returncode == 0 and f"version {version} is @champion" in out.stdout
    already = out.returncode != 0 and f"version {version} of {MODEL} is already @champion" in said
    assert promoted or already, said[-2000:]
    assert _registry(stack)["aliases"].get("champion") == version
    started = time.monotonic()
    stack.wait_healthy(*WORKERS, timeout_s=180)  # the healthcheck is /ready
    stack.timings["ready_after_promote_s"] = time.monotonic() - started
    token = stack.env["SENTINEL_API_TOKEN"]
    refused = stack.exec("worker-1", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                         "-X", "POST", "-d", "{}", "http://127.0.0.1:6066/predict",
                         check=False).stdout.strip()
    assert refused == "401", f"/predict without a token answered {refused}"
    answer = stack.exec("worker-1", "curl", "-fsS", "-X", "POST", "-H",
                        "Content-Type: application/json", "-H", f"Authorization: Bearer {token}",
                        "-d", '{"id": 1, "amount": 150000.0}',
                        "http://127.0.0.1:6066/predict").stdout
    body = json.loads(answer)
    assert body["card_id"] == "1"
    assert 0.0 <= body["score"] <= 1.0
    assert body["model_version"] == "1" and body["model_name"] == MODEL
    # The same answer from the host, through the port published on loopback.
    from_host = stack.http("SENTINEL_PREDICT_PORT", "/predict", method="POST",
                           json={"id": 1, "amount": 150000.0},
                           headers={"Authorization": f"Bearer {token}"})
    assert from_host.status_code == 200 and from_host.json()["model_version"] == "1"


def test_two_workers_share_the_partitions_and_score_every_transaction(stack: Stack) -> None:
    out = stack.exec("retrainer", "sentinel", "simulate", "--out", "/data/stream.parquet",
                     "--customers", "200", "--terminals", "400", "--days", "20", "--seed", "5")
    assert "wrote" in out.stdout, out.stderr[-2000:]
    stack.exec("retrainer", "python", "-c", _SLICER.format(n=SLICE))
    started = time.monotonic()
    ids = _stream(stack, 0)
    stack.timings["first_slice_verdicts_s"] = time.monotonic() - started
    verdicts = stack.read_topic(VERDICTS)
    assert len(verdicts) == len(set(verdicts)), "a transaction got more than one verdict"
    assert ids <= set(verdicts)
    owners = _scorer_assignment(stack)
    assert set(owners) == {_ip(stack, w) for w in WORKERS}, owners
    assert all(owners.values()), f"a worker holds no partition: {owners}"
    assert not set.intersection(*owners.values()), owners
    assert set.union(*owners.values()) == set(range(_partitions(stack)))
    for worker in WORKERS:  # each replica scored its share
        assert _metric(stack, worker, "sentinel_verdicts_total") > 0, worker


def test_prometheus_scrapes_both_workers_and_the_retrainer(stack: Stack) -> None:
    def targets() -> dict[str, list[str]] | None:
        body = stack.http("SENTINEL_PROMETHEUS_PORT", "/api/v1/targets").json()
        up: dict[str, list[str]] = {}
        for target in body["data"]["activeTargets"]:
            if target["health"] == "up":
                up.setdefault(target["labels"]["job"], []).append(target["labels"]["instance"])
        ok = len(up.get("sentinel-worker", [])) == 2 and up.get("sentinel-retrainer")
        return up if ok else None

    up = eventually(targets, 90, "Prometheus scraping two workers and the retrainer")
    hosts = {instance.rsplit(":", 1)[0] for instance in up["sentinel-worker"]}
    assert hosts == {_ip(stack, w) for w in WORKERS}
    query = stack.http("SENTINEL_PROMETHEUS_PORT", "/api/v1/query",
                       params={"query": "sum(sentinel_verdicts_total)"}).json()
    assert float(query["data"]["result"][0]["value"][1]) >= SLICE


def test_the_dashboard_answers(stack: Stack) -> None:
    assert stack.http("SENTINEL_DASHBOARD_PORT", "/_stcore/health").text.strip() == "ok"
    page = stack.http("SENTINEL_DASHBOARD_PORT", "/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    stack.wait_healthy("dashboard", timeout_s=60)


def test_mlflow_on_postgres_keeps_the_versions_after_a_restart(stack: Stack) -> None:
    before = _registry(stack)
    assert before["versions"] == ["1"] and before["aliases"] == {"champion": "1"}
    stack.compose("restart", "mlflow", timeout=180)
    stack.wait_healthy("mlflow", timeout_s=180)
    assert _registry(stack) == before


def test_a_killed_worker_hands_its_partitions_to_the_other(stack: Stack) -> None:
    victim, survivor = WORKERS[1], WORKERS[0]
    container = stack.container(victim)
    ids = _stream(stack, 1, fault=lambda: stack.engine.docker("kill", container))
    verdicts = stack.read_topic(VERDICTS)
    assert ids <= set(verdicts), f"{len(ids - set(verdicts))} transactions without a verdict"
    stack.timings["duplicates_after_kill"] = len(verdicts) - len(set(verdicts))
    assert stack.inspect(victim)["State"]["Running"] is False
    alone = {_ip(stack, survivor): set(range(_partitions(stack)))}
    eventually(lambda: _scorer_assignment(stack) == alone, 120,
               f"{survivor} holding every partition")
    stack.compose("start", victim)
    stack.wait_healthy(victim, timeout_s=240)


def test_the_stream_resumes_after_a_broker_restart(stack: Stack) -> None:
    ids = _stream(stack, 2, fault=lambda: stack.compose("restart", "kafka", timeout=180),
                  timeout_s=300)
    verdicts = stack.read_topic(VERDICTS)
    assert ids <= set(verdicts), f"{len(ids - set(verdicts))} transactions without a verdict"
    stack.timings["duplicates_after_broker_restart"] = len(verdicts) - len(set(verdicts))
    stack.wait_healthy("kafka", *WORKERS, timeout_s=240)


def test_down_then_up_keeps_registry_topics_and_state(stack: Stack) -> None:
    registry = _registry(stack)
    topics = _topic_ends(stack)
    verdicts = set(stack.read_topic(VERDICTS))
    stack.compose("down", "--timeout", "20", timeout=300)  # volumes kept
    started = time.monotonic()
    stack.compose("up", "-d", timeout=600)
    stack.wait_healthy("kafka", "mlflow", *WORKERS, timeout_s=300)
    stack.timings["up_warm_to_ready_s"] = time.monotonic() - started
    assert _registry(stack) == registry
    after = _topic_ends(stack)
    assert set(topics) <= set(after), set(topics) - set(after)  # internal topics included
    assert all(after[t] >= topics[t] for t in topics), "a topic lost records"
    assert verdicts <= set(stack.read_topic(VERDICTS))
    ids = _stream(stack, 3)
    assert ids <= set(stack.read_topic(VERDICTS))
    stored = stack.exec("retrainer", "ls", "/data").stdout.split()
    assert "stream.parquet" in stored  # the retrainer's volume


# -- helpers ---------------------------------------------------------------------------------
_SLICER = """
import pandas as pd
frame = pd.read_parquet('/data/stream.parquet').sort_values('event_time').reset_index(drop=True)
for i in range(4):
    frame.iloc[i * {n}:(i + 1) * {n}].to_parquet(f'/data/slice{{i}}.parquet', index=False)
"""


def _stream(stack: Stack, index: int, fault: Any = None, timeout_s: float = 240) -> set[str]:
    """Produce slice ``index`` from the retrainer container; ``fault`` runs mid-stream.

    Returns the slice's transaction ids once every one of them has a verdict.
    """
    start = _end_offsets(stack, TRANSACTIONS)
    producer = stack.popen_exec("retrainer", "sentinel", "produce", "--input",
                                f"/data/slice{index}.parquet", "--rate", str(RATE), "--no-labels")
    try:
        if fault is not None:
            eventually(lambda: sum(_end_offsets(stack, TRANSACTIONS).values())
                       - sum(start.values()) >= SLICE // 4, 120, "the stream to start", 0.5)
            fault()
        out, _ = producer.communicate(timeout=600)
    finally:
        if producer.poll() is None:
            producer.kill()
    assert producer.returncode == 0 and f"produced {SLICE} transactions" in out, out[-2000:]
    ids = set(stack.read_topic(TRANSACTIONS))
    before = set().union(*(_slice_ids(stack, i) for i in range(index))) if index else set()
    ids -= before
    assert len(ids) == SLICE, len(ids)
    stack.slices[index] = ids
    try:
        eventually(lambda: ids <= set(stack.read_topic(VERDICTS)), timeout_s,
                   f"a verdict for each of the {SLICE} transactions of slice {index}", 3.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diagnosis(stack, ids)}") from None
    return ids


def _diagnosis(stack: Stack, ids: set[str]) -> str:
    """Which partitions hold the transactions without a verdict, who owns them, worker logs."""
    scored = set(stack.read_topic(VERDICTS))
    missing: dict[int, int] = {}
    for partition, tx in stack.read_partitions(TRANSACTIONS):
        if tx in ids and tx not in scored:
            missing[partition] = missing.get(partition, 0) + 1
    try:
        owners: Any = _scorer_assignment(stack)
    except AssertionError as exc:
        owners = str(exc)
    logs = "\n".join(stack.logs(w, tail=25) for w in WORKERS)
    return f"missing by partition {missing}; scorer group {owners}\n{logs}"


def _slice_ids(stack: Stack, index: int) -> set[str]:
    return stack.slices[index]


def _end_offsets(stack: Stack, topic: str) -> dict[int, int]:
    return stack.end_offsets(topic)


def _topic_ends(stack: Stack) -> dict[str, int]:
    names = [t for t in stack.admin().list_topics(timeout=30).topics if not t.startswith("__")]
    return {t: sum(stack.end_offsets(t).values()) for t in names}


def _partitions(stack: Stack) -> int:
    return len(stack.end_offsets(TRANSACTIONS))


def _ip(stack: Stack, service: str) -> str:
    networks = stack.inspect(service)["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"])


def _scorer_assignment(stack: Stack) -> dict[str, set[int]]:
    """Member host -> its partitions of the transactions topic, for the group the workers form.

    The scorers' group is the one whose members run in the worker containers (the retrainer
    reads the same topic in a group of its own); no group id is assumed.
    """
    admin = stack.admin()
    workers = {_ip(stack, w) for w in WORKERS}
    groups = [g.group_id for g in admin.list_consumer_groups().result().valid]
    for group in admin.describe_consumer_groups(groups).values():
        description = group.result()
        hosts = {m.host.lstrip("/") for m in description.members}
        if hosts and hosts <= workers:
            owners: dict[str, set[int]] = {}
            for member in description.members:
                owners.setdefault(member.host.lstrip("/"), set()).update(
                    tp.partition for tp in member.assignment.topic_partitions
                    if tp.topic == TRANSACTIONS)
            return owners
    raise AssertionError(f"no consumer group with members in {workers} among {groups}")


def _metric(stack: Stack, service: str, name: str) -> float:
    text = stack.exec(service, "curl", "-fsS", "http://127.0.0.1:6066/metrics").stdout
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + "{", name + " ")))


def _registry(stack: Stack) -> dict[str, Any]:
    model = stack.http("SENTINEL_MLFLOW_PORT", "/api/2.0/mlflow/registered-models/get",
                       params={"name": MODEL}).json()["registered_model"]
    versions = stack.http("SENTINEL_MLFLOW_PORT", "/api/2.0/mlflow/model-versions/search",
                          params={"filter": f"name='{MODEL}'"}).json()["model_versions"]
    return {"versions": sorted(v["version"] for v in versions),
            "aliases": {a["alias"]: a["version"] for a in model.get("aliases", [])}}
