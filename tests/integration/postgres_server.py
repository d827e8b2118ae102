"""A private PostgreSQL server for the tests: Debian's ``postgresql`` binaries (initdb,
pg_ctl), a cluster in a temporary directory, on a free loopback port, with a password user.

initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` system user
(Debian's package creates it; created here if missing) and the binaries run through
``runuser``. Durability is off (fsync, synchronous commit): the cluster lives for one test
session. Each test gets a database of its own (:meth:`PostgresServer.create_database`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

SYSTEM_USER = "postgres"
_BINARIES = ("initdb", "pg_ctl", "postgres")


def postgres_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: on PATH, or Debian's newest
    ``/usr/lib/postgresql/<version>/bin``; None when they are not installed."""
    found = [shutil.which(name) for name in _BINARIES]
    if all(found):
        return Path(str(found[0])).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for bindir in reversed(versions):
        if all((bindir / name).is_file() for name in _BINARIES):
            return bindir
    return None


class PostgresServer:
    """One PostgreSQL cluster, started by :meth:`start` and removed by :meth:`stop`."""

    def __init__(self, bindir: Path, port: int, user: str = "sentinel") -> None:
        self.bindir, self.port, self.user = bindir, port, user
        self.password = f"pw-{uuid.uuid4().hex[:16]}"
        self.home = Path(tempfile.mkdtemp(prefix="sentinel-pg-"))
        self.data = self.home / "data"
        self.log = self.home / "server.log"
        self._as_owner: list[str] = []

    def uri(self, database: str = "postgres", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        pwfile = self.home / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            owner = _system_user()
            for path in (self.home, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self._as_owner = ["runuser", "-u", SYSTEM_USER, "--"]
        self._run("initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = " ".join([
            f"-p {self.port}", "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.home}", "-c fsync=off",
            "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=200",
            "-c shared_buffers=32MB"])
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", options, "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      check=False)
        shutil.rmtree(self.home, ignore_errors=True)

    def create_database(self, icu: bool = False) -> str:
        """A new database's name; ``icu``: collated by ICU's root locale, which orders text
        unlike its bytes (the cluster's own is C)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        collation = " LOCALE_PROVIDER icu ICU_LOCALE 'und' TEMPLATE template0" if icu else ""
        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{collation}')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _run(self, binary: str, *args: str, check: bool = True) -> None:
        done = subprocess.run([*self._as_owner, str(self.bindir / binary), *args],
                              cwd=self.home, capture_output=True, text=True, timeout=120,
                              check=False)
        if check and done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{binary} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}\n{log}")


def _system_user() -> pwd.struct_passwd:
    """The ``postgres`` system user that owns the cluster when the tests run as root."""
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                        "--shell", "/usr/sbin/nologin", SYSTEM_USER], check=True,
                       capture_output=True)
        return pwd.getpwnam(SYSTEM_USER)
