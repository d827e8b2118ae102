
"""The Streamlit dashboard in a real headless Chromium, fed by a real Prometheus scraping a
process that exports the worker's metrics (:mod:`tests.integration.metrics_exporter`, a paced
loop over ``stream_app.metrics.WorkerMetrics``), real topics on the shared broker and a real
MLflow registry whose champion was logged with its reference profile.

Chromium is driven over its DevTools protocol: Streamlit renders client-side over a websocket,
so the test waits for the values to appear in the page instead of guessing a time budget. The
charts are SVG, so the test counts each chart's points and reads the bins' order from the
rendered DOM. Screenshots go to artifacts/ (a CI artifact); README's docs/img/dashboard.png is
a copy of artifacts/dashboard-live.png.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest

from schemas import DriftAlert, Transaction, Verdict
from sentinel.infra.admin import create_topics, delete_topics
from sentinel.infra.kafka_io import EventProducer
from sentinel.infra.worker_process import free_port
from sentinel.settings import (
    DashboardSettings,
    KafkaSettings,
    MlflowSettings,
    Settings,
    TopicSettings,
)
from sentinel.topics import catalog
from tests.integration.test_prometheus_harness import PrometheusServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
MIN_POINTS = 8  # per chart: ~40 s of 1 s scrapes at the 15 min window's 3 s step
SEED = 22

# Per Vega chart on the page: its title, how many point symbols it drew, its x-axis labels.
PROBE = """
(() => [...document.querySelectorAll('[data-testid*="VegaLiteChart"]')].map(c => {
  const svg = c.querySelector('svg');
  if (!svg) return {title: '', points: -1, bars: -1, xlabels: []};
  const title = svg.querySelector('.role-title-text');
  const axes = [...svg.querySelectorAll('.role-axis')];
  const x = axes.find(a => (a.getAttribute('aria-label') || '').startsWith('X-axis'));
  return {
    title: title ? title.textContent : '',
    points: svg.querySelectorAll('[aria-roledescription="point"]').length,
    bars: svg.querySelectorAll('[aria-roledescription="bar"]').length,
    rules: svg.querySelectorAll('g.mark-rule.role-mark line').length,
    xlabels: x ? [...x.querySelectorAll('.role-axis-label text')].map(t => t.textContent) : [],
  };
}))()
"""
# The script has finished (no running icon) and every chart has drawn its axes.
DRAWN = """
(() => !document.querySelector('[data-testid^="stStatusWidgetRunning"]') &&
  [...document.querySelectorAll('[data-testid*="VegaLiteChart"]')]
    .every(c => c.querySelector('svg .role-axis, canvas')))()
