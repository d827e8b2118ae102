"""The HTTP guard, wired into a stdlib ThreadingHTTPServer as the worker wires it."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr, ValidationError

from sentinel.errors import ConfigurationError
from sentinel.http_guard import HttpGuard, bind_allowed, require_bind_allowed
from sentinel.settings import HttpSettings, Settings

OLD, NEW = "old-token-0123456789abcdef", "new-token-fedcba9876543210"
ANY = "0.0.0.0"  # noqa: S104 - the address under test


class _Server:
    """A guarded server whose /predict waits for ``release`` (to fill the slots)."""

    def __init__(self, guard: HttpGuard) -> None:
        self.guard = guard
        self.release = threading.Event()
        self.inside = threading.Semaphore(0)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: tuple = ()) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                rejection = server.guard.check(self.command, self.path, self.headers)
                if rejection is None:
                    with server.guard.slot() as full:
                        rejection = full
                        if full is None:
                            n = int(self.headers.get("Content-Length") or 0)
                            body = self.rfile.read(n)
                            if self.path == "/predict" and body == b"wait":
                                server.inside.release()
                                server.release.wait(30)
                            return self._send(200, json.dumps({"path": self.path}).encode())
                self._send(rejection.status, rejection.body(), rejection.headers)

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def request(self, method: str, path: str, body: bytes = b"",
                token: str | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        out = response.status, dict(response.getheaders()), response.read()
        conn.close()
        return out

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    settings = Settings(http=HttpSettings(tokens=(SecretStr(OLD), SecretStr(NEW)),
                                          max_body_bytes=1000, max_concurrent=2))
    s = _Server(HttpGuard.from_settings(settings))
    yield s
    s.close()


def test_predict_needs_a_token(server: _Server) -> None:
    status, headers, body = server.request("POST", "/predict", b"{}")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(body) == {"error": "missing or invalid bearer token"}
    assert server.request("POST", "/predict", b"{}", token="not-" + OLD)[0] == 401
    assert server.request("POST", "/predict", b"{}", token=OLD[:-1])[0] == 401


def test_either_rotation_token_is_accepted(server: _Server) -> None:
    assert server.request("POST", "/predict", b"{}", token=OLD)[0] == 200
    assert server.request("POST", "/predict", b"{}", token=NEW)[0] == 200


def test_open_paths_need_no_token_but_only_exact_ones(server: _Server) -> None:
    for path in ("/health", "/ready", "/metrics", "/health?verbose=1"):
        assert server.request("GET", path)[0] == 200, path
    assert server.request("GET", "/health/../predict")[0] == 401
    assert server.request("GET", "/healthz")[0] == 401


def test_body_over_the_limit_is_413(server: _Server) -> None:
    assert server.request("POST", "/predict", b"x" * 1000, token=OLD)[0] == 200
    status, _, body = server.request("POST", "/predict", b"x" * 1001, token=OLD)
    assert status == 413
    assert "1000 bytes" in json.loads(body)["error"]


def test_a_full_server_answers_429_at_once_and_recovers(server: _Server) -> None:
    results: list[int] = []
    holders = [threading.Thread(target=lambda: results.append(
        server.request("POST", "/predict", b"wait", token=OLD)[0])) for _ in range(2)]
    for t in holders:
        t.start()
    for _ in holders:  # both slots taken
        assert server.inside.acquire(timeout=30)
    status, headers, _ = server.request("POST", "/predict", b"{}", token=NEW)
    assert status == 429
    assert headers["Retry-After"] == "1"
    server.release.set()
    for t in holders:
        t.join(30)
    assert results == [200, 200]
    assert server.request("POST", "/predict", b"{}", token=NEW)[0] == 200


def test_unauthenticated_flood_is_refused_before_its_body_is_read() -> None:
    guard = HttpGuard(["a-token-of-sixteen-chars"], max_body_bytes=10)
    rejection = guard.check("POST", "/predict", {"Content-Length": "999999999"})
    assert rejection is not None and rejection.status == 401
    assert guard.check("POST", "/predict", {"content-length": "-1",
                                            "authorization": "bearer a-token-of-sixteen-chars"}
                       ).status == 400  # type: ignore[union-attr]


def test_no_token_means_open_but_bound_to_loopback() -> None:
    guard = HttpGuard()
    assert guard.check("POST", "/predict", {}, content_length=10) is None
    open_settings = Settings()
    assert bind_allowed("127.0.0.1", open_settings)
    assert bind_allowed("::1", open_settings)
    assert bind_allowed("localhost", open_settings)
    for host in (ANY, "", "::", "10.0.0.5", "example.com"):
        assert not bind_allowed(host, open_settings), host
    with pytest.raises(ConfigurationError, match="SENTINEL_HTTP__TOKENS"):
        require_bind_allowed(ANY, open_settings)
    assert bind_allowed(ANY, Settings(http=HttpSettings(tokens=(SecretStr(OLD),))))
    assert bind_allowed(ANY, Settings(http=HttpSettings(allow_insecure_bind=True)))


def test_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_HTTP__TOKENS", f"{OLD}, {NEW}")
    settings = Settings()
    assert [t.get_secret_value() for t in settings.http.tokens] == [OLD, NEW]
    assert OLD not in repr(settings)
    assert Settings(**{}).as_env()["SENTINEL_HTTP__TOKENS"] == json.dumps([OLD, NEW])
    monkeypatch.setenv("SENTINEL_HTTP__TOKENS", json.dumps([NEW]))
    assert [t.get_secret_value() for t in Settings().http.tokens] == [NEW]
    monkeypatch.setenv("SENTINEL_HTTP__TOKENS", "short")
    with pytest.raises(ValidationError, match="16 characters"):
        Settings()


def test_other_schemes_and_chunked_bodies_are_refused() -> None:
    guard = HttpGuard([OLD], max_body_bytes=100)
    assert guard.check("POST", "/predict", {"Authorization": f"Basic {OLD}"}).status == 401  # type: ignore[union-attr]
    assert guard.check("POST", "/predict", {"Authorization": OLD}).status == 401  # type: ignore[union-attr]
    assert guard.check("POST", "/predict", {"Authorization": f"bearer  {OLD} "}) is None
    chunked = {"Authorization": f"Bearer {OLD}", "Transfer-Encoding": "chunked"}
    assert guard.check("POST", "/predict", chunked).status == 411  # type: ignore[union-attr]
    assert guard.check("POST", "/predict", {"Authorization": f"Bearer {OLD}",
                                            "Content-Length": "ten"}).status == 400  # type: ignore[union-attr]
