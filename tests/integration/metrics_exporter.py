"""A stand-in worker for the dashboard's browser test: the worker's own metrics object
(:class:`stream_app.metrics.WorkerMetrics`) served over real HTTP, fed by a paced loop.

Run: ``python -m tests.integration.metrics_exporter --port N --model NAME``. It stops on
SIGTERM. Per 0.2 s tick: 15-25 scored transactions (a slow wave, so lines move), decisions
about 90 % approve, ~2 dead letters (a dead-letter ratio above the 1 % objective),
event-to-verdict latencies around 10 ms with 3 % at 120 ms (p50 within the 50 ms objective,
p99 above it), shadow agreement ~97 %, one drift alert after 5 s, and the consumer lag of
three partitions as the new engine exports it (``sentinel_consumer_lag{topic,partition}``).
``sentinel_restore_progress`` is deliberately absent: the page must say "no data".
"""

from __future__ import annotations

import argparse
import math
import random
import time

from prometheus_client import start_http_server

from stream_app.metrics import WorkerMetrics

SEED = 7


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="sentinel-fraud")
    parser.add_argument("--topic", default="sentinel.transactions")
    parser.add_argument("--tick", type=float, default=0.2)
    args = parser.parse_args()
    rng = random.Random(SEED)
    metrics = WorkerMetrics(fraud_window=200)
    lag = metrics.consumer_lag  # the engine's own gauge
    metrics.set_model("champion", args.model, "1")
    metrics.set_model("candidate", args.model, "2")
    metrics.registry_up.set(1)
    metrics.worker_ready.set(1)
    start_http_server(args.port, addr="127.0.0.1", registry=metrics.registry)
    started = time.monotonic()
    tick = 0
    drifted = False
    while True:
        tick += 1
        n = 20 + round(5 * math.sin(tick / 15))
        metrics.transactions.labels(outcome="scored").inc(n)
        flags = []
        for _ in range(n):
            u = rng.random()
            decision = "approve" if u < 0.9 else ("review" if u < 0.97 else "decline")
            metrics.verdicts.labels(decision=decision, model_version="1").inc()
            flags.append(decision != "approve")
            latency = 0.12 if rng.random() < 0.03 else rng.uniform(0.004, 0.016)
            metrics.event_to_verdict.observe(latency)
            metrics.shadow_results.labels(agree="true" if rng.random() < 0.97 else "false").inc()
        metrics.observe_decisions(flags)
        metrics.scoring_latency.observe(rng.uniform(0.001, 0.003))
        metrics.batch_size.observe(n)
        bad = rng.choice((1, 2, 3))
        metrics.transactions.labels(outcome="dead_lettered").inc(bad)
        metrics.dead_letters.labels(reason="schema" if tick % 3 else "validation").inc(bad)
        for partition in range(3):
            lag.labels(topic=args.topic, partition=str(partition)).set(
                max(0, round(40 + 30 * math.sin(tick / 10 + partition) + rng.gauss(0, 5))))
        if not drifted and time.monotonic() - started > 5:
            metrics.drift_alerts.labels(detector="psi", signal="amount").inc()
            drifted = True
        time.sleep(args.tick)


if __name__ == "__main__":
    main()
