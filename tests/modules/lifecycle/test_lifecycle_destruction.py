"""Retention and destruction: `kehu retention run` and the 数据生命周期 page destroy the customers
past their period irrecoverably — the raw database, the uploads and a backup taken before the
destruction and restored afterwards hold no readable trace, the blind index finds nothing — under
a legal hold nothing happens, and every run has a certificate PDF without personal data."""
from __future__ import annotations

import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core import audit, crypto
from core.db import db
from core.models import User, utcnow
from tests.conftest import PG_URL
from tests.core.test_backup import fresh, invoke  # noqa: F401 - fresh is a fixture

NAME, PHONE, ID_NUMBER = "司马销毁", "13700001111", "11010519491231002X"
CONTACT = "诸葛联系"


@pytest.fixture
def lost_customer(app, make_customer):
    """A lost customer whose last activity was five years ago, with a contact and an attachment;
    returns (id, number, attachment path)."""
    from modules.customers import Customer
    cid = make_customer(name=NAME, phone=PHONE, id_number=ID_NUMBER)
    with app.test_request_context():
        import modules.archives as archives
        customer = db.session.get(Customer, cid)
        owner = db.session.get(User, customer.owner_id)
        from modules.customers.models import Contact
        with db.session.no_autoflush:
            contact = Contact()
            customer.contacts.append(contact)
            contact.name = CONTACT
        doc = archives.create_document(owner, customer, {
            "doc_type": "contract", "title": "合同", "doc_date": date(2020, 1, 2), "keeper_id": owner.id})
        _att, path = archives.add_attachment(owner, doc, "合同.pdf", b"%PDF-1.4\nsecret-body\n%%EOF\n")
        db.session.commit()
        long_ago = utcnow() - timedelta(days=5 * 366)
        db.session.execute(update(Customer).where(Customer.id == cid).values(
            status="lost", status_changed_at=long_ago, updated_at=long_ago))
        db.session.commit()
        return cid, customer.number, path


def digests(app, cid):
    from modules.customers import Customer
    with app.app_context():
        row = db.session.get(Customer, cid)
        return {v for k, v in vars(row).items() if k.endswith(("_bidx", "_ct")) and v}


def search(app, value, field="phone"):
    from modules.customers import Customer
    from modules.customers.fields import FIELDS
    with app.app_context():
        column = getattr(Customer, f"{field}_bidx")
        return db.session.scalars(select(Customer.id).where(
            column.in_(crypto.blind_index_candidates(FIELDS[field].search_domain, value)))).all()


def raw_files(app):
    if PG_URL:
        return b""
    db_file = Path(app.instance_path) / "kehu.db"
    return b"".join(p.read_bytes() for p in (db_file, Path(f"{db_file}-wal")) if p.exists())


