"""SQLite transactions (issue 15): a page that only reads runs beside a writer instead of queueing
behind the database's write lock; what writes still takes the lock, and the audit chain stays
whole when requests write side by side."""
import sqlite3
import threading

import pytest
from sqlalchemy import select, text

from core import audit
from core.db import db, write_lock
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="SQLite's locking")


def _database(app):
    return app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")


def test_a_read_only_page_is_served_while_another_connection_holds_the_write_lock(app, client, login_as):
    login_as(client, "s1", "sales")
    other = sqlite3.connect(_database(app), isolation_level=None, timeout=1)
    try:
        other.execute("BEGIN IMMEDIATE")  # a writer in another process, mid-transaction
        response = client.get("/customers/")
        assert response.status_code == 200
        assert "database is locked" not in response.get_data(as_text=True)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_transaction_takes_the_write_lock_at_its_first_write_not_before(app):
    with app.app_context():
        db.session.execute(select(audit.AuditEntry.id).limit(1)).all()
        connection = db.session.connection()
        assert connection.info["kehu_sqlite_mode"] == "read"
        assert connection.connection.dbapi_connection.in_transaction
        write_lock()
        assert connection.info["kehu_sqlite_mode"] == "write"
        other = sqlite3.connect(_database(app), isolation_level=None, timeout=0.1)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # the lock is ours until the commit
        finally:
            other.close()
        db.session.rollback()
        db.session.execute(text("SELECT 1"))
        assert db.session.connection().info["kehu_sqlite_mode"] == "read"


def test_concurrent_audit_appends_keep_one_unbroken_chain(app):
    errors = []

    def append(i):
        try:
            with app.app_context():
                for _ in range(5):
                    db.session.execute(select(audit.AuditEntry.id).limit(1)).all()  # a read first
                    audit.record("core.audit.viewed", actor=f"thread{i}")
                    db.session.commit()
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with app.app_context():
        checked, broken = audit.verify()
        assert broken is None and checked >= 20


def test_the_write_ahead_log_shrinks_back_to_its_limit_once_a_large_write_is_checkpointed(app, monkeypatch):
    """An import's transaction grows the WAL to the size of what it wrote; once that is copied into
    the database and the next write starts the WAL over, the file is cut back to the limit."""
    import os

    from core import db as core_db
    monkeypatch.setattr(core_db, "WAL_SIZE_LIMIT", 256 * 1024)
    wal = _database(app) + "-wal"
    with app.app_context():
        db.engine.dispose()  # connections made from here on take the (patched) limit
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE wal_probe (b BLOB)")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
                                 "INSERT INTO wal_probe SELECT randomblob(2048) FROM n")
        grown = os.path.getsize(wal)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO wal_probe VALUES (x'00')")
        assert grown > 4 * 1024 * 1024
        assert os.path.getsize(wal) <= 256 * 1024
        with db.engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM wal_probe").scalar() == 2001
