"""Secured listeners of the embedded broker: SASL_SSL (SCRAM and PLAIN users) and, optionally,
SSL with a required client certificate (mutual TLS).

They are added beside the PLAINTEXT listener, which stays for the controller, inter-broker
traffic and the readiness probe. SCRAM credentials are written into the KRaft metadata when the
storage is formatted (``kafka-storage format --add-scram``), so they exist from the first start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sentinel.errors import BrokerError
from sentinel.infra.tls import TlsFiles

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SAFE = re.compile(r"[A-Za-z0-9._-]+")  # written into JAAS and --add-scram without escaping


@dataclass(frozen=True)
class BrokerSecurity:
    """A SASL_SSL listener on ``sasl_port`` with ``users`` (name -> password) for every
    mechanism of ``mechanisms``; an SSL listener requiring client certificates on
    ``mtls_port`` when set. Certificates come from :func:`sentinel.infra.tls.generate`."""

    tls: TlsFiles
    sasl_port: int
    users: Mapping[str, str] = field(default_factory=dict)
    mechanisms: tuple[str, ...] = MECHANISMS
    mtls_port: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.mechanisms) - set(MECHANISMS)
        if unknown or not self.mechanisms:
            raise BrokerError(f"SASL mechanisms must be among {', '.join(MECHANISMS)}, "
                              f"got {', '.join(sorted(unknown)) or 'none'}")
        for name, password in self.users.items():
            if not (_SAFE.fullmatch(name) and _SAFE.fullmatch(password)):
                raise BrokerError(f"SASL user {name!r}: use letters, digits, '.', '_' and '-' "
                                  "in names and passwords of the embedded broker")

    @property
    def ports(self) -> list[int]:
        return [self.sasl_port, *([self.mtls_port] if self.mtls_port is not None else [])]

    def listeners(self, host: str) -> dict[str, str]:
        """Listener name -> ``NAME://host:port``; the name's security protocol is
        :meth:`protocol_map`'s."""
        out = {"SASL_SSL": f"SASL_SSL://{host}:{self.sasl_port}"}
        if self.mtls_port is not None:
            out["MTLS"] = f"MTLS://{host}:{self.mtls_port}"
        return out

    def protocol_map(self) -> dict[str, str]:
        return {"SASL_SSL": "SASL_SSL", **({"MTLS": "SSL"} if self.mtls_port is not None else {})}

    def properties(self) -> dict[str, str]:
        """The broker's TLS and SASL configuration for these listeners."""
        props = {
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.tls.server_keystore),
            "ssl.keystore.password": self.tls.keystore_password,
            "ssl.key.password": self.tls.keystore_password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.tls.ca_cert),
            "sasl.enabled.mechanisms": ",".join(self.mechanisms),
        }
        for mechanism in self.mechanisms:
            prefix = f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config"
            if mechanism == "PLAIN":
                users = "".join(f' user_{n}="{p}"' for n, p in self.users.items())
                props[prefix] = f"org.apache.kafka.common.security.plain.PlainLoginModule " \
                                f"required{users};"
            else:
                props[prefix] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        if self.mtls_port is not None:
            props["listener.name.mtls.ssl.client.auth"] = "required"
        return props

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create the SCRAM users."""
        return [f"--add-scram={m}=[name={n},password={p}]"
                for m in self.mechanisms if m.startswith("SCRAM-")
                for n, p in self.users.items()]
