# ruff: noqa: F811 - pytest fixtures imported from the harness are redefined as arguments
"""The Streamlit dashboard in a real headless Chromium, fed by a real Prometheus scraping a real
metrics endpoint (and, in the second test, real topics on the shared broker).

Chromium is driven over its DevTools protocol: Streamlit renders client-side over a websocket,
so the test waits for the values to appear in the page instead of guessing a time budget. The
page's text is asserted and a screenshot saved to artifacts/ (a CI artifact).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from schemas import DriftAlert, ModelEvent, Transaction, Verdict
from sentinel.infra.kafka_io import EventProducer
from sentinel.settings import Settings
from tests.integration.test_prometheus_harness import (  # noqa: F401 - fixtures
    FakeWorkerMetrics,
    PrometheusServer,
    fake_worker,
    free_port,
    prometheus,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"


class Streamlit:
    """``streamlit run stream_app/dashboard.py`` on a free loopback port."""

    def __init__(self, home: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._log = home / "streamlit.log"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "stream_app" / "dashboard.py"),
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(self.port), "--browser.gatherUsageStats", "false",
             "--client.toolbarMode", "viewer", "--", *args],
            cwd=ROOT, stdout=self._log.open("wb"), stderr=subprocess.STDOUT)
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


def render(url: str, home: Path, ready: Callable[[str], bool], screenshot: Path,
           timeout_s: float = 90.0) -> str:
    """Open ``url`` in headless Chromium, wait until ``ready(page text)``, save a full-page
    screenshot, and return the page text (the DOM's rendered innerText)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium not installed (Debian package 'chromium'; "
                    "run scripts/install-system-deps.sh)")
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={home / 'chromium'}",
         "--window-size=1400,1800", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = _devtools_endpoint(proc, home)
        return asyncio.run(_drive(endpoint, url, ready, screenshot, timeout_s))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _devtools_endpoint(proc: subprocess.Popen[str], home: Path) -> str:
    port_file = home / "chromium" / "DevToolsActivePort"
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
                 timeout_s: float) -> str:
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

        await call("Emulation.setDeviceMetricsOverride", width=1400, height=2400,
                   deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            result = await call("Runtime.evaluate", expression="document.body.innerText",
                                returnByValue=True)
            text = str(result.get("result", {}).get("value", ""))
            if ready(text):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"the dashboard never showed what was expected:\n{text}")
        await asyncio.sleep(1.0)  # let charts finish drawing before the screenshot
        shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        final = await call("Runtime.evaluate", expression="document.body.innerText",
                           returnByValue=True)
        return str(final.get("result", {}).get("value", text))


def _finished(*needles: str) -> Callable[[str], bool]:
    """Ready when every needle shows and Streamlit no longer says it is running."""
    return lambda text: all(n in text for n in needles) and "Running..." not in text


def test_dashboard_shows_live_prometheus_values_and_says_kafka_is_down(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    app = Streamlit(tmp_path, "--prometheus", prometheus.url, "--kafka", closed)
    try:
        text = render(app.url, tmp_path, _finished("Fraud rate", "Topics unavailable"),
                      ARTIFACTS / "dashboard.png")
    finally:
        app.stop()
    assert "1.230 %" in text, text  # sentinel_fraud_rate 0.0123 as scraped
    assert re.search(r"Latency p99 \(objective 50 ms\)\s*24\.[89] ms", text), text  # 24.85
    assert re.search(r"Shadow agreement\s*9\d\.\d %", text), text
    assert re.search(r"Throughput\s*\d+(\.\d)? tx/s", text), text
    assert re.search(r"champion\s+sentinel-fraud\s+7", text), text
    assert re.search(r"candidate\s+sentinel-fraud\s+8", text), text
    assert "Workers ready" in text and "1 / 1" in text, text
    assert "DeltaGenerator" not in text  # no Streamlit "magic" output leaked into the page
    assert f"Kafka at {closed}" in text, text  # the graceful message names the source that is down
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 20_000


def test_dashboard_says_prometheus_is_down(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    app = Streamlit(tmp_path, "--prometheus", down, "--kafka", f"127.0.0.1:{free_port()}")
    try:
        text = render(app.url, tmp_path, _finished("Live metrics unavailable", "Topics"),
                      tmp_path / "down.png")
    finally:
        app.stop()
    assert f"Prometheus at {down} unavailable" in text
    assert "Fraud rate" not in text


@pytest.fixture
def topics_with_history(settings_factory: Callable[..., Settings]) -> Iterator[Settings]:
    """Real topics holding model events, a drift alert, and transactions and verdicts whose
    amounts shift between the oldest and the newest messages."""
    settings = settings_factory()
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    names = settings.topics
    with EventProducer(settings.librdkafka()) as producer:
        for i, (action, version, prev) in enumerate(
            [("registered", "1", None), ("promoted", "1", None), ("registered", "2", None),
             ("promoted", "2", "1"), ("rolled_back", "1", "2")]
        ):
            producer.send(names.name("model_events"), "m", ModelEvent(
                event_id=uuid.uuid4().hex, model_name="sentinel-fraud", action=action,
                version=version, previous_version=prev, reason=f"step {i}",
                at=t0 + timedelta(hours=i)))
        producer.send(names.name("drift_alerts"), "amount", DriftAlert(
            alert_id="a1", detector="adwin", signal="amount", statistic=3.25,
            model_version="2", event_time=t0, detected_at=t0 + timedelta(hours=3),
            events_seen=12_000))
        for i in range(400):
            amount = 20.0 + i % 50 if i < 200 else 200.0 + i % 50  # the newest are larger
            at = t0 + timedelta(seconds=i)
            producer.send(names.name("transactions"), f"c{i % 7}", Transaction(
                transaction_id=f"t{i}", card_id=f"c{i % 7}", terminal_id="T1",
                amount=amount, event_time=at))
            producer.send(names.name("verdicts"), f"t{i}", Verdict(
                transaction_id=f"t{i}", card_id=f"c{i % 7}", score=(i % 100) / 100,
                decision="approve", model_name="sentinel-fraud", model_version="2",
                feature_hash="h", event_time=at, scored_at=at, latency_ms=5.0))
    yield settings


@pytest.mark.integration
def test_dashboard_shows_promotions_drift_and_distributions_from_topics(
    prometheus: PrometheusServer, topics_with_history: Settings, tmp_path: Path
) -> None:
    settings = topics_with_history
    app = Streamlit(tmp_path, "--prometheus", prometheus.url,
                    "--kafka", settings.bootstrap_servers, "--prefix", settings.topics.prefix,
                    "--sample", "50")
    try:
        text = render(app.url, tmp_path, _finished("Promotion history", "PSI"),
                      ARTIFACTS / "dashboard-topics.png")
    finally:
        app.stop()
    history = text[text.index("Promotion history"):text.index("Drift alerts (")]
    assert re.search(r"rolled_back\s+sentinel-fraud\s+1\s+2", history), history
    assert history.index("rolled_back") < history.index("promoted")  # newest first
    assert re.search(r"adwin\s+amount\s+3\.25", text), text
    psi = [float(x) for x in re.findall(r"PSI (\d+\.\d+)", text)]
    assert len(psi) == 2
    # Amounts: the newest 50 per partition are all above the oldest ones (large shift);
    # scores cycle identically (no shift to speak of).
    assert psi[0] > 1.0
    assert psi[1] < 0.5
