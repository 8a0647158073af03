"""The audit trail: a hash chain that names the first entry an attacker with file access touched,
an append-only table, clean details, and the viewer for the security officer."""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from core import audit, crypto
from core.audit import MAX_DETAIL, AuditEntry
from core.db import db
from tests.conftest import PG_URL


@pytest.fixture(params=sorted(crypto.SUITES))
def crypto_suite(request):
    """The audit chain under both cipher suites (HMAC-SHA256 and HMAC-SM3)."""
    return request.param


COLUMNS = ("at", "actor_id", "actor", "role", "department_id", "action", "result", "target_type",
           "target_id", "details", "address", "request_id", "prev_hash", "hash")


@pytest.fixture
def trail(app):
    """Twelve entries, written the way the platform writes them."""
    from core import services
    with app.app_context():
        for i in range(6):
            services.create_department("test", f"T{i}", f"测试部{i}")
            db.session.commit()
        while db.session.execute(select(db.func.count()).select_from(AuditEntry)).scalar() < 12:
            audit.record("test.filler", note="x")
            db.session.commit()
        return db.session.execute(select(db.func.max(AuditEntry.id))).scalar()


class RawDatabase:
    """SQL run behind the application's back, as someone with access to the database file (or the
    database server) would: the append-only trigger is dropped first."""

    def __init__(self, app):
        self.app = app

    def _sqlite(self):
        return sqlite3.connect(self.app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))

    def row(self, entry_id):
        sql = f"SELECT {', '.join(COLUMNS)} FROM core_audit_entry WHERE id = ?"
        if PG_URL:
            engine = create_engine(PG_URL)
            with engine.connect() as conn:
                values = conn.execute(text(_named(sql)), {"p0": entry_id}).one()
            engine.dispose()
        else:
            conn = self._sqlite()
            values = conn.execute(sql, (entry_id,)).fetchone()
            conn.close()
        return dict(zip(COLUMNS, values, strict=True))

    def run(self, *statements):
        if PG_URL:
            engine = create_engine(PG_URL)
            with engine.begin() as conn:
                conn.execute(text("DROP TRIGGER IF EXISTS core_audit_entry_no_change ON core_audit_entry"))
                for sql, params in statements:
                    conn.execute(text(_named(sql)), {f"p{i}": v for i, v in enumerate(params)})
            engine.dispose()
            return
        conn = self._sqlite()
        try:
            conn.execute("DROP TRIGGER IF EXISTS core_audit_entry_no_update")
            conn.execute("DROP TRIGGER IF EXISTS core_audit_entry_no_delete")
            for sql, params in statements:
                conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()


@pytest.fixture
def raw(app):
    return RawDatabase(app)


def _named(sql):
    """sqlite3's ? placeholders as SQLAlchemy's :p0, :p1 …"""
    out, n = [], 0
    for ch in sql:
        if ch == "?":
            out.append(f":p{n}")
            n += 1
        else:
            out.append(ch)
    return "".join(out)


def broken_at(runner, entry_id, reason):
    result = runner("audit", "verify")
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [line for line in result.output.strip().splitlines()
                                                  if line.startswith("audit chain broken")]
    assert f"audit chain broken at entry {entry_id}: {reason}" in result.output
    return result


def test_the_chain_verifies(app, runner, trail):
    result = runner("audit", "verify")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == f"audit chain intact: {trail} entries"
    assert re.fullmatch(rf"checkpoint: entry {trail} hash [0-9a-f]{{16}} written \S+ UTC", lines[1])
    with app.app_context():
        first = db.session.get(AuditEntry, 1)
        assert first.prev_hash == audit.GENESIS
        assert db.session.get(AuditEntry, 2).prev_hash == first.hash


def entry_mac(suite, key, entry):
    """The entry's MAC computed here, independently: HMAC-SHA256 or HMAC-SM3 under the audit key."""
    import hmac as std_hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.hmac import HMAC
    message = (entry.prev_hash + "\n" + entry.canonical()).encode()
    if suite == "aes":
        return std_hmac.new(key, message, hashlib.sha256).hexdigest()
    mac = HMAC(key, hashes.SM3())
    mac.update(message)
    return mac.finalize().hex()


