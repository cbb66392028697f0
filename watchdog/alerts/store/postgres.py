"""The state store on PostgreSQL (``state.url: postgresql://...``), through psycopg 3: the
backend that several replicas can share (``leader.py`` elects the one that acts).

The queries are ``sql.SqlStore``'s and the schema ``schema.py``'s, the same as SQLite's:
``?`` placeholders become ``%s`` here, and each schema statement goes through
``schema.for_postgres``. Migrations run at start (and with ``dialnexa-watchdog migrate``)
in one transaction under an advisory lock, so replicas starting together apply each once.

Connection faults: the password never leaves ``conninfo`` (libpq's own errors do not carry
it; it is registered with the redactor by the composition root anyway). Opening fails with a
one-line ``StateError`` naming ``state.url`` (unreachable, wrong password, no such
database, a schema newer than this binary). Later, a lost connection fails the statement
that found it (callers already keep going on a store error) and the next one reconnects;
a transaction is never carried over to a new connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .base import Cursor, Fenced, OutboxEntry, StateError
from .schema import BASE_SCHEMA, MIGRATIONS, SCHEMA_VERSION, for_postgres, statements
from .sql import DUE_SQL, SqlStore

if TYPE_CHECKING:
    import psycopg

    from .leader import LeaderLock

log = logging.getLogger("watchdog.store")

# pg_advisory_xact_lock key held while migrating ("dnxw" + 1)
MIGRATE_LOCK = 0x646E7877_00000001
APPLICATION = "dialnexa-watchdog"
EPOCH_KEY = "leader_epoch"  # meta: the fencing epoch (leader.py increments it)
FENCE_IDLE = 60  # seconds a claim may stay idle in its transaction (a Slack call's worth)


@lru_cache(maxsize=512)
def placeholders(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def describe(url: str) -> str:
    """``host:port/db`` of a URL, for messages (never the user's password: there is none)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or '/'}"


def connect_error(url: str, exc: Exception) -> StateError:
    """One line for the operator from libpq's error on connect."""
    text = " ".join(str(exc).split())
    where = describe(url)
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        hint = (
            "wrong or missing password (state.password_file, WATCHDOG_STATE__PASSWORD, "
            "PGPASSWORD or ~/.pgpass)"
        )
    elif "does not exist" in low:
        hint = "no such database or role; create it first"
    elif "timeout" in low or "refused" in low or "could not" in low or "translate" in low:
        hint = "server unreachable"
    else:
        hint = "cannot connect"
    return StateError(f"state.url: {hint}: {where}: {text}")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a core dependency; a broken install
        raise StateError(
            "state.url: PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'"
        ) from None
    return psycopg


class _Bound:
    """One connection in one transaction, with ``?`` placeholders."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self._raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self._raw.execute(placeholders(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        rows = list(parameters)
        cur = self._raw.cursor()
        if rows:
            cur.executemany(placeholders(sql), rows)
        return cur


class PgConn:
    """A psycopg connection in autocommit mode that reconnects on the next statement after
    it broke; ``sqlite3.Connection``'s ``execute``/``executemany`` with ``?`` placeholders."""

    def __init__(self, conninfo: str, url: str, setup: Sequence[str] = ()) -> None:
        """``setup``: statements run on every new session (e.g. a timeout)."""
        self._conninfo = conninfo
        self._url = url
        self._setup = tuple(setup)
        self._raw: psycopg.Connection[Any] | None = None
        self.reconnects = 0

    def raw(self) -> psycopg.Connection[Any]:
        raw = self._raw
        if raw is not None and not raw.closed and not raw.broken:
            return raw
        if raw is not None:
            self.reconnects += 1
            log.warning("state store: reconnecting to PostgreSQL at %s", describe(self._url))
            raw.close()
        self._raw = open_connection(self._conninfo, self._url)
        for sql in self._setup:
            self._raw.execute(sql)
        return self._raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return _Bound(self.raw()).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        return _Bound(self.raw()).executemany(sql, parameters)

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None


def open_connection(conninfo: str, url: str) -> psycopg.Connection[Any]:
    pg = _psycopg()
    try:
        conn: psycopg.Connection[Any] = pg.connect(conninfo, autocommit=True)
    except pg.Error as exc:
        raise connect_error(url, exc) from None
    return conn


def make_conninfo(url: str, password: str | None, connect_timeout: float) -> str:
    pg = _psycopg()
    extra: dict[str, Any] = {
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": APPLICATION,
        # a lost server or network fails a statement within seconds instead of hanging
        # (the leader's session check relies on it)
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 15000,
    }
    if password:
        extra["password"] = password
    try:
        return str(pg.conninfo.make_conninfo(url, **extra))
    except pg.ProgrammingError as exc:
        raise StateError(f"state.url: not a PostgreSQL URL: {exc}") from None


def probe(url: str, password: str | None, connect_timeout: float) -> str | None:
    """What would stop the store opening (``check-config``, ``run``'s preflight): one line,
    or None. Connects and reads the schema version; writes nothing."""
    try:
        conn = open_connection(make_conninfo(url, password, connect_timeout), url)
    except StateError as exc:
        return str(exc)
    pg = _psycopg()
    try:
        with conn:
            exists = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return None  # an empty database: run creates the schema
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except pg.Error as exc:
        return f"state.url: {describe(url)}: {' '.join(str(exc).split())}"
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        return (
            f"state.url: {describe(url)} was written by a newer dialnexa-watchdog (schema "
            f"{int(row[0])}, this one knows {SCHEMA_VERSION}); upgrade this replica"
        )
    return None


def migrate(conn: psycopg.Connection[Any], url: str) -> int:
    """Bring the database's schema up to ``SCHEMA_VERSION``; returns the version found (1
    for an empty database). StateError when it is newer than this binary."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        for sql in statements(BASE_SCHEMA):
            conn.execute(for_postgres(sql))
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        found = 1 if row is None else int(row[0])
        if found > SCHEMA_VERSION:
            raise StateError(
                f"state.url: {describe(url)} was written by a newer dialnexa-watchdog "
                f"(schema {found}, this one knows {SCHEMA_VERSION}); upgrade this replica"
            )
        for v in range(found + 1, SCHEMA_VERSION + 1):
            for sql in MIGRATIONS[v]:
                conn.execute(for_postgres(sql))
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
    return found


def check_epoch(raw: psycopg.Connection[Any], epoch: int | None) -> None:
    """In the caller's transaction: ``Fenced`` unless ``epoch`` is the current one (read
    ``FOR SHARE``, so that a new leader's increment waits for this transaction)."""
    row = raw.execute("SELECT value FROM meta WHERE key = %s FOR SHARE", (EPOCH_KEY,)).fetchone()
    current = None if row is None else int(row[0])
    if epoch is None or current != epoch:
        raise Fenced(f"leader epoch is {current}, this replica's {epoch}")


class PgStore(SqlStore):
    """PostgreSQL-backed alert state and history. Thread-safe: one connection guarded by a
    lock; every write is one transaction."""

    _conn: PgConn

    def __init__(
        self,
        url: str,
        password: str | None = None,
        *,
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._conninfo = make_conninfo(url, password, connect_timeout)
        self._conn = PgConn(self._conninfo, url)
        # claims (``claim``) run on their own session, so that delivering inside one does
        # not hold up the rest of the store; PostgreSQL ends a claim left open by a frozen
        # process, so that it cannot hold off a new leader for longer than this
        self._fence = PgConn(
            self._conninfo, url, (f"SET idle_in_transaction_session_timeout = '{FENCE_IDLE}s'",)
        )
        self._fence_lock = threading.Lock()
        self.leader: LeaderLock | None = None  # set by leader.open_exclusive; closed with it
        # a leading replica's epoch (``app.build``): its writes are fenced by it
        self.epoch: Callable[[], int | None] | None = None
        self.fenced = False  # a write or claim found another replica's epoch
        pg = _psycopg()
        try:
            self.schema_found = migrate(self._conn.raw(), url)
        except pg.Error as exc:
            self._conn.close()
            raise StateError(f"state.url: migrating {describe(url)} failed: {exc}") from None
        except BaseException:
            self._conn.close()
            raise
        if self.schema_found < SCHEMA_VERSION:
            log.info(
                "state store: %s migrated from schema %d to %d",
                describe(url),
                self.schema_found,
                SCHEMA_VERSION,
            )

    @property
    def where(self) -> str:
        return describe(self.url)

    @property
    def conninfo(self) -> str:
        """For another session on the same database (the leader lock)."""
        return self._conninfo

    @contextmanager
    def claim(self, now: float, limit: int, epoch: int | None) -> Iterator[list[OutboxEntry]]:
        """With an ``epoch``: in one transaction on the fence session, read the current
        epoch with ``FOR SHARE`` (``Fenced`` unless it is ``epoch``) and the due notices;
        the transaction stays open while they are delivered, so a new leader's increment of
        the epoch waits until this replica's deliveries are over."""
        if epoch is None:
            with super().claim(now, limit, epoch) as entries:
                yield entries
            return
        with self._fence_lock:
            raw = self._fence.raw()
            with raw.transaction():
                try:
                    check_epoch(raw, epoch)
                except Fenced:
                    self.fenced = True
                    raise
                rows = raw.execute(placeholders(DUE_SQL), (now, limit)).fetchall()
                yield self._entries(rows, now)

    def close(self) -> None:
        with self._fence_lock:
            self._fence.close()
        with self._lock:
            if self.leader is not None:
                self.leader.release()
                self.leader = None
            self._conn.close()

    @contextmanager
    def _tx(self, fenced: bool = True) -> Iterator[_Bound]:
        """One transaction. With ``epoch`` set (a leading replica) it first reads the
        current epoch ``FOR SHARE`` and raises ``Fenced`` unless it is this replica's: a
        replica that lost the lead cannot write states, incidents, notices or history
        after a new leader took over (whose increment waits for this transaction)."""
        with self._lock:
            raw = self._conn.raw()
            with raw.transaction():
                if fenced and self.epoch is not None:
                    try:
                        check_epoch(raw, self.epoch())
                    except Fenced:
                        self.fenced = True
                        raise
                yield _Bound(raw)

    def _mark_tx(self) -> Any:
        return self._tx(fenced=False)
