"""The Prometheus config and alert rules in deploy/prometheus: valid, and every alert tested.

promtool (Debian's ``prometheus`` package; scripts/install-system-deps.sh) checks the syntax and
runs alerts_test.yml; the structural checks below run without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"

# The worker's and retrainer's metric names (the contract the dashboard and alerts rely on).
KNOWN_METRICS = {
    "sentinel_transactions_total", "sentinel_verdicts_total", "sentinel_dead_letters_total",
    "sentinel_shadow_results_total", "sentinel_candidate_failures_total",
    "sentinel_scoring_latency_seconds", "sentinel_event_to_verdict_latency_seconds",
    "sentinel_batch_size", "sentinel_model_info", "sentinel_registry_up", "sentinel_worker_ready",
    "sentinel_fraud_rate", "sentinel_labels_total", "sentinel_drift_alerts_total",
    "sentinel_model_swaps_total", "sentinel_retrains_total", "sentinel_promotions_total",
}
REQUIRED_ALERTS = {
    "SentinelNoVerdicts", "SentinelDeadLetterRateHigh", "SentinelEventToVerdictLatencyHigh",
    "SentinelDriftDetected", "SentinelShadowDisagreementHigh", "SentinelRegistryUnreachable",
    "SentinelWorkerNotReady",
}


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; "
                    "run scripts/install-system-deps.sh)")
    return subprocess.run(["promtool", *args], cwd=PROM_DIR, capture_output=True, text=True,
                          timeout=60, check=False)


def test_promtool_accepts_the_config_and_its_rule_files() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(_alerts())} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_required_alerts_exist_and_say_what_to_do() -> None:
    alerts = {rule["alert"]: rule for rule in _alerts()}
    assert alerts.keys() >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations.get("summary"), name
        assert len(str(annotations.get("description", ""))) > 80, f"{name}: say what to do"
        assert rule["labels"]["severity"] in {"page", "ticket"}, name


def test_alerts_only_use_the_published_metric_names() -> None:
    for rule in _alerts():
        used = set(re.findall(r"\bsentinel_[a-z_]+", str(rule["expr"])))
        used = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
        assert used <= KNOWN_METRICS, f"{rule['alert']}: unknown metric {used - KNOWN_METRICS}"


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    doc = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())
    fires: set[str] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - fires == set(), "alerts never shown to fire"
    assert names - silent == set(), "alerts never shown to stay silent"


def test_prometheus_scrapes_the_workers_and_the_retrainer() -> None:
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker_sd = jobs["sentinel-worker"]["dns_sd_configs"][0]
    assert worker_sd["names"] == ["worker"] and worker_sd["port"] == 6066
    assert jobs["sentinel-retrainer"]["static_configs"][0]["targets"] == ["retrainer:6067"]
    assert config["rule_files"] == ["alerts.yml"]