def test_each_entry_is_signed_with_the_suites_mac(app, trail, crypto_suite):
    with app.app_context():
        key = crypto.keyring().audit_key
        for entry in db.session.scalars(select(AuditEntry)):
            assert entry.hash == entry_mac(crypto_suite, key, entry)


def test_the_chain_stays_verifiable_across_a_change_of_suite(app, runner, trail, raw, crypto_suite):
    other = "sm" if crypto_suite == "aes" else "aes"
    result = runner("keys", "rotate", "--crypto", other)
    assert result.exit_code == 0, result.output
    with app.app_context():
        audit.record("test.filler", note="after")
        db.session.commit()
        ring = crypto.keyring()
        assert ring.audit_macs == [(1, crypto_suite), (trail + 1, other)]
        entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert entries[trail].action == "core.keys.rotated"  # the first entry under the new MAC
        assert entries[trail].details_dict["suite"] == other
        for entry in entries:
            assert entry.hash == entry_mac(crypto_suite if entry.id <= trail else other, ring.audit_key, entry)
        last = entries[-1].id
    result = runner("audit", "verify")
    assert result.exit_code == 0, result.output
    assert f"audit chain intact: {last} entries" in result.output
    # tampering on either side of the switch is still found
    raw.run(("UPDATE core_audit_entry SET details = ? WHERE id = ?", ('{"note":"y"}', trail + 2)))
    broken_at(runner, trail + 2, "was altered")
    raw.run(("UPDATE core_audit_entry SET details = ? WHERE id = ?", ('{"code":"T9"}', 3)))
    broken_at(runner, 3, "was altered")


def test_an_edited_field_is_found(runner, trail, raw):
    raw.run(("UPDATE core_audit_entry SET details = ? WHERE id = ?", ('{"code":"T9"}', 5)))
    broken_at(runner, 5, "was altered")


@pytest.mark.parametrize("column,value", [("actor", "someone-else"), ("result", "denied"), ("target_id", "99"),
                                          ("at", "2020-01-01 00:00:00.000000")])
def test_any_edited_column_is_found(runner, trail, raw, column, value):
    raw.run((f"UPDATE core_audit_entry SET {column} = ? WHERE id = ?", (value, 3)))
    broken_at(runner, 3, "was altered")


def test_a_deleted_middle_row_is_found(runner, trail, raw):
    raw.run(("DELETE FROM core_audit_entry WHERE id = ?", (6,)))
    broken_at(runner, 7, "entries 6..6 are missing")


def test_a_deleted_last_row_is_found_through_the_checkpoint(runner, trail, raw):
    """A cut tail leaves a valid prefix; the checkpoint kept outside the database tells it."""
    raw.run(("DELETE FROM core_audit_entry WHERE id = ?", (trail,)))
    broken_at(runner, trail, f"the trail ends at entry {trail - 1} but the checkpoint names entry {trail}")


def test_the_checkpoint_follows_the_newest_entry_only_and_is_kept_private(app, tmp_path):
    """Written after each commit that appends: never moved back by an older commit of another
    process, an altered (even lengthened) file replaced by the truth, mode 0600, no other file."""
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    path = folder / "audit.checkpoint"
    with app.app_context():
        audit._write_checkpoint(path, 5, "a" * 64)
        audit._write_checkpoint(path, 4, "b" * 64)  # committed later, appended earlier
        assert (audit.read_checkpoint(path)["id"], audit.read_checkpoint(path)["hash"]) == (5, "a" * 64)
        path.write_text(json.dumps({"id": 10**6, "hash": "f" * 64, "mac": "0" * 64}) + " " * 900 + "x")
        with pytest.raises(ValueError, match="altered"):
            audit.read_checkpoint(path)
        audit._write_checkpoint(path, 6, "c" * 64)  # rewritten in place, the longer tail cut off
        assert audit.read_checkpoint(path)["id"] == 6 and path.stat().st_size == audit.CHECKPOINT_BYTES
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["audit.checkpoint", "audit.lock"]


def test_swapped_rows_are_found(app, runner, trail, raw):
    a, b = raw.row(4), raw.row(5)
    sets = ", ".join(f"{c} = ?" for c in COLUMNS)
    raw.run((f"UPDATE core_audit_entry SET {sets} WHERE id = ?", (*_sql(b), 4)),
        (f"UPDATE core_audit_entry SET {sets} WHERE id = ?", (*_sql(a), 5)))
    broken_at(runner, 4, "does not follow the previous entry")


