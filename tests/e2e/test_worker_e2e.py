"""The worker as a process on the real broker: every transaction gets a verdict."""

from __future__ import annotations

import collections
import contextlib
import signal
import uuid
from pathlib import Path

import pytest

from schemas import DeadLetter, ShadowResult, Verdict
from sentinel.infra.worker_process import free_port
from sentinel.settings import Settings
from tests.e2e.worker_support import (
    http,
    log_tail,
    produce,
    start_worker,
    stop_worker,
    transactions,
    wait_ready,
    wait_serving,
    worker_env,
)
from tests.plugin import TopicCollector

pytestmark = [pytest.mark.e2e, pytest.mark.integration]



def test_stream_poison_shadow_swap_predict_metrics(worker_settings, tmp_path: Path) -> None:
    settings, registry = worker_settings(champion="1", candidate="2")
    port = free_port()
    proc = start_worker(worker_env(settings, port, f"w-{uuid.uuid4().hex[:8]}"),
                        tmp_path / "worker.log")
    verdicts = TopicCollector(settings, "verdicts", Verdict)
    shadows = TopicCollector(settings, "shadow", ShadowResult)
    dead = TopicCollector(settings, "dead_letters", DeadLetter)
    try:
        wait_ready(port, proc)
        first, second = transactions(5000, seed=1), transactions(5000, seed=2)
        poison = {10: b"{not json", 500: b'{"transaction_id": "x"}', 4000: b"\xff\xfe"}
        produce(settings, first, poison)
        verdicts.until(lambda v: len({x.transaction_id for x in v}) >= 5000)
        # the swap: promote v2 to champion, v3 becomes candidate, while the stream flows
        registry.client.set_registered_model_alias(settings.mlflow.model_name, "champion", "2")
        registry.client.set_registered_model_alias(settings.mlflow.model_name, "candidate", "3")
        produce(settings, second[:2500])
        wait_serving(port, champion="2", candidate="3")
        produce(settings, second[2500:])
        ids = {t.transaction_id for t in first + second}
        seen = verdicts.until(lambda v: ids <= {x.transaction_id for x in v})
        shadows.until(lambda s: {t.transaction_id for t in first}
                      <= {x.transaction_id for x in s})
        dlq = dead.until(lambda d: len(d) >= 3)

        by_id = collections.defaultdict(list)
        for v in seen:
            by_id[v.transaction_id].append(v)
        assert set(by_id) == ids
        duplicates = sum(len(v) - 1 for v in by_id.values())
        assert duplicates == 0  # no restart: none expected
        assert {by_id[t.transaction_id][0].model_version for t in first} == {"1"}
        assert {by_id[t.transaction_id][0].model_version for t in second[-1000:]} == {"2"}
        assert all(0 <= v.score <= 1 and len(v.feature_hash) == 32 for v in seen)
        assert sorted(d.reason for d in dlq) == ["invalid_json", "invalid_json", "schema"]
        assert {d.source_topic for d in dlq} == {settings.topics.name("transactions")}

        status, body = http(port, "/predict", {"id": first[0].card_id, "amount": 150000.0})
        assert status == 200 and body["model_version"] == "2"
        assert body["candidate_score"] is not None and body["decision"] in (
            "approve", "review", "decline")
        status, body = http(port, "/predict", {"id": 1, "amount": -5})
        assert status == 422 and body["errors"][0]["field"] == "amount"
        status, health = http(port, "/health")
        assert status == 200 and health["registry_up"] and health["champion"]["version"] == "2"
        status, metrics = http(port, "/metrics")
        assert status == 200
        assert 'sentinel_transactions_total{outcome="scored"} 10000.0' in metrics
        assert 'sentinel_dead_letters_total{reason="invalid_json"} 2.0' in metrics
        name = settings.mlflow.model_name
        assert f'model_name="{name}",model_version="2",role="champion"}} 1.0' in metrics
        assert "sentinel_event_to_verdict_latency_seconds_bucket" in metrics
        assert 'sentinel_model_swaps_total{role="champion"} 2.0' in metrics
    finally:
        stop_worker(proc, signal.SIGKILL)
        verdicts.close()
        shadows.close()
        dead.close()


def _run_to_end(settings: Settings, tmp_path: Path, kill_after: int | None,
                ) -> tuple[dict, int, bool]:
    txs = transactions(6000, cards=100, terminals=20, seed=7)
    ids = {t.transaction_id for t in txs}
    app_id = f"w-{uuid.uuid4().hex[:8]}"
    env = worker_env(settings, free_port(), app_id)
    port = int(env["SENTINEL_WORKER__WEB_PORT"])
    verdicts = TopicCollector(settings, "verdicts", Verdict)
    proc = start_worker(env, tmp_path / f"{app_id}.log")
    try:
        wait_ready(port, proc)
        produce(settings, txs[:3000])
        if kill_after is not None:
            # killed while the first half is in flight; the second half is produced while the
            # worker is down, so its features depend on state restored from the changelog
            verdicts.until(lambda v: len(v) >= kill_after)
            stop_worker(proc, signal.SIGKILL)
            produce(settings, txs[3000:])
            proc = start_worker(env, tmp_path / f"{app_id}.log")
        else:
            produce(settings, txs[3000:])
        with contextlib.suppress(TimeoutError):  # the caller judges what arrived (kill test)
            verdicts.until(lambda v: ids <= {x.transaction_id for x in v}, 150)
        seen = verdicts.drain()  # and whatever else is committed now (a duplicate would be)
    finally:
        sigterm_stopped = stop_worker(proc, signal.SIGTERM)
        verdicts.close()
    hashes: dict[str, set[str]] = collections.defaultdict(set)
    for v in seen:
        hashes[v.transaction_id].add(v.feature_hash)
    return hashes, len(seen) - len(ids), sigterm_stopped