def pdf_text(data, tmp_path):
    pdf = tmp_path / "c.pdf"
    pdf.write_bytes(data)
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def test_retention_run_destroys_irrecoverably_even_in_an_older_backup(app, lost_customer, fresh, tmp_path):  # noqa: F811
    from modules.customers import Customer
    cid, number, attachment = lost_customer
    before = digests(app, cid)
    assert search(app, "+86" + PHONE) == [cid] and attachment.exists()
    old_backup = tmp_path / "before.tar.gz"
    assert invoke(app, "backup", "-q", str(old_backup)).exit_code == 0

    dry = invoke(app, "retention", "run", "--dry-run")
    assert dry.exit_code == 0 and number in dry.output and "nothing destroyed" in dry.output
    with app.app_context():
        assert db.session.get(Customer, cid).name == NAME

    cert = tmp_path / "cert.pdf"
    result = invoke(app, "retention", "run", "-q", "--certificate", str(cert))
    assert result.exit_code == 0, result.output
    assert "1 customers destroyed" in result.output
    text = pdf_text(cert.read_bytes(), tmp_path)
    assert number in text and "lost:3y" in text and NAME not in text and PHONE not in text

    with app.app_context():
        row = db.session.get(Customer, cid)
        assert row.subject_key_id is None and row.number == number
        assert not [k for k, v in vars(row).items() if k.endswith(("_ct", "_bidx")) and v]
        assert row.contacts == []
        assert row.name is None and row.phone is None
        assert audit.count("lifecycle.customer.destroyed") == 1
        entries = db.session.scalars(select(audit.AuditEntry.details)).all()
        assert not any(NAME in e or PHONE in e or ID_NUMBER in e for e in entries)
    assert search(app, "+86" + PHONE) == [] and search(app, NAME, "name") == []
    assert not attachment.exists()
    raw = raw_files(app)
    for value in before | {NAME.encode(), CONTACT.encode()}:
        value = value.encode() if isinstance(value, str) else value
        assert value not in raw
    uploads = b"".join(p.read_bytes() for p in Path(app.config["UPLOAD_FOLDER"]).rglob("*") if p.is_file())
    assert b"secret-body" not in uploads
    assert invoke(app, "audit", "verify").exit_code == 0

    # the backup taken before the destruction, restored with the ledger beside the key file
    target = fresh(with_ledger=True)
    result = invoke(target, "restore", "-q", str(old_backup))
    assert result.exit_code == 0, result.output
    assert invoke(target, "audit", "verify").exit_code == 0
    with target.app_context():
        row = db.session.get(Customer, cid)
        assert row.subject_key_id is None
        assert not [k for k, v in vars(row).items() if k.endswith(("_ct", "_bidx")) and v]
        assert row.name is None and row.phone is None
        assert audit.count("lifecycle.replayed") == 1
    assert search(target, "+86" + PHONE) == []
    restored_uploads = [p for p in Path(target.config["UPLOAD_FOLDER"]).rglob("*") if p.is_file()]
    assert restored_uploads == []
    raw = raw_files(target)
    for value in before:
        assert value.encode() not in raw


def test_a_legal_hold_blocks_destruction_with_its_reason(app, lost_customer, client, login_as, enable_module):
    from modules.customers import Customer
    cid, number, attachment = lost_customer
    enable_module("D1", "lifecycle")
    login_as(client, "sec1", role="security")
    response = client.post("/lifecycle/holds", data={"number": number, "reason": "诉讼保全 (2026)京01民初1号"})
    assert response.status_code == 302
    page = client.get("/lifecycle/").get_data(as_text=True)
    assert number in page and "诉讼保全" in page and "保全中" in page

    result = invoke(app, "retention", "run", "-q")
    assert result.exit_code == 0, result.output
    assert "held: 诉讼保全" in result.output and "0 customers destroyed, 1 kept" in result.output
    with app.app_context():
        assert db.session.get(Customer, cid).name == NAME
        assert audit.count("lifecycle.customer.held") == 1
        from modules.lifecycle import services
        customer = db.session.get(Customer, cid)
        with pytest.raises(services.LifecycleError, match="legal hold"):
            services.destroy_customer("test", customer, "manual")
        db.session.rollback()
        from modules.lifecycle.models import Hold
        hold_id = db.session.scalar(select(Hold.id))
    assert attachment.exists()

    assert client.post(f"/lifecycle/holds/{hold_id}/release").status_code == 302
    assert client.post("/lifecycle/run").status_code == 302
    with app.app_context():
        assert db.session.get(Customer, cid).subject_key_id is None
        from modules.lifecycle.models import Run
        run_id = db.session.scalar(select(Run.id).order_by(Run.id.desc()))
    response = client.get(f"/lifecycle/runs/{run_id}/certificate.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"


def test_retention_periods_are_set_by_the_security_officer(app, lost_customer, client, login_as, enable_module):
    enable_module("D1", "lifecycle")
    login_as(client, "sales9", role="sales")
    assert client.get("/lifecycle/policies").status_code == 403
    client.post("/logout")
    login_as(client, "sec2", role="security")
    page = client.get("/lifecycle/policies").get_data(as_text=True)
    assert "流失客户" in page
    assert client.post("/lifecycle/policies", data={"prospect": "2", "active": "", "lost": "10"}).status_code == 302
    _cid, number, _ = lost_customer
    page = client.get("/lifecycle/").get_data(as_text=True)
    assert number not in page  # five years is not ten
    with app.app_context():
        assert audit.count("lifecycle.policy.changed") == 1
