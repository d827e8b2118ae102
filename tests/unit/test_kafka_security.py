"""Kafka security settings: their librdkafka mapping, and one clear line for a bad combination."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from sentinel.errors import BrokerError
from sentinel.infra.broker_security import BrokerSecurity
from sentinel.infra.tls import TlsFiles, generate
from sentinel.settings import KafkaSettings, Settings
from tests.unit.test_settings_cli import run_cli


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, str]:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("-----BEGIN TEST-----\n")
    return {name: str(path) for name, path in files.items()}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_maps_every_option(mechanism: str, pem: dict[str, str]) -> None:
    kafka = KafkaSettings(bootstrap_servers="b:9093", security_protocol="SASL_SSL",
                          sasl_mechanism=mechanism, sasl_username="u",
                          sasl_password=SecretStr("hunter2"), ssl_ca_location=pem["ca"])
    assert kafka.as_librdkafka_dict() == {
        "bootstrap.servers": "b:9093", "security.protocol": "SASL_SSL", "client.id": "sentinel",
        "sasl.mechanism": mechanism, "sasl.username": "u", "sasl.password": "hunter2",
        "ssl.ca.location": pem["ca"], "ssl.endpoint.identification.algorithm": "https"}


def test_mutual_tls_maps_certificate_key_and_key_password(pem: dict[str, str]) -> None:
    kafka = KafkaSettings(bootstrap_servers="b:9094", security_protocol="SSL",
                          ssl_ca_location=pem["ca"], ssl_certificate_location=pem["cert"],
                          ssl_key_location=pem["key"], ssl_key_password=SecretStr("k3y"),
                          ssl_endpoint_identification=False)
    conf = kafka.as_librdkafka_dict()
    assert conf["security.protocol"] == "SSL"
    assert conf["ssl.certificate.location"] == pem["cert"]
    assert conf["ssl.key.location"] == pem["key"]
    assert conf["ssl.key.password"] == "k3y"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert not any(k.startswith("sasl.") for k in conf)
    assert "k3y" not in repr(kafka)


def test_sasl_plaintext_sends_no_tls_options() -> None:
    conf = KafkaSettings(bootstrap_servers="b:1", security_protocol="sasl_plaintext",
                         sasl_mechanism="scram-sha-512", sasl_username="u",
                         sasl_password=SecretStr("p")).as_librdkafka_dict()
    assert conf["security.protocol"] == "SASL_PLAINTEXT"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert not any(k.startswith("ssl.") for k in conf)


def test_plaintext_default_is_unchanged() -> None:
    assert KafkaSettings(bootstrap_servers="b:1").as_librdkafka_dict() == {
        "bootstrap.servers": "b:1", "security.protocol": "PLAINTEXT", "client.id": "sentinel"}


def test_every_client_config_of_a_deployment_carries_the_security_options(
        pem: dict[str, str]) -> None:
    settings = Settings(kafka=KafkaSettings(
        bootstrap_servers="b:1", security_protocol="SSL", ssl_ca_location=pem["ca"],
        ssl_certificate_location=pem["cert"], ssl_key_location=pem["key"]))
    conf = settings.librdkafka(**{"group.id": "g"})
    assert conf["ssl.key.location"] == pem["key"]
    assert conf["group.id"] == "g"


@pytest.mark.parametrize(("fields", "message"), [
    ({"security_protocol": "SASL_SSL"}, "security_protocol SASL_SSL needs sasl_mechanism"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"},
     "sasl_mechanism PLAIN needs sasl_username and sasl_password"),
    ({"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"},
     "sasl_mechanism is set but security_protocol PLAINTEXT does not use SASL"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u",
      "sasl_password": "p", "ssl_ca_location": "CA"},
     "ssl_ca_location is set but security_protocol SASL_PLAINTEXT does not use TLS"),
    ({"security_protocol": "SSL", "ssl_certificate_location": "CERT"},
     "mutual TLS needs both ssl_certificate_location and ssl_key_location"),
    ({"security_protocol": "SSL", "ssl_key_password": "k"},
     "ssl_key_password is set without ssl_key_location"),
    ({"security_protocol": "SSL", "ssl_ca_location": "/nonexistent/ca.pem"},
     "ssl_ca_location: no file at /nonexistent/ca.pem"),
])
def test_bad_combination_is_rejected_with_what_to_change(
        fields: dict[str, str], message: str, pem: dict[str, str]) -> None:
    resolved = {k: pem[v.lower()] if v in ("CA", "CERT") else v for k, v in fields.items()}
    with pytest.raises(ValidationError) as info:
        KafkaSettings(**resolved)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_unknown_sasl_mechanism_is_rejected() -> None:
    with pytest.raises(ValidationError, match="SCRAM-SHA-512"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="GSSAPI",  # type: ignore[arg-type]
                      sasl_username="u", sasl_password=SecretStr("p"))


def test_bad_combination_in_env_is_one_line_on_the_cli() -> None:
    result = run_cli("kafka", "status", SENTINEL_KAFKA__SECURITY_PROTOCOL="SASL_SSL",
                     SENTINEL_KAFKA__BOOTSTRAP_SERVERS="b:9093")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "sentinel: error: invalid setting kafka: security_protocol SASL_SSL needs "
        "sasl_mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512): set "
        "SENTINEL_KAFKA__SASL_MECHANISM")


def test_security_settings_come_from_env(monkeypatch: pytest.MonkeyPatch,
                                         pem: dict[str, str]) -> None:
    for key, value in {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-256",
                       "SASL_USERNAME": "svc", "SASL_PASSWORD": "pw", "SSL_CA_LOCATION": pem["ca"],
                       "SSL_CERTIFICATE_LOCATION": pem["cert"], "SSL_KEY_LOCATION": pem["key"],
                       "SSL_KEY_PASSWORD": "kp", "SSL_ENDPOINT_IDENTIFICATION": "false"}.items():
        monkeypatch.setenv(f"SENTINEL_KAFKA__{key}", value)
    settings = Settings()
    conf = settings.librdkafka()
    assert conf["sasl.mechanism"] == "SCRAM-SHA-256"
    assert conf["sasl.password"] == "pw"
    assert conf["ssl.key.password"] == "kp"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    assert Settings().librdkafka() == conf


# -- the embedded broker's secured listeners ------------------------------------------------
def _files(tmp_path: Path) -> TlsFiles:
    return TlsFiles(tmp_path / "ca.pem", tmp_path / "s.p12", "sp", tmp_path / "c.pem",
                    tmp_path / "c.key", "kp")


def test_broker_security_properties_and_scram_users(tmp_path: Path) -> None:
    sec = BrokerSecurity(_files(tmp_path), sasl_port=9101, users={"alice": "a-1", "bob": "b_2"},
                         mtls_port=9102)
    assert sec.listeners("127.0.0.1") == {"SASL_SSL": "SASL_SSL://127.0.0.1:9101",
                                          "MTLS": "MTLS://127.0.0.1:9102"}
    assert sec.protocol_map() == {"SASL_SSL": "SASL_SSL", "MTLS": "SSL"}
    props = sec.properties()
    assert props["listener.name.mtls.ssl.client.auth"] == "required"
    assert props["listener.name.sasl_ssl.plain.sasl.jaas.config"].endswith(
        'required user_alice="a-1" user_bob="b_2";')
    assert props["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    assert sec.scram_arguments() == [
        "--add-scram=SCRAM-SHA-256=[name=alice,password=a-1]",
        "--add-scram=SCRAM-SHA-256=[name=bob,password=b_2]",
        "--add-scram=SCRAM-SHA-512=[name=alice,password=a-1]",
        "--add-scram=SCRAM-SHA-512=[name=bob,password=b_2]"]


@pytest.mark.parametrize(("users", "mechanisms"), [
    ({"alice": "a,b"}, ("PLAIN",)), ({"al ice": "x"}, ("PLAIN",)), ({}, ("GSSAPI",))])
def test_broker_security_rejects_what_it_cannot_write(
        tmp_path: Path, users: dict[str, str], mechanisms: tuple[str, ...]) -> None:
    with pytest.raises(BrokerError):
        BrokerSecurity(_files(tmp_path), 9101, users, mechanisms)


def test_generated_certificates_chain_to_the_ca_and_name_the_host(tmp_path: Path) -> None:
    tls = generate(tmp_path, hosts=("localhost", "127.0.0.1"))
    for cert, purpose in ((tls.client_cert, "sslclient"), (tmp_path / "server.pem", "sslserver")):
        verify = subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile",
                                 str(tls.ca_cert), str(cert)], capture_output=True, text=True,
                                check=False)
        assert verify.returncode == 0, verify.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "server.pem"), "-noout",
                           "-ext", "subjectAltName"], capture_output=True, text=True,
                          check=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    assert "ENCRYPTED" in tls.client_key.read_text()
    opened = subprocess.run(["openssl", "pkcs12", "-in", str(tls.server_keystore), "-nokeys",
                             "-passin", f"pass:{tls.keystore_password}"],
                            capture_output=True, text=True, check=False)
    assert opened.returncode == 0 and opened.stdout.count("BEGIN CERTIFICATE") == 2


def test_a_cluster_that_does_not_answer_yet_is_logged_not_fatal(
        caplog: pytest.LogCaptureFixture) -> None:
    from sentinel.infra.runtime import check_access

    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    with caplog.at_level("WARNING", logger="sentinel.infra.runtime"):
        check_access(settings, timeout_s=1.0)
    assert "cannot reach Kafka at 127.0.0.1:1 (PLAINTEXT)" in caplog.text
    assert "the clients keep trying" in caplog.text
