"""Throwaway certificates for a TLS-secured embedded broker and its clients (tests, demos).

:func:`generate` makes, with the machine's ``openssl``: a private CA; a server certificate for
the broker's host names (DNS and IP subject alternative names, so clients can verify the
endpoint); and a client certificate with an encrypted key, for mutual TLS. Keys are EC P-256,
generated in milliseconds. Passwords travel to openssl in its environment, not its arguments.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sentinel.errors import BrokerError

logger = logging.getLogger(__name__)

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


@dataclass(frozen=True)
class TlsFiles:
    """Where the generated material is. PEM files, except the broker's PKCS12 keystore."""

    ca_cert: Path
    server_keystore: Path  # PKCS12: the broker's key, its certificate and the CA
    keystore_password: str
    client_cert: Path
    client_key: Path  # encrypted with client_key_password
    client_key_password: str


def generate(directory: Path, hosts: Sequence[str] = ("localhost", "127.0.0.1"),
             client_name: str = "sentinel-client", days: int = 7) -> TlsFiles:
    """Create a CA, a broker certificate for ``hosts`` and a client certificate under
    ``directory``; raises :class:`BrokerError` when openssl is missing or fails."""
    if shutil.which("openssl") is None:
        raise BrokerError("openssl is not on PATH: it is needed to make test certificates")
    d = directory.resolve()
    d.mkdir(parents=True, exist_ok=True)
    store_pw, key_pw = secrets.token_hex(12), secrets.token_hex(12)
    env = {**os.environ, "SENTINEL_TLS_STORE": store_pw, "SENTINEL_TLS_KEY": key_pw}
    ca, ca_key = d / "ca.pem", d / "ca.key"
    _openssl(env, "req", "-x509", "-new", *_EC, "-nodes", "-keyout", ca_key, "-out", ca,
             "-days", days, "-subj", "/CN=sentinel-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    san = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)
    server = _signed(env, d, "server", hosts[0], ca, ca_key, days, [], [
        f"subjectAltName={san}", "extendedKeyUsage=serverAuth", "basicConstraints=CA:FALSE"])
    _openssl(env, "pkcs12", "-export", "-in", server, "-inkey", d / "server.key",
             "-certfile", ca, "-name", "broker", "-out", d / "server.p12",
             "-passout", "env:SENTINEL_TLS_STORE")
    client = _signed(env, d, "client", client_name, ca, ca_key, days,
                     ["-passout", "env:SENTINEL_TLS_KEY"],
                     ["extendedKeyUsage=clientAuth", "basicConstraints=CA:FALSE"])
    logger.info("generated test certificates dir=%s hosts=%s", d, ",".join(hosts))
    return TlsFiles(ca, d / "server.p12", store_pw, client, d / "client.key", key_pw)


def _signed(env: dict[str, str], d: Path, name: str, common_name: str, ca: Path, ca_key: Path,
            days: int, key_options: list[str], extensions: list[str]) -> Path:
    """A key and a certificate for ``common_name`` signed by the CA; returns the certificate."""
    key, csr, cert, ext = (d / f"{name}.{s}" for s in ("key", "csr", "pem", "ext"))
    _openssl(env, "req", "-new", *_EC, *(key_options or ["-nodes"]), "-keyout", key,
             "-out", csr, "-subj", f"/CN={common_name}")
    ext.write_text("".join(f"{line}\n" for line in extensions))
    _openssl(env, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
             "-set_serial", f"0x{secrets.token_hex(8)}", "-days", days, "-extfile", ext,
             "-out", cert)
    return cert


def _openssl(env: dict[str, str], *args: object) -> None:
    cmd = ["openssl", *(str(a) for a in args)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise BrokerError(f"openssl {args[0]} failed: {tail}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
