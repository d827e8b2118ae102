"""`sentinel demo` (what `make demo` runs) end to end as a process on the session's broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.infra.worker_process import free_port

pytestmark = pytest.mark.e2e


# planted secrets (issue 18): never in the demo's output, its logs or the stores it writes
SECRETS = ("PlantedDemoDashboard-S3cret", "PlantedDemoToken-0123456789")


def test_demo_scores_every_transaction_and_closes_the_loop(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update({
        "SENTINEL_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SENTINEL_DATA_DIR": str(tmp_path / "data"),
        "SENTINEL_WORKER__WEB_PORT": str(free_port()),
        # (a SASL password on a PLAINTEXT cluster is refused as a setting: plant another secret)
        "SENTINEL_DASHBOARD__PASSWORD": SECRETS[0],
        "SENTINEL_HTTP__TOKENS": SECRETS[1],
    })
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--count", "4000"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    assert "-> @candidate (shadow)" in out, out
    assert "verdicts 4,000 of 4,000 transactions (missing 0, duplicates 0)" in out, out
    assert "every malformed event is dead-lettered: yes" in out, out
    assert "POST /predict" in out and "-> 200" in out, out
    assert "drift alert from the worker" in out, out
    assert "worker now serves v2" in out, out
    assert "closed loop done" in out, out
    assert "Traceback" not in result.stderr
    written = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in written)
    for secret in SECRETS:
        assert secret not in out + result.stderr
        for path in written:
            assert secret.encode() not in path.read_bytes(), f"{secret} in {path}"