def test_renumbered_swapped_rows_are_found(app, runner, trail, raw):
    """Swapping the contents but keeping each row's chain links still breaks the MAC over the id."""
    a, b = raw.row(4), raw.row(5)
    keep = [c for c in COLUMNS if c not in ("prev_hash", "hash")]
    sets = ", ".join(f"{c} = ?" for c in keep)
    raw.run((f"UPDATE core_audit_entry SET {sets} WHERE id = ?", (*_sql(b, keep), 4)),
        (f"UPDATE core_audit_entry SET {sets} WHERE id = ?", (*_sql(a, keep), 5)))
    broken_at(runner, 4, "was altered")


def _sql(values, columns=COLUMNS):
    return [values[c] for c in columns]


def test_a_forged_row_is_found(app, runner, trail, raw):
    last = raw.row(trail)
    forged = dict(last, action="core.auth.signed_in", actor="ghost", details="{}", prev_hash=last["hash"])
    # without the audit key an attacker can only guess at the MAC, e.g. a plain SHA-256
    forged["hash"] = hashlib.sha256((forged["prev_hash"] + json.dumps(forged, default=str)).encode()).hexdigest()
    columns = ("id", *COLUMNS)
    raw.run((f"INSERT INTO core_audit_entry ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
         (trail + 1, *_sql(forged))))
    broken_at(runner, trail + 1, "was altered")


def test_a_forged_row_with_a_gap_is_found(app, runner, trail, raw):
    last = raw.row(trail)
    columns = ("id", *COLUMNS)
    raw.run((f"INSERT INTO core_audit_entry ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
         (trail + 5, *_sql(dict(last, prev_hash=last["hash"])))))
    broken_at(runner, trail + 5, f"entries {trail + 1}..{trail + 4} are missing")


def test_the_table_refuses_update_and_delete_from_the_app(app, trail):
    with app.app_context():
        for sql in ("UPDATE core_audit_entry SET actor = 'x' WHERE id = 1", "DELETE FROM core_audit_entry WHERE id = 1",
                    "DELETE FROM core_audit_entry"):
            with pytest.raises(DBAPIError, match="append-only"):
                db.session.execute(text(sql))
            db.session.rollback()
        entry = db.session.get(AuditEntry, 2)
        entry.result = "ok-edited"
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        assert db.session.execute(select(db.func.count()).select_from(AuditEntry)).scalar() == trail


def test_details_hold_no_raw_control_characters_and_long_values_are_cut(app, runner):
    nasty = "a\x00b\nc\r\x1b[31mred\x7f\u2028\u202egnp.exe"
    with app.app_context():
        entry = audit.record("test.details", note=nasty, items=["ok", "\x07bell"], long="长" * 2000,
                             count=3, flag=True, nothing=None)
        db.session.commit()
        entry_id = entry.id
    with app.app_context():
        entry = db.session.get(AuditEntry, entry_id)
        details = entry.details_dict
    raw_text = entry.details
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029\u202e" for c in raw_text)
    for value in (details["note"], *details["items"]):
        assert not any(not c.isprintable() for c in value), value
    assert details["note"].startswith("a\\u0000b\\u000ac")
    assert "\\u202e" in details["note"]
    assert details["items"] == ["ok", "\\u0007bell"]
    assert len(details["long"]) < 2000 and details["long"].startswith("长" * MAX_DETAIL)
    assert details["long"].endswith("[truncated]")
    assert (details["count"], details["flag"], details["nothing"]) == (3, True, None)
    assert runner("audit", "verify").exit_code == 0


