"""PostgreSQL transactions (issue 15): a transaction that wrote nothing ends with COMMIT, so that
psycopg keeps the connection's prepared statements from one page to the next; one that wrote is
still rolled back, whatever wrote it."""
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import ProgrammingError

from core.db import COPY_FROM, db, insert_rows
from core.models import Department, utcnow
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL's prepared statements")


def _prepared_statements():
    return db.session.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()


def test_the_statements_of_a_page_that_only_reads_stay_prepared_for_the_next_pages(app, client, login_as):
    login_as(client, "s1", "sales")
    for _ in range(8):  # psycopg prepares a statement at its sixth execution on a connection
        assert client.get("/customers/").status_code == 200
    with app.app_context():
        prepared = _prepared_statements()
        db.session.rollback()
    # the list's own statements, prepared on the pool's one connection (a ROLLBACK after each
    # page made psycopg deallocate them all: none was ever prepared)
    assert any("FROM customers_customer" in statement for statement in prepared), prepared


def test_a_transaction_that_only_read_ends_idle_with_its_statements_kept(app):
    with app.app_context():
        for _ in range(6):
            db.session.execute(select(Department.id).where(Department.code == "none")).all()
            db.session.rollback()
        raw = db.session.connection().connection.dbapi_connection
        assert any("FROM core_department" in s for s in _prepared_statements())
        db.session.rollback()
        assert raw.info.transaction_status.name == "IDLE"


def test_a_rollback_still_undoes_what_the_orm_wrote(app):
    with app.app_context():
        db.session.add(Department(code="GONE", name="回滚部"))
        db.session.flush()
        db.session.rollback()
        assert db.session.scalar(select(Department.id).where(Department.code == "GONE")) is None


def test_a_rollback_still_undoes_rows_copied_in_on_the_raw_connection(app):
    with app.app_context():
        now = utcnow()
        insert_rows(Department.__table__, [{"code": f"COPIED{k}", "name": "复制部", "created_at": now}
                                           for k in range(COPY_FROM)])  # COPY, on psycopg's own cursor
        assert db.session.scalar(select(func.count()).where(Department.code.startswith("COPIED"))) == COPY_FROM
        db.session.rollback()
        assert db.session.scalar(select(func.count()).where(Department.code.startswith("COPIED"))) == 0


def test_a_rollback_after_a_failed_statement_leaves_the_session_usable(app):
    with app.app_context():
        db.session.execute(select(Department.id)).all()
        with pytest.raises(ProgrammingError):
            db.session.execute(text("SELECT no_such_column FROM core_department"))
        db.session.rollback()
        assert db.session.execute(text("SELECT 1")).scalar() == 1
