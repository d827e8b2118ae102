"""The dashboard's password gate, through Streamlit's own app runner (no browser): nothing is
read from any source before the password, a wrong one is refused, the right one opens the page.
The sources are closed loopback ports, so the page after the gate says they are down."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sentinel.infra.worker_process import free_port

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture
def sources_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    prometheus = f"http://127.0.0.1:{free_port()}"
    for key, value in {"SENTINEL_DATA_DIR": str(tmp_path / "data"),
                       "SENTINEL_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
                       "SENTINEL_DASHBOARD__PROMETHEUS_URL": prometheus,
                       "SENTINEL_DASHBOARD__REFRESH_S": "0"}.items():
        monkeypatch.setenv(key, value)
    return prometheus


def _texts(app: AppTest) -> str:
    return " ".join([e.value for e in app.error] + [m.value for m in app.markdown]
                    + [t.value for t in app.title])


def test_a_password_is_asked_before_anything_is_read(
    sources_down: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINEL_DASHBOARD__PASSWORD", "correct horse")
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    assert [t.label for t in app.text_input] == ["Password"]
    assert "unavailable" not in _texts(app)  # no source was contacted
    app.text_input[0].input("wrong")
    app.button[0].click().run()
    assert [e.value for e in app.error] == ["Wrong password."]
    assert "Status at a glance" not in _texts(app)
    app.text_input[0].input("correct horse")
    app.button[0].click().run()
    assert not app.text_input  # the form is gone
    assert f"Prometheus at {sources_down} unavailable" in _texts(app)


def test_without_a_password_the_page_opens(sources_down: str) -> None:
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not app.text_input
    assert f"Prometheus at {sources_down} unavailable" in _texts(app)