def test_killed_worker_recovers_state_and_misses_nothing(worker_settings, tmp_path: Path) -> None:
    reference, _, stopped = _run_to_end(worker_settings()[0], tmp_path, kill_after=None)
    assert stopped, "SIGTERM did not stop the worker within 15 s"
    assert len(reference) == 6000, log_tail(tmp_path)  # the uninterrupted run scores all
    recovered, duplicates, stopped = _run_to_end(worker_settings()[0], tmp_path, kill_after=2500)
    assert stopped
    common = set(recovered) & set(reference)
    assert len(common) >= 0.9 * len(reference), (
        f"only {len(common)} of 6000 after restart\n{log_tail(tmp_path)}")
    differing = [t for t in common if recovered[t] != reference[t]]
    print(f"duplicates after SIGKILL: {duplicates}")
    assert differing == []  # every verdict of a transaction, duplicates included, is identical
    assert duplicates == 0, "exactly_once: no duplicate verdict after SIGKILL"
    assert len(common) == len(reference), (
        f"{len(reference) - len(common)} without a verdict\n{log_tail(tmp_path)}")


def test_predict_needs_a_token_and_a_flood_gets_429_while_the_stream_flows(
        worker_settings, tmp_path: Path) -> None:
    """With tokens configured, /predict and /reports answer 401 without one and work with
    either (a complete fraud report becomes a label on the labels topic); the probes stay
    open; a flood beyond the slots gets 429 at once; every transaction produced meanwhile
    still gets its verdict."""
    import json
    import threading
    import urllib.request
    from datetime import timedelta

    from schemas import LabelFeedback

    settings, _ = worker_settings(champion="1", candidate=None)
    tokens = ["first-token-0123456789", "second-token-0123456789"]
    env = worker_env(settings, free_port(), f"w-{uuid.uuid4().hex[:8]}")
    env.update({"SENTINEL_HTTP__TOKENS": ",".join(tokens), "SENTINEL_HTTP__MAX_CONCURRENT": "1"})
    port = int(env["SENTINEL_WORKER__WEB_PORT"])
    proc = start_worker(env, tmp_path / "worker.log")
    verdicts = TopicCollector(settings, "verdicts", Verdict, proc)

    def post(port: int, path: str, body: dict, token: str | None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers,
                                     data=json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read())

    def predict(token: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", headers=headers,
                                     data=b'{"id": 1, "amount": 150000.0}')
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    try:
        wait_ready(port, proc)
        assert predict(None) == 401
        assert predict("wrong-token-0123456789") == 401
        assert predict(tokens[0]) == 200 and predict(tokens[1]) == 200
        assert http(port, "/health")[0] == 200 and http(port, "/metrics")[0] == 200
        txs = transactions(2000, seed=5)
        report = {"report_id": "r-1", "card_id": txs[0].card_id,
                  "transaction_id": txs[0].transaction_id, "terminal_id": txs[0].terminal_id,
                  "transaction_time": txs[0].event_time.isoformat(),
                  "reported_at": (txs[0].event_time + timedelta(hours=5)).isoformat()}
        assert post(port, "/reports", report, None)[0] == 401
        status, answer = post(port, "/reports", report, tokens[1])
        assert status == 202 and answer["transaction_ids"] == [txs[0].transaction_id], answer
        labels = TopicCollector(settings, "labels", LabelFeedback, proc)
        reported = labels.until(lambda got: len(got) >= 1)
        labels.close()
        assert reported[0].source == "report" and reported[0].is_fraud
        statuses: list[int] = []
        lock = threading.Lock()

        def flood() -> None:
            for _ in range(40):
                status = predict(tokens[0])
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=flood) for _ in range(8)]
        for t in threads:
            t.start()
        produce(settings, txs)
        for t in threads:
            t.join()
        ids = {t.transaction_id for t in txs}
        verdicts.until(lambda v: ids <= {x.transaction_id for x in v})
        assert set(statuses) <= {200, 429} and 429 in statuses and 200 in statuses
        _, metrics = http(port, "/metrics")
        assert 'sentinel_http_rejected_total{status="401"} 3.0' in metrics
    finally:
        stop_worker(proc, signal.SIGKILL)
        verdicts.close()
