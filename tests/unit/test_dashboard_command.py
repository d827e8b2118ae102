"""``sentinel dashboard``: Streamlit on loopback unless the settings say otherwise, with the
settings (and nothing else of the caller's SENTINEL_ environment) handed to the page."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from pydantic import SecretStr

from cli import infra as commands
from sentinel.settings import DashboardSettings, Settings


def _run(monkeypatch: pytest.MonkeyPatch, settings: Settings, port: int | None = None
         ) -> tuple[list[str], dict[str, str]]:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def call(cmd: list[str], env: dict[str, str], **_: Any) -> int:
        calls.append((cmd, env))
        return 0

    monkeypatch.setattr(commands.subprocess, "call", call)
    monkeypatch.setenv("SENTINEL_DASHBOARD__PROMETHEUS_URL", "http://from-the-shell:1")
    assert commands.dashboard(settings, argparse.Namespace(port=port)) == 0
    return calls[0]


def _option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_the_dashboard_binds_to_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    cmd, env = _run(monkeypatch, Settings())
    assert cmd[cmd.index("run") + 1].endswith("dashboard/app.py")
    assert _option(cmd, "--server.address") == "127.0.0.1"
    assert _option(cmd, "--server.port") == "8501"
    # the page's sources are these settings, not what the calling shell happened to export
    assert env["SENTINEL_DASHBOARD__PROMETHEUS_URL"] == "http://127.0.0.1:9090"


def test_host_port_and_password_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(dashboard=DashboardSettings(host="0.0.0.0", port=9000,  # noqa: S104
                                                    password=SecretStr("pw")))
    cmd, env = _run(monkeypatch, settings)
    assert _option(cmd, "--server.address") == "0.0.0.0"  # noqa: S104
    assert _option(cmd, "--server.port") == "9000"
    assert env["SENTINEL_DASHBOARD__PASSWORD"] == "pw"
    assert "pw" not in " ".join(cmd)  # never on a command line (ps shows it)
    cmd, _ = _run(monkeypatch, settings, port=8600)
    assert _option(cmd, "--server.port") == "8600"
