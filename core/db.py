"""The one SQLAlchemy handle, with a naming convention so migration constraint names are stable."""
import atexit
import weakref
from contextlib import contextmanager

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))


_READ_STATEMENTS = ("SELECT", "WITH", "PRAGMA", "EXPLAIN")


def _sqlite_mode(conn):
    return conn.info.get("kehu_sqlite_mode")


def _promote(conn):
    """Turn the connection's deferred (read) transaction into a write transaction that holds
    SQLite's write lock: end the read snapshot and BEGIN IMMEDIATE, which waits for the lock under
    the busy timeout. Upgrading the read transaction in place could meet "database is locked" at
    once (SQLite gives a reader no busy wait for the write lock, and refuses a stale snapshot), so
    the write starts on a fresh snapshot; whatever must be read and then written consistently is
    read after this (``write_lock``, SELECT … FOR UPDATE, and every INSERT/UPDATE/DELETE call it
    first). Nothing was written before this point, so ending the read transaction loses nothing."""
    if conn.info.get("kehu_sqlite_mode") != "read":
        return
    raw = conn.connection.dbapi_connection
    if raw.in_transaction:
        raw.execute("COMMIT")
    raw.execute("BEGIN IMMEDIATE")
    conn.info["kehu_sqlite_mode"] = "write"


def write_lock(session=None):
    """Before reading what this transaction will then write (a chain's head, a counter), take the
    database's write lock: on SQLite the transaction becomes a write transaction (BEGIN IMMEDIATE)
    from here on; on PostgreSQL nothing (row locks and advisory locks do that work there)."""
    session = session or db.session
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        _promote(conn)


def configure_sqlite(engine):
    """SQLite as the embedded default: WAL, foreign keys, secure deletion. Transactions begin
    DEFERRED, so readers run side by side on their WAL snapshot without the write lock (a page
    that only reads never queues behind a writer, nor makes one wait); the first statement that
    writes (INSERT, UPDATE, DELETE, DDL, SAVEPOINT), a SELECT … FOR UPDATE, or ``write_lock`` turns
    the transaction into a write transaction with BEGIN IMMEDIATE first (see ``_promote``), so a
    writer waits for the lock under the busy timeout and never meets "database is locked"."""
    from sqlalchemy import event

    if engine.dialect.name != "sqlite":
        return
    atexit.register(_close_pooled, weakref.ref(engine))

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA secure_delete = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")
        conn.info["kehu_sqlite_mode"] = "read"

    @event.listens_for(engine, "before_cursor_execute")
    def _before_execute(conn, cursor, statement, parameters, context, executemany):
        if conn.info.get("kehu_sqlite_mode") != "read":
            return
        head = statement.lstrip()[:8].upper()
        if head.startswith(_READ_STATEMENTS):
            compiled = getattr(context, "compiled", None)
            stmt = getattr(compiled, "statement", None)
            if getattr(stmt, "_for_update_arg", None) is None:
                return
        elif head.startswith("BEGIN"):
            return
        _promote(conn)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _end(conn):
        conn.info.pop("kehu_sqlite_mode", None)


def configure_postgresql(engine):
    """PostgreSQL: a transaction that wrote nothing ends with COMMIT instead of ROLLBACK (the same
    outcome), because psycopg forgets the connection's prepared statements at every ROLLBACK (a
    rollback may have dropped what they refer to) and every page that only reads ends with one: no
    statement was ever executed often enough on one connection between two rollbacks to be
    prepared, so PostgreSQL parsed and planned each statement of each page anew (2.7 ms of its CPU
    for a list page, 1.2 ms with the statements prepared). "Wrote nothing" is the server's answer,
    not a guess from the statements: the transaction has no transaction id until it writes."""
    from sqlalchemy import event

    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return
    import psycopg
    from psycopg.pq import TransactionStatus

    @event.listens_for(engine, "rollback")
    def _rollback(conn):
        if conn.closed or conn.invalidated:
            return
        raw = conn.connection.dbapi_connection
        if raw is None or raw.info.transaction_status != TransactionStatus.INTRANS:
            return  # idle, or failed: a real ROLLBACK (psycopg sends none when idle)
        try:
            if raw.execute(_PG_WROTE_NOTHING).fetchone()[0]:
                raw.commit()  # then SQLAlchemy's rollback finds the connection idle and sends nothing
        except psycopg.Error:
            pass  # the ROLLBACK that follows deals with a broken connection as it always has


# a transaction has an id once it has written anything (PostgreSQL 13 and newer)
_PG_WROTE_NOTHING = "SELECT pg_current_xact_id_if_assigned() IS NULL"


WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the WAL file keeps once reset (an import's grows to GBs)


def _close_pooled(engine_ref):
    """At the process's exit, close the engine's pooled SQLite connections: the last one to close
    checkpoints the WAL and removes it. A process that exits with them open (every `kehu` command
    did) leaves the WAL behind, as large as its largest transaction (771 MB after importing
    300,000 customers in files of 50,000); the next process to open the database reads all of it
    to rebuild its index and copies it into the database again (`kehu departments list` after
    such an import: 2.6–3.3 s, 1.1 s with no WAL left)."""
    engine = engine_ref()
    if engine is not None:
        engine.dispose()


def reserve_ids(table, count, session=None):
    """``count`` fresh primary keys of ``table`` (a Table with an integer ``id``) for rows the caller
    then inserts in one go (insert_rows): on PostgreSQL taken from the column's sequence, on SQLite
    the next ones after the table's AUTOINCREMENT counter, under the write lock (which this takes),
    so they are never handed out twice nor reuse a deleted row's id."""
    from sqlalchemy import text
    session = session or db.session
    if count <= 0:
        return []
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return list(session.execute(text(
            "SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": count}).scalars())
    write_lock(session)
    from sqlalchemy import func, select
    counter = session.execute(text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table.name}).scalar()
    highest = session.execute(select(func.max(table.c.id))).scalar()
    base = max(counter or 0, highest or 0)
    return list(range(base + 1, base + 1 + count))


# PostgreSQL: a batch of this many rows or more goes through COPY, which bypasses SQLAlchemy's
# statement events; fewer (a page's audit entry) as INSERTs, as fast for so few and seen by them
COPY_FROM = 20
_SQLITE_MAX_VARIABLES = 32766  # SQLite ≥ 3.32's default limit on ? parameters in one statement


def insert_rows(table, rows, session=None):
    """Insert ``rows`` (dicts with the same keys, the ids already taken with ``reserve_ids``) into
    ``table`` in the current transaction, as fast as the database takes them: each column's bind
    processor (DateTime, Boolean, …) is looked up once instead of once per row and value, and the
    rows go to the driver as tuples: on SQLite as multi-row INSERT … VALUES statements (a statement
    per row would also run each trigger once per statement: the FTS5 index of company names was
    opened again for every customer), on PostgreSQL with COPY from ``COPY_FROM`` rows on. For an
    import's batch and the audit trail's entries (core.audit); other single rows go through the ORM."""
    session = session or db.session
    if not rows:
        return
    names = list(rows[0])
    # the ORM's insert would fill these in; here they must be given (a default silently left out
    # of a batch is a bug in the caller)
    missing = [c.name for c in table.c if c.default is not None and c.name not in names]
    if missing:
        raise ValueError(f"insert_rows into {table.name}: give {', '.join(missing)} (they have defaults)")
    conn = session.connection()
    dialect = conn.dialect
    processors = [(i, p) for i, name in enumerate(names)
                  if (p := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None]
    last = [(None, None)] * len(processors)  # a batch's rows share their timestamp: processed once
    values = []
    for row in rows:
        if len(row) != len(names):
            raise ValueError(f"insert_rows: every row of {table.name} needs the same columns")
        item = [row[name] for name in names]
        for k, (i, process) in enumerate(processors):
            value = item[i]
            if value is None or value is not last[k][0]:  # the same (immutable) object: the same result
                last[k] = (value, process(value))
            item[i] = last[k][1]
        values.append(tuple(item))
    # only the table's own column names, quoted by the dialect; every value is a bound parameter
    columns = ", ".join(dialect.identifier_preparer.quote(table.c[name].name) for name in names)
    head = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({columns}) VALUES "  # noqa: S608
    if dialect.name == "sqlite":
        one = "(" + ", ".join("?" * len(names)) + ")"
        per_statement = max(1, min(500, _SQLITE_MAX_VARIABLES // len(names)))
        for start in range(0, len(values), per_statement):
            part = values[start:start + per_statement]
            conn.exec_driver_sql(head + ", ".join([one] * len(part)), tuple(v for item in part for v in item))
    elif len(values) < COPY_FROM:
        conn.exec_driver_sql(head + "(" + ", ".join(["%s"] * len(names)) + ")", values)
    else:
        # COPY: the rows stream to the server in one go, where an executemany, even pipelined,
        # had the server parse and plan an INSERT per row (an import's status changes: 74 µs a row)
        raw = conn.connection.dbapi_connection  # the session's connection, in its transaction
        with raw.cursor() as cursor, cursor.copy(
                f"COPY {dialect.identifier_preparer.format_table(table)} ({columns}) FROM STDIN") as copy:
            for item in values:
                copy.write_row(item)


def in_values(column, values, session=None):
    """``column IN values`` for a long list (an import's look-ups, hundreds at a time): on
    PostgreSQL ``column = ANY(array)``, one parameter that goes to the server as it is, where an IN
    list is a parameter per value that SQLAlchemy renders into the statement and psycopg splits
    out again on every execution (an import's duplicate check: most of its time)."""
    from sqlalchemy import any_, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY
    if (session or db.session).get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


BULK_CACHE_MB = 256


@contextmanager
def bulk_cache(session=None, megabytes=None):
    """On SQLite, a page cache of up to ``megabytes`` for the session's connection while a bulk job
    (an import) runs, then its size before: each customer written updates a dozen indexes with
    random keys (blind indexes), and once the register outgrows SQLite's default 2 MB most of
    their pages are read again for every row (inserting into a 200,000-customer register: 62 µs a
    row with 2 MB, 42 with 256 MB). The cache fills only as pages are read. Nothing on PostgreSQL,
    whose shared buffers are the server's."""
    session = session or db.session
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection  # restored on this connection, whatever the session does meanwhile
    before = int(raw.execute("PRAGMA cache_size").fetchone()[0])
    raw.execute(f"PRAGMA cache_size = {-int(megabytes or BULK_CACHE_MB) * 1024}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size = {before}")