def test_a_failed_audit_write_aborts_the_business_change(app, monkeypatch):
    from core import services
    from core.models import Department

    def broken(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    with app.app_context():
        monkeypatch.setattr(audit, "insert_rows", broken)
        with pytest.raises(RuntimeError):
            services.create_department("test", "LOST", "不该存在")
            db.session.commit()
        db.session.rollback()
        assert db.session.execute(select(Department).where(Department.code == "LOST")).first() is None


# --- the viewer ------------------------------------------------------------------------------------

def test_the_audit_page_filters_for_the_security_officer(app, client, login_as, trail):
    login_as(client, "officer", role="security", dept=None)
    page = client.get("/audit/").get_data(as_text=True)
    assert "<code>core.department.created</code>" in page and "<code>core.auth.signed_in</code>" in page
    assert "创建部门" in page and "登录" in page  # each action with its declared label

    page = client.get("/audit/", query_string={"action": "core.department"}).get_data(as_text=True)
    assert page.count("<code>core.department.created</code>") == 6
    assert "<code>core.auth.signed_in</code>" not in page

    page = client.get("/audit/", query_string={"actor": "officer"}).get_data(as_text=True)
    assert "<code>core.auth.signed_in</code>" in page and "<code>core.department.created</code>" not in page

    page = client.get("/audit/", query_string={"result": "denied"}).get_data(as_text=True)
    assert 'colspan="8"' in page  # no entries

    page = client.get("/audit/", query_string={"since": "2000-01-01", "until": "2000-01-02"}).get_data(as_text=True)
    assert 'colspan="8"' in page
    assert client.get("/audit/", query_string={"since": "not-a-date"}).status_code == 200

    viewed = db_entries(app, "core.audit.viewed")
    assert len(viewed) == 6 and viewed[1].details_dict["filters"]
    assert all(e.actor == "officer" for e in viewed)


@pytest.mark.parametrize("config_overrides", [{"PAGE_SIZE": 5}])
def test_the_audit_page_pages_by_id(app, client, login_as, trail):
    login_as(client, "officer", role="security", dept=None)
    first = client.get("/audit/").get_data(as_text=True)
    assert first.count("<tr><td>") == 5
    assert "before=" in first
    import re
    link = re.search(r'href="(/audit/\?[^"]*before=\d+[^"]*)"', first).group(1).replace("&amp;", "&")
    second = client.get(link).get_data(as_text=True)
    ids_first = [int(i) for i in re.findall(r"<tr><td>(\d+)</td>", first)]
    ids_second = [int(i) for i in re.findall(r"<tr><td>(\d+)</td>", second)]
    assert ids_first == sorted(ids_first, reverse=True)
    assert max(ids_second) < min(ids_first)


def test_details_are_escaped_on_the_audit_page(app, client, login_as):
    with app.app_context():
        audit.record("test.xss", note="<script>alert(1)</script>")
        db.session.commit()
    login_as(client, "officer", role="security", dept=None)
    page = client.get("/audit/", query_string={"action": "test.xss"}).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("role", ["sales", "head", "admin"])
def test_the_audit_page_is_refused_to_other_roles(app, client, login_as, role):
    login_as(client, "someone", role=role, dept=None if role == "admin" else "D1")
    assert client.get("/audit/").status_code == 403
    denied = db_entries(app, "core.access.denied")[-1]
    assert (denied.actor, denied.details_dict["permission"]) == ("someone", "core.audit.view")
    assert db_entries(app, "core.audit.viewed") == []


def db_entries(app, action):
    with app.app_context():
        return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                  .order_by(AuditEntry.id)).scalars().all()


@pytest.mark.skipif(bool(PG_URL), reason="reads SQLite's query plan (PostgreSQL has the same index, tests/migrations)")
def test_an_accounts_entries_of_one_action_are_counted_through_one_index(app):
    """Rate limits count an account's entries of one action since a time; with the actor_id index
    alone each count read every entry of the account (a head who imported 1M customers: 2M)."""
    from datetime import timedelta

    from core.models import utcnow
    from tests.conftest import captured_statements, sqlite_plan
    actor = type("Actor", (), {"id": 5, "username": "head1", "role": "head", "department_id": None})()
    with app.app_context():
        audit.record_many("core.auth.signed_in", [{"target_id": i} for i in range(30)], actor=actor)
        db.session.commit()
    with captured_statements(app) as statements, app.app_context():
        assert audit.count("core.auth.signed_in", actor=actor, since=utcnow() - timedelta(hours=1)) == 30
    sql, params = statements[-1]
    with app.app_context():
        plan = sqlite_plan(sql, params)
    assert "ix_core_audit_entry_actor_id_action_at (actor_id=? AND action=? AND at>?)" in plan, plan
