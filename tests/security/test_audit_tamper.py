"""AU-02 (security.md Part 5 I): every single-row change to the audit table is found by the
verifier that `kehu audit verify` runs — each column of each row edited, each row but the last
deleted, a forged row inserted at each position, each pair of rows swapped or renumbered.

tests/core/test_audit.py shows a few of these through the command line; this is the whole
matrix, run inside one database transaction per change (with the append-only triggers dropped
in it) and rolled back, so one chain serves every case.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from contextlib import contextmanager

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

from core import audit, crypto
from core.audit import AuditEntry
from core.db import db

T = AuditEntry.__table__
COLUMNS = [c.name for c in T.columns if c.name != "id"]
ROWS = 16  # more than setting up the app writes (an entry per module installed, a department)


@pytest.fixture
def chain(app):
    """ROWS entries as the platform writes them, returned as plain dicts in id order."""
    from core import services
    with app.app_context():
        services.create_department("test", "AT", "审计测试部")
        db.session.commit()
        while db.session.scalar(select(db.func.count()).select_from(AuditEntry)) < ROWS:
            audit.record("test.filler", note="x", n=1)
            db.session.commit()
        rows = [dict(r._mapping) for r in db.session.execute(select(T).order_by(T.c.id))]
    assert len(rows) == ROWS and rows[0]["id"] == 1
    return rows


@contextmanager
def tampered(app):
    """A connection whose transaction has the append-only triggers dropped; rolled back after."""
    with app.app_context():
        conn = db.engine.connect()
        trans = conn.begin()
        try:
            if conn.dialect.name == "postgresql":
                conn.execute(text("DROP TRIGGER IF EXISTS core_audit_entry_no_change ON core_audit_entry"))
            else:
                conn.execute(text("DROP TRIGGER IF EXISTS core_audit_entry_no_update"))
                conn.execute(text("DROP TRIGGER IF EXISTS core_audit_entry_no_delete"))
            yield conn
        finally:
            trans.rollback()
            conn.close()


def verify_on(conn):
    with Session(bind=conn) as session:
        return audit.verify(session)


def _changed(column, value):
    if column == "at":
        return value + datetime.timedelta(microseconds=1)
    if column in ("actor_id", "department_id"):
        return (value or 0) + 1
    if column in ("hash", "prev_hash"):
        return ("0" if value[0] != "0" else "1") + value[1:]
    if column == "details":
        return json.dumps({**json.loads(value), "note": "y"}, ensure_ascii=False, sort_keys=True)
    return value + "x"


def _renumber(conn, start, shift):
    """Move ids >= start by ``shift`` without tripping the primary key on the way."""
    conn.execute(update(T).where(T.c.id >= start).values(id=-T.c.id))
    conn.execute(update(T).where(T.c.id < 0).values(id=-T.c.id + shift))


def _forged(rows, position):
    """A plausible entry for ``position``: linked to its predecessor, hashed without the key."""
    prev = rows[position - 2]["hash"] if position > 1 else audit.GENESIS
    row = dict(rows[0], id=position, action="core.auth.signed_in", actor="ghost", prev_hash=prev, details="{}")
    row["hash"] = hashlib.sha256((prev + json.dumps(row, default=str, sort_keys=True)).encode()).hexdigest()
    return row


def test_the_untouched_chain_verifies(app, chain):
    with tampered(app) as conn:
        assert verify_on(conn) == (ROWS, None)


@pytest.mark.slow
def test_every_column_of_every_row_edited_is_found(app, chain):
    missed = []
    for row in chain:
        for column in COLUMNS:
            with tampered(app) as conn:
                conn.execute(update(T).where(T.c.id == row["id"]).values({column: _changed(column, row[column])}))
                _count, broken = verify_on(conn)
            # an edited hash shows at the next entry, whose link no longer matches
            if broken is None or broken[0] not in (row["id"], row["id"] + 1):
                missed.append((row["id"], column, broken))
    assert missed == []


def test_every_deleted_row_is_found_the_last_ones_through_the_checkpoint(app, chain):
    for row in chain[:-1]:
        with tampered(app) as conn:
            conn.execute(delete(T).where(T.c.id == row["id"]))
            _count, broken = verify_on(conn)
        assert broken is not None and broken[0] == row["id"] + 1, row["id"]
    for cut in (1, 3, ROWS):  # the newest entry, the three newest, all of them
        with tampered(app) as conn:
            conn.execute(delete(T).where(T.c.id > ROWS - cut))
            count, broken = verify_on(conn)
        assert count == ROWS - cut and broken is not None and broken[0] == ROWS - cut + 1, cut
        assert "newest entries were removed" in broken[1]


def test_a_trail_rebuilt_from_a_reset_sequence_is_found(app, chain):
    """Everything deleted and the same number of entries written again with a fresh chain: each
    entry is valid, but the head is not the one the checkpoint holds."""
    with tampered(app) as conn:
        conn.execute(delete(T))
        prev = audit.GENESIS
        for row in chain:
            entry = AuditEntry(**{**row, "details": '{"rewritten": true}', "prev_hash": prev, "hash": ""})
            entry.hash = crypto.audit_mac(prev, entry.canonical())  # the attacker holds the key
            conn.execute(insert(T).values({c: getattr(entry, c) for c in T.columns.keys()}))
            prev = entry.hash
        count, broken = verify_on(conn)
    assert count == ROWS and broken == (ROWS, "differs from the checkpoint: the trail was rebuilt")


def test_an_altered_checkpoint_file_is_reported(app, chain):
    path = app.config["AUDIT_CHECKPOINT_FILE"]
    doc = json.loads(open(path).read())
    doc["id"] = ROWS - 2  # moved back to hide a cut tail
    with open(path, "w") as out:
        json.dump(doc, out)
    with tampered(app) as conn:
        count, broken = verify_on(conn)
    assert broken is not None and broken[0] == 0 and "checkpoint" in broken[1] and "altered" in broken[1]


@pytest.mark.parametrize("renumbered", [True, False])
def test_a_forged_row_inserted_anywhere_is_found(app, chain, renumbered):
    for position in range(1, ROWS + 2):
        with tampered(app) as conn:
            if renumbered:  # slipped in, later ids moved up by one
                _renumber(conn, position, 1)
                conn.execute(insert(T).values(_forged(chain, position)))
                expected = position
            else:  # a replayed copy of a real entry appended after the last one
                conn.execute(insert(T).values(dict(chain[position - 2] if position > 1 else chain[0],
                                                   id=ROWS + 1, prev_hash=chain[-1]["hash"])))
                expected = ROWS + 1
            _count, broken = verify_on(conn)
        assert broken is not None and broken[0] == expected, (position, broken)


@pytest.mark.slow
def test_every_reordering_of_two_rows_is_found(app, chain):
    for i in range(ROWS):
        for j in range(i + 1, ROWS):
            a, b = chain[i], chain[j]
            for keep_links in (False, True):
                columns = [c for c in COLUMNS if not (keep_links and c in ("prev_hash", "hash"))]
                with tampered(app) as conn:
                    conn.execute(update(T).where(T.c.id == a["id"]).values({c: b[c] for c in columns}))
                    conn.execute(update(T).where(T.c.id == b["id"]).values({c: a[c] for c in columns}))
                    _count, broken = verify_on(conn)
                assert broken is not None and broken[0] == a["id"], (a["id"], b["id"], keep_links)


def test_the_command_reports_a_change_in_one_line(app, chain, runner):
    """The same verifier behind `kehu audit verify`, on a change committed behind the app's back."""
    with app.app_context():
        conn = db.engine.connect()
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("DROP TRIGGER IF EXISTS core_audit_entry_no_change ON core_audit_entry"))
            else:
                conn.execute(text("DROP TRIGGER IF EXISTS core_audit_entry_no_update"))
            conn.execute(update(T).where(T.c.id == 4).values(target_id="999"))
        conn.close()
    result = runner("audit", "verify")
    assert result.exit_code == 1
    assert result.output.strip() == "audit chain broken at entry 4: was altered (3 entries before it are intact)"
