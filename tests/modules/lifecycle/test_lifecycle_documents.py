"""Storage periods per archive document type: a document past its type's period is deleted with
its attachments by the retention run (dry run lists it), other types and held customers keep theirs."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from core.db import db
from core.models import User
from tests.core.test_backup import invoke


def _documents(app, make_customer, owner="sales1"):
    """An active customer with an invoice of 2020 (with a file) and a contract of 2020."""
    from modules.customers import Customer
    cid = make_customer(owner, name="张三")
    with app.test_request_context():
        import modules.archives as archives
        customer = db.session.get(Customer, cid)
        actor = db.session.get(User, customer.owner_id)
        invoice = archives.create_document(actor, customer, {
            "doc_type": "invoice", "title": "发票", "doc_date": date(2020, 3, 1), "keeper_id": actor.id,
            "amount": "100.00"})
        _att, path = archives.add_attachment(actor, invoice, "发票.pdf", b"%PDF-1.4\ninvoice\n%%EOF\n")
        contract = archives.create_document(actor, customer, {
            "doc_type": "contract", "title": "合同", "doc_date": date(2020, 3, 1), "keeper_id": actor.id})
        db.session.commit()
        return cid, invoice.id, contract.id, invoice.number, path


def test_an_invoice_past_its_period_goes_and_the_contract_stays(app, client, login_as, make_customer, enable_module):
    from modules.archives.models import Document
    cid, invoice_id, contract_id, invoice_number, path = _documents(app, make_customer)
    enable_module("D1", "lifecycle")
    login_as(client, "sec1", role="security")
    page = client.get("/lifecycle/policies").get_data(as_text=True)
    assert "按类型的档案文件存储期限" in page and 'name="doc_invoice"' in page
    refused = client.post("/lifecycle/policies", data={"doc_invoice": "很久"})
    assert refused.status_code == 400 and "0 到 100" in refused.get_data(as_text=True)
    assert client.post("/lifecycle/policies", data={"doc_invoice": "5"}).status_code == 302

    dry = invoke(app, "retention", "run", "--dry-run")
    assert dry.exit_code == 0 and f"{invoice_number}\tdocument invoice of 2020-03-01\tdue" in dry.output
    assert "1 archive documents past their period; nothing destroyed" in dry.output
    assert path.exists()

    result = invoke(app, "retention", "run", "-q")
    assert result.exit_code == 0 and "1 archive documents deleted" in result.output
    with app.app_context():
        assert db.session.get(Document, invoice_id) is None and db.session.get(Document, contract_id) is not None
        from core.audit import AuditEntry
        deleted = db.session.execute(select(AuditEntry).where(AuditEntry.action == "archives.document.deleted")).scalars().all()
        assert [e.details_dict["number"] for e in deleted] == [invoice_number]
    assert not path.exists()


def test_a_held_customer_keeps_its_documents(app, client, login_as, make_customer, enable_module):
    from modules.archives.models import Document
    cid, invoice_id, _contract_id, _number, path = _documents(app, make_customer)
    enable_module("D1", "lifecycle")
    login_as(client, "sec1", role="security")
    assert client.post("/lifecycle/policies", data={"doc_invoice": "1"}).status_code == 302
    from modules.customers import Customer
    with app.app_context():
        number = db.session.get(Customer, cid).number
    assert client.post("/lifecycle/holds", data={"number": number, "reason": "审计调取"}).status_code == 302
    dry = invoke(app, "retention", "run", "--dry-run")
    assert "0 archive documents past their period" in dry.output
    assert invoke(app, "retention", "run", "-q").exit_code == 0
    with app.app_context():
        assert db.session.get(Document, invoice_id) is not None
    assert path.exists()


def test_the_weekly_review_counts_archive_requests_and_grade_changes(app, client, make_customer, make_user,
                                                                     enable_module):
    from datetime import UTC, datetime, timedelta

    from core.models import Department
    from modules.lifecycle import review
    for name in ("archives", "grading", "lifecycle"):
        enable_module("D1", name)
    cid, _invoice, _contract, _number, _path = _documents(app, make_customer)
    outsider = make_user("outsider", "sales", "D2")
    from modules.archives.models import AccessRequest
    from modules.grading.models import History
    with app.app_context():
        db.session.add(AccessRequest(customer_id=cid, requester_id=outsider, kind="view", purpose="核对",
                                     until=date.today() + timedelta(days=3)))
        db.session.add(History(customer_id=cid, from_grade="ordinary", to_grade="important", source="override",
                               at=datetime.now(UTC)))
        db.session.commit()
        dept = db.session.execute(select(Department).where(Department.code == "D1")).scalar_one()
        today = datetime.now(UTC).date()
        monday = today - timedelta(days=today.weekday())
        [report] = review.report(monday, monday + timedelta(days=6), departments=[dept])
    assert report.value("lifecycle.archive_requests_pending") == 1
    assert report.value("grading.grade_changes") == 1
