"""The label store's URI: SQLite by default or by path, PostgreSQL by URI; a bad one is
rejected when the settings are built, with a message that holds no credential."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from sentinel.infra.database import StoreLocation, as_location, parse_store_uri
from sentinel.settings import LabelStoreSettings, Settings

PW = "S3cret-store-pw"


def test_sqlite_is_the_default_in_the_data_dir(tmp_path: Path) -> None:
    location = Settings(data_dir=tmp_path).label_store_location
    assert location == StoreLocation.sqlite(tmp_path / "retrainer" / "labelstore.sqlite")
    assert location.backend == "sqlite" and str(location) == f"sqlite:///{location.path}"


@pytest.mark.parametrize(("uri", "path"), [
    ("sqlite:////var/lib/sentinel/store.db", "/var/lib/sentinel/store.db"),
    ("sqlite:///relative/store.db", "relative/store.db"),
    ("/var/lib/sentinel/store.db", "/var/lib/sentinel/store.db"),
    ("relative/store.db", "relative/store.db"),
    ("sqlite:////a%20dir/store.db", "/a dir/store.db"),
])
def test_a_path_or_sqlite_uri_selects_a_sqlite_file(uri: str, path: str) -> None:
    location = parse_store_uri(uri)
    assert location.backend == "sqlite" and location.path == Path(path)
    assert as_location(Path(path)) == location


@pytest.mark.parametrize("uri", [
    f"postgresql://sentinel:{PW}@db.internal:5432/sentinel",
    f"postgres://sentinel:{PW}@db.internal/sentinel?sslmode=require",
    f"postgresql://sentinel@db-a:5432,db-b:5432/sentinel?password={PW}",  # libpq failover
])
def test_a_postgresql_uri_selects_postgresql_and_prints_without_its_secret(uri: str) -> None:
    location = parse_store_uri(uri)
    assert location.backend == "postgresql" and location.target == uri
    for shown in (str(location), repr(location), location.redacted, f"{location}"):
        assert PW not in shown and "db" in shown
    assert PW in location.secrets()
    with pytest.raises(ValueError, match="not a SQLite file"):
        location.path  # noqa: B018


@pytest.mark.parametrize(("uri", "says"), [
    (f"mysql://u:{PW}@db/sentinel", "unsupported label store URI mysql://***@db/sentinel"),
    (f"postgresql://u:{PW}@db:port/sentinel", "the port is not a number"),
    ("sqlite://", "names no file"),
    ("sqlite:///:memory:", "names no file"),
    ("sqlite://host/store.db", "names no file"),
    ("  ", "empty label store URI"),
])
def test_a_bad_uri_is_one_message_without_the_password(uri: str, says: str) -> None:
    with pytest.raises(ValueError) as bad:
        parse_store_uri(uri)
    assert says in str(bad.value) and PW not in str(bad.value)
    with pytest.raises(ValidationError) as invalid:  # at settings time, input hidden
        Settings(label_store=LabelStoreSettings(uri=SecretStr(uri)))
    assert PW not in str(invalid.value)
    with pytest.raises(ValidationError) as invalid:
        LabelStoreSettings(uri=uri)  # type: ignore[arg-type]
    assert PW not in str(invalid.value)


def test_the_uri_comes_from_the_environment_and_goes_to_a_child(
        monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"postgresql://sentinel:{PW}@db.internal:5432/sentinel"
    monkeypatch.setenv("SENTINEL_LABEL_STORE__URI", uri)
    settings = Settings()
    assert settings.label_store_location.target == uri
    assert settings.as_env()["SENTINEL_LABEL_STORE__URI"] == uri
    assert PW not in repr(settings) and PW not in str(settings.label_store)
