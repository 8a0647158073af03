"""The notes are stored encrypted under the customer's data key: never in plaintext in the raw
database, never in the audit trail."""
import json
from pathlib import Path

from sqlalchemy import LargeBinary, MetaData, String, Text, select

from core import crypto
from core.db import db
from tests.conftest import PG_URL

CANARY = "机密拜访内容甲乙丙丁𠮷"


def raw_hits(app, needle):
    """Where the needle's UTF-8 bytes are at rest: every SQLite file, or every text column on PostgreSQL."""
    data = needle.encode()
    hits = []
    if PG_URL:
        meta = MetaData()
        with app.app_context():
            meta.reflect(bind=db.engine)
            for table in meta.tables.values():
                columns = [c for c in table.columns if isinstance(c.type, (String, Text, LargeBinary))]
                for row in db.session.execute(select(*columns)) if columns else ():
                    for column, value in zip(columns, row, strict=True):
                        raw = value if isinstance(value, bytes) else str(value or "").encode()
                        if data in raw:
                            hits.append((table.name, column.name))
            db.session.rollback()
    else:
        path = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
            if file.exists() and data in file.read_bytes():
                hits.append(file.name)
    return hits


def test_notes_never_in_plaintext_at_rest_nor_in_the_audit_trail(vw):
    client = vw.client("sales1")
    response = client.post(f"/visits/customers/{vw.c1}/new", data={
        "visited_on": vw.today().isoformat(), "channel": "phone", "purpose": "回访", "notes": CANARY})
    assert response.status_code == 302
    visit_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert CANARY in client.get(f"/visits/{visit_id}").get_data(as_text=True)  # readable in the app
    assert raw_hits(vw.app, "回访")  # the scan sees plain columns, so its silence below means something
    assert raw_hits(vw.app, CANARY) == []
    with vw.app.app_context():
        from modules.visits.models import Visit
        stored = db.session.get(Visit, visit_id).notes_ct
        assert stored.startswith(crypto.suite().prefix) and CANARY not in stored
    edited = client.post(f"/visits/{visit_id}/edit", data={
        "visited_on": vw.today().isoformat(), "channel": "phone", "purpose": "回访", "notes": CANARY + "（补充）",
        "version": "1"})
    assert edited.status_code == 302
    assert client.post(f"/visits/{visit_id}/delete").status_code == 302
    entries = vw.audit("visits.")
    assert [e.action for e in entries] == ["visits.visit.created", "visits.visit.updated", "visits.visit.deleted"]
    for entry in vw.audit():
        text = json.dumps([entry.target_type, entry.target_id, entry.details], ensure_ascii=False)
        assert CANARY[:4] not in text and "补充" not in text
    assert raw_hits(vw.app, CANARY) == []


def test_notes_are_bound_to_their_row(vw):
    """A ciphertext copied to another visit does not decrypt there (AAD: table, field, row uid)."""
    import pytest

    from core.api import crypto
    first = vw.visit(vw.c1, notes=CANARY)
    second = vw.visit(vw.c1, notes="别的内容")
    with vw.app.app_context():
        from modules.visits.models import Visit
        a, b = db.session.get(Visit, first), db.session.get(Visit, second)
        b.notes_ct = a.notes_ct
        with pytest.raises(crypto.DecryptionError):
            b.notes  # noqa: B018
        db.session.rollback()
