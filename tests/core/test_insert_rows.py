"""core.db.insert_rows, the batch insert of an import: rows read back exactly as the ORM writes
them, more rows than one SQLite statement holds, and a batch missing a defaulted column refused."""
import datetime

import pytest
from sqlalchemy import func, select, text

from core import audit
from core.crypto import SubjectKey
from core.db import COPY_FROM, db, insert_rows, reserve_ids
from tests.conftest import PG_URL

WHEN = datetime.datetime(2026, 12, 1, 8, 30, 0, tzinfo=datetime.UTC)  # no microseconds: a driver's own format drops them


def test_rows_are_stored_as_the_orm_stores_them(app):
    later = WHEN + datetime.timedelta(seconds=1)
    with app.app_context():
        db.session.add(SubjectKey(kek_id="1", wrapped=b"\x00orm", created_at=WHEN))
        db.session.flush()
        ids = reserve_ids(SubjectKey.__table__, 3)
        insert_rows(SubjectKey.__table__, [{"id": i, "kek_id": "1", "wrapped": bytes([0, n]), "created_at": at}
                                           for n, (i, at) in enumerate(zip(ids, (WHEN, WHEN, later), strict=True))])
        db.session.commit()
        stored = db.session.execute(text("SELECT id, created_at FROM core_subject_key ORDER BY id")).all()
        assert [row.id for row in stored][-3:] == ids
        assert len({str(row.created_at) for row in stored[:3]}) == 1  # the same text (or value) as the ORM's
        keys = db.session.scalars(select(SubjectKey).where(SubjectKey.id.in_(ids)).order_by(SubjectKey.id)).all()
        assert [k.wrapped for k in keys] == [b"\x00\x00", b"\x00\x01", b"\x00\x02"]
        assert [k.created_at for k in keys] == [WHEN, WHEN, later]
        assert db.session.scalar(select(func.count()).select_from(SubjectKey).where(SubjectKey.created_at == WHEN)) == 3


def test_more_rows_than_one_statement_holds_are_all_written_in_order(app):
    with app.app_context():
        # 15 columns an entry: 500 a statement on SQLite, so three statements
        audit.record_many("test.filler", [{"target_type": "t", "target_id": n, "n": n} for n in range(1201)],
                          actor="tester")
        db.session.commit()
        entries = db.session.scalars(select(audit.AuditEntry).where(
            audit.AuditEntry.action == "test.filler").order_by(audit.AuditEntry.id)).all()
        assert [e.target_id for e in entries] == [str(n) for n in range(1201)]
        assert entries[-1].id - entries[0].id == 1200
        checked, broken = audit.verify()
        assert broken is None and checked >= 1201


def test_text_that_looks_like_the_drivers_own_markup_is_stored_as_it_is(app):
    # PostgreSQL takes the rows through COPY, whose text format has its own NULL (\\N) and
    # backslash escapes: a value spelling them must come back unchanged, never as NULL
    odd = ["\\N", "c\\d", "e\\\\N", "", "客户 \\ 编号", "\\.", "x|y,z\"q'"]
    odd *= COPY_FROM // len(odd) + 1  # enough rows for COPY
    with app.app_context():
        audit.record_many("test.filler", [{"target_type": "t", "target_id": value, "note": value} for value in odd],
                          actor="tester")
        db.session.commit()
        entries = db.session.scalars(select(audit.AuditEntry).where(
            audit.AuditEntry.action == "test.filler").order_by(audit.AuditEntry.id)).all()
        assert [e.target_id for e in entries] == odd
        assert [e.details_dict["note"] for e in entries] == odd
        checked, broken = audit.verify()
        assert broken is None and checked >= len(odd)


def test_a_batch_without_a_defaulted_column_or_with_uneven_rows_is_refused(app):
    with app.app_context():
        ids = reserve_ids(SubjectKey.__table__, 2)
        with pytest.raises(ValueError, match="created_at"):
            insert_rows(SubjectKey.__table__, [{"id": ids[0], "kek_id": "1", "wrapped": b"x"}])
        with pytest.raises(ValueError, match="same columns"):
            insert_rows(SubjectKey.__table__, [
                {"id": ids[0], "kek_id": "1", "wrapped": b"x", "created_at": WHEN},
                {"id": ids[1], "kek_id": "1", "wrapped": b"x", "created_at": WHEN, "extra": 1}])
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(SubjectKey)) == 0


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's page cache (PostgreSQL's buffers are the server's)")
def test_a_bulk_job_has_a_large_sqlite_page_cache_until_it_ends(app):
    from core.db import bulk_cache
    with app.app_context():
        size = text("PRAGMA cache_size")
        before = db.session.scalar(size)
        with bulk_cache(megabytes=64):
            assert db.session.scalar(size) == -64 * 1024
        assert db.session.scalar(size) == before
        with pytest.raises(RuntimeError), bulk_cache(megabytes=64):
            raise RuntimeError("the job failed")
        assert db.session.scalar(size) == before