"""
TILES = """
[...document.querySelectorAll('.sentinel-tile')].map(t => [t.innerText, t.dataset.status])
"""


class Streamlit:
    """``streamlit run dashboard/app.py`` on a free loopback port, with exactly ``settings``
    in its environment (the dashboard reads its sources from them only)."""

    def __init__(self, home: Path, settings: Settings, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._log = home / f"streamlit-{self.port}.log"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
        child_env.update(settings.as_env())
        child_env.update(env)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(self.port), "--browser.gatherUsageStats", "false",
             "--client.toolbarMode", "viewer"],
            cwd=ROOT, env=child_env, stdout=self._log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}_stcore/health", timeout=1).text == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"streamlit did not start: {self.log()}")

    def log(self) -> str:
        return self._log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


@dataclass(frozen=True)
class Page:
    text: str
    charts: list[dict[str, Any]]
    tiles: dict[str, str]  # tile text's first line -> data-status


def render(url: str, home: Path, ready: Callable[[str], bool], screenshot: Path,
           timeout_s: float = 90.0) -> str:
    """Open ``url`` in headless Chromium, wait until ``ready(page text)``, save a full-page
    screenshot, and return the page text (the DOM's rendered innerText)."""
    return render_page(url, home, ready, screenshot, timeout_s).text


def render_page(url: str, home: Path, ready: Callable[[str], bool], screenshot: Path,
                timeout_s: float = 90.0) -> Page:
    """:func:`render`, with what the charts and the status tiles drew."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium not installed (Debian package 'chromium'; "
                    "run scripts/install-system-deps.sh)")
    profile = home / f"chromium-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         "--window-size=1400,1800", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = _devtools_endpoint(proc, profile)
        return asyncio.run(_drive(endpoint, url, ready, screenshot, timeout_s))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _devtools_endpoint(proc: subprocess.Popen[str], profile: Path) -> str:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if port_file.exists() and len(port_file.read_text().splitlines()) >= 1:
            port = port_file.read_text().splitlines()[0]
            pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            return str(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.2)
    raise RuntimeError("chromium's DevTools endpoint never appeared")


async def _drive(endpoint: str, url: str, ready: Callable[[str], bool], screenshot: Path,
                 timeout_s: float) -> Page:
    async with aiohttp.ClientSession() as session, session.ws_connect(
        endpoint, max_msg_size=0
    ) as ws:
        counter = iter(range(1, 1_000_000))

        async def call(method: str, **params: Any) -> dict[str, Any]:
            ident = next(counter)
            await ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("id") == ident:
                    if "error" in data:
                        raise RuntimeError(f"{method}: {data['error']}")
                    return dict(data.get("result", {}))
            raise RuntimeError("DevTools connection closed")

        async def evaluate(expression: str) -> Any:
            result = await call("Runtime.evaluate", expression=expression, returnByValue=True)
            return result.get("result", {}).get("value")

        await call("Emulation.setDeviceMetricsOverride", width=1400, height=4200,
                   deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = str(await evaluate("document.body.innerText") or "")
            if ready(text) and await evaluate(DRAWN):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"the dashboard never showed what was expected:\n{text}")
        # the charts' marks come after their axes: until two looks in a row see the same marks
        settled = time.monotonic() + 30
        drawn, look = None, await evaluate(PROBE)
        while look != drawn or not await evaluate(DRAWN):
            if time.monotonic() > settled:
                raise AssertionError(f"the dashboard's charts never settled: {look}")
            await asyncio.sleep(0.5)
            drawn, look = look, await evaluate(PROBE)
        bottom = await evaluate(
            "(document.querySelector('[data-testid=\"stMainBlockContainer\"]') || document.body)"
            ".getBoundingClientRect().bottom")
        clip = {"x": 0, "y": 0, "width": 1400, "height": min(4200, int(bottom or 4200) + 20),
                "scale": 1}
        shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                          clip=clip)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        final = str(await evaluate("document.body.innerText") or text)
        charts = list(await evaluate(PROBE) or [])
        tiles = {str(t).strip().splitlines()[0]: str(s) for t, s in await evaluate(TILES) or []}
        return Page(final, charts, tiles)


def _finished(*needles: str) -> Callable[[str], bool]:
    """Ready when every needle shows and the page's last line is drawn."""
    return lambda text: all(n in text for n in (*needles, "page drawn in"))


def _settings_env(settings: Settings, prometheus_url: str, **dashboard: Any) -> Settings:
    return settings.model_copy(update={"dashboard": DashboardSettings(
        prometheus_url=prometheus_url, **{"refresh_s": 0, **dashboard})})


# -- headline values against the in-process fake, and sources that are down ------------------


def test_dashboard_shows_live_prometheus_values_and_says_kafka_is_down(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    settings = _settings_env(Settings(data_dir=tmp_path / "data",
                                      kafka=KafkaSettings(bootstrap_servers=closed)),
                             prometheus.url)
    app = Streamlit(tmp_path, settings)
    try:
        page = render_page(app.url, tmp_path, _finished("Flag rate", "Topics unavailable"),
                           ARTIFACTS / "dashboard.png")
    finally:
        app.stop()
    text = page.text
    assert re.search(r"Flag rate\s*1\.23 %", text), text  # sentinel_fraud_rate 0.0123
    assert re.search(r"Latency p99\s*24\.[89] ms\s*objective < 50 ms", text), text  # 24.85
    assert page.tiles["Latency p99"] == "ok", page.tiles
    # 1 in 20 disagree: exactly the 5 % limit, so its colour depends on the scrape's timing
    assert re.search(r"Shadow disagreement\s*5\.0 %", text), text
    assert page.tiles["Dead letters"] == "breach", page.tiles  # 1 in 20 > 1 %
    assert re.search(r"Throughput\s*\d+(\.\d)? tx/s", text), text
    assert re.search(r"champion\s+sentinel-fraud\s+7", text), text
    assert re.search(r"candidate\s+sentinel-fraud\s+8", text), text
    assert re.search(r"Workers ready\s*1 / 1", text), text
    assert "DeltaGenerator" not in text  # no Streamlit "magic" output leaked into the page
    assert f"Kafka at {closed}" in text, text  # the graceful message names the source that is down
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 20_000


def test_dashboard_says_prometheus_is_down(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    settings = _settings_env(
        Settings(data_dir=tmp_path / "data",
                 kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")), down)
    app = Streamlit(tmp_path, settings)
    try:
        text = render(app.url, tmp_path, _finished("Live metrics unavailable", "Topics"),
                      tmp_path / "down.png")
    finally:
        app.stop()
    assert f"Prometheus at {down} unavailable" in text
    assert "Flag rate" not in text


# -- the full page: a paced exporter, topics, a registry with the champion's profile ---------


@dataclass(frozen=True)
class Stack:
    settings: Settings
    prometheus: PrometheusServer
    home: Path


class Decoy:
    """A loopback port that counts the connections it receives (a URL override's target)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _register_champion(settings: Settings) -> None:
    """v1 and v2 registered and promoted, then a rollback to v1: a timeline, and a champion
    whose run holds the reference profile (amounts ~ lognormal(3.5, 1), scores ~ beta(1, 20))."""
    from drift.reference_profile import ARTIFACT_DIR, build_profile, write_profile
    from lifecycle.registry import ModelRegistry
    from training.learners import fit_logistic
    from training.model import Thresholds

    rng = np.random.default_rng(SEED)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 1.2).astype(int)
    model = fit_logistic(X, y, ("amount", "velocity")).with_thresholds(Thresholds(0.5, 0.9))
    profile = build_profile(rng.lognormal(3.5, 1.0, 20_000), rng.beta(1.0, 20.0, 20_000))
    path = write_profile(profile, settings.data_dir / "profile")
    with EventProducer(settings.librdkafka()) as producer:
        registry = ModelRegistry(settings, publish=lambda e: producer.send(
            settings.topics.name("model_events"), e.model_name, e))
        for version in ("1", "2"):
            logged = registry.log_run(model, params={}, metrics={}, tags={},
                                      artifacts={ARTIFACT_DIR: path})
            registry.register(logged, reason=f"train v{version}")
            registry.promote(version, reason=f"promote v{version}")
        registry.rollback(reason="v2 flags too much")


def _produce_live(settings: Settings) -> None:
    """The live window: amounts three times the reference's (a shift), scores as trained."""
    rng = np.random.default_rng(SEED + 1)
    now = datetime.now(UTC)
    names = settings.topics
    with EventProducer(settings.librdkafka()) as producer:
        for i in range(900):
            card = f"c{i % 13}"
            producer.send(names.name("transactions"), card, Transaction(
                transaction_id=f"t{i}", card_id=card, terminal_id="T1",
                amount=float(3 * rng.lognormal(3.5, 1.0)), event_time=now))
            producer.send(names.name("verdicts"), f"t{i}", Verdict(
                transaction_id=f"t{i}", card_id=card, score=float(rng.beta(1.0, 20.0)),
                decision="approve", model_name=settings.mlflow.model_name, model_version="1",
                feature_hash="h", event_time=now, scored_at=now, latency_ms=5.0))
        producer.send(names.name("drift_alerts"), "amount", DriftAlert(
            alert_id="a1", detector="psi", signal="amount", statistic=1.25, model_version="1",
            event_time=now, detected_at=now, events_seen=900))


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("dashboard")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = Settings(data_dir=home / "sentinel",
                        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
                        topics=TopicSettings(prefix=prefix, partitions=3),
                        mlflow=MlflowSettings(model_name=f"fraud-{prefix[:-1]}"))
    settings.data_dir.mkdir(parents=True)
    create_topics(settings.librdkafka(), catalog(settings.topics))
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.metrics_exporter", "--port", str(port),
         "--model", settings.mlflow.model_name, "--topic", settings.topics.name("transactions")],
        cwd=ROOT, stdout=(home / "exporter.log").open("wb"), stderr=subprocess.STDOUT)
    server = PrometheusServer(home, {"sentinel-worker": [f"127.0.0.1:{port}"]})
    try:
        server.start()
        started = time.monotonic()
        _register_champion(settings)
        _produce_live(settings)
        # enough history for lines: 32 scrapes (the 15 min window's step is 3 s)
        server.wait_for('count_over_time(sentinel_transactions_total{outcome="scored"}[5m])',
                        lambda r: r != [] and float(r[0]["value"][1]) >= 32, timeout_s=90)
        server.wait_for('ALERTS{alertname="SentinelDriftDetected",alertstate="firing"}')
        print(f"stack ready after {time.monotonic() - started:.1f} s")
        yield Stack(settings, server, home)
    finally:
        server.stop()
        exporter.terminate()
        exporter.wait(10)
        delete_topics(settings.librdkafka(), [s.name for s in catalog(settings.topics)])


def _ready(text: str) -> bool:
    return all(n in text for n in ("Throughput", "Timeline", "PSI ", "restore", "page drawn in"))


@pytest.mark.integration
def test_dashboard_draws_series_drift_against_the_training_profile_and_the_timeline(
    stack: Stack, tmp_path: Path
) -> None:
    settings = _settings_env(stack.settings, stack.prometheus.url,
                             mlflow_ui_url="http://mlflow.example:5000")
    app = Streamlit(tmp_path, settings)
    try:
        page = render_page(app.url, tmp_path, _ready, ARTIFACTS / "dashboard-live.png")
    finally:
        app.stop()
    text = page.text
    series = {c["title"]: c for c in page.charts if c["points"] > 0 or c["bars"] <= 0}
    for title in ("Throughput", "Verdicts by decision", "Flag rate (review + decline)",
                  "Event-to-verdict latency", "Dead letters by reason", "Shadow agreement",
                  "Consumer lag per partition"):
        assert title in series, (title, page.charts)
        assert series[title]["points"] >= MIN_POINTS, (title, series[title])
    # lines per series: p50 and p99; three decisions; three partitions
    assert series["Event-to-verdict latency"]["points"] >= 2 * MIN_POINTS
    assert series["Consumer lag per partition"]["points"] >= 3 * MIN_POINTS
    assert "objective 50 ms" in text, text
    assert re.search(r"State restore progress.*\s*no data", text), text  # not exported
    # axes in units
    assert "transactions / s" in text and "verdicts / s" in text and "messages behind" in text
    # status at a glance, coloured against alerts.yml's thresholds
    assert page.tiles["Latency p99"] == "breach", page.tiles  # 3 % at 120 ms
    assert page.tiles["Latency p50"] == "ok", page.tiles
    assert page.tiles["Dead letters"] == "breach", page.tiles  # ~2 in 22
    assert page.tiles["Verdicts"] == "ok", page.tiles
    assert re.search(r"SentinelDriftDetected \(firing", text), text
    # drift against the champion's training profile: bins in numeric order, PSI and threshold
    bins = [c for c in page.charts if c["bars"] > 0]
    assert [c["title"] for c in bins] == ["amount", "score"], page.charts
    for chart in bins:
        lows = [float(label.split(" to ")[0].replace(",", "")) for label in chart["xlabels"]]
        assert len(lows) >= 5 and lows == sorted(lows), chart
    psi = dict(re.findall(r"(amount|score): live window vs training reference\s*PSI (\d+\.\d+)",
                          text))
    assert float(psi["amount"]) > 0.2, text  # amounts tripled against the reference
    assert float(psi["score"]) < 0.1, text  # scores drawn as in training
    assert page.tiles["amount: live window vs training reference"] == "breach"
    assert page.tiles["score: live window vs training reference"] == "ok"
    assert "threshold 0.2" in text and "champion version 1" in text, text
    # the timeline: table rows newest first with MLflow links, markers on the charts
    table = text[text.index("Timeline: promotions"):]
    kinds = re.findall(r"\t(drift alert|rollback|promotion|registration|alias moved)\t", table)
    assert kinds[:2] == ["drift alert", "rollback"], table
    assert kinds.count("promotion") == 2 and kinds.count("registration") == 2, table
    assert "run of v1" in table and "run of v2" in table, table  # links to the MLflow UI
    assert series["Throughput"]["rules"] >= 5, series["Throughput"]  # markers in the window


@pytest.mark.integration
def test_dashboard_ignores_url_overrides_and_refreshes(stack: Stack, tmp_path: Path) -> None:
    prometheus_decoy, kafka_decoy = Decoy(), Decoy()
    settings = _settings_env(stack.settings, stack.prometheus.url, refresh_s=10)
    app = Streamlit(tmp_path, settings)
    query = (f"?prometheus=http://127.0.0.1:{prometheus_decoy.port}"
             f"&kafka=127.0.0.1:{kafka_decoy.port}&prefix=evil.&mlflow=http://127.0.0.1:1")
    seen: list[str] = []

    def refreshed(text: str) -> bool:
        seen.extend(re.findall(r"read at (\d\d:\d\d:\d\d)", text)[:1])
        return _ready(text) and len(set(seen)) >= 2  # auto-refresh read the sources again

    try:
        page = render_page(app.url + query, tmp_path, refreshed, tmp_path / "override.png",
                           timeout_s=60)
    finally:
        app.stop()
        prometheus_decoy.close()
        kafka_decoy.close()
    assert prometheus_decoy.connections == 0 and kafka_decoy.connections == 0
    assert f"Prometheus {stack.prometheus.url}" in page.text, page.text
    assert "evil." not in page.text.replace(query, "")
    assert page.tiles["Verdicts"] == "ok" and "unavailable" not in page.text, page.text
