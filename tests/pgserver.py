"""A throwaway PostgreSQL cluster for the tests: ``initdb`` + ``pg_ctl`` from Debian's
``postgresql`` package (``.ci/run`` installs it), run as an unprivileged user (``nobody``
when the tests run as root, as in CI, since PostgreSQL refuses to run as root), listening on
127.0.0.1 on a free port, password authentication (scram-sha-256) for TCP.

``PgServer.database()`` makes a fresh database per test, so tests never see each other's
rows. Skipped (failed in CI) when the binaries are absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

from support import missing

SUPERUSER = "postgres"
PASSWORD = "pg-test-secret-6f1c"  # the tests check it never shows in logs or output


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for path in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            missing("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
        assert initdb is not None and pg_ctl is not None
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="watchdog-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            self._prefix = ["runuser", "-u", "nobody", "--"]
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "nobody", "nogroup")
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD)
        if self._prefix:
            shutil.chown(pwfile, "nobody", "nogroup")
        self._run(
            initdb,
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        )
        pwfile.unlink()
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            pg_ctl, "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts, "-w", "start"
        )

    def _run(self, *cmd: str) -> None:
        r = subprocess.run(
            [*self._prefix, *cmd], capture_output=True, text=True, timeout=120, cwd=self.root
        )
        if r.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {r.stdout}{r.stderr}")

    def url(self, db: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{db}"

    def admin(self) -> object:
        import psycopg

        return psycopg.connect(self.url(), password=PASSWORD, autocommit=True)

    def database(self) -> str:
        """A new empty database; its URL (no password in it)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), password=PASSWORD, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
