"""Data-subject requests (PIPL arts. 44-47): recorded with a deadline of 15 working days, a copy
request's PDF holding the customer's data from every installed module, an approved deletion going
through the destruction path (and a legal hold stopping it), and no request outside the remit."""
from __future__ import annotations

import re
import subprocess
from datetime import date

from sqlalchemy import select

from core import audit
from core.db import db
from core.models import User

NAME, PHONE = "上官副本", "13600002222"


def pdf_text(data, tmp_path):
    pdf = tmp_path / "copy.pdf"
    pdf.write_bytes(data)
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def test_deadline_is_fifteen_working_days():
    from modules.lifecycle.requests import add_working_days
    assert add_working_days(date(2026, 11, 30), 15) == date(2026, 12, 21)  # Monday to Monday, 3 weeks
    assert add_working_days(date(2026, 12, 5), 1) == date(2026, 12, 7)  # Saturday: next Monday


def record(client, number, kind):
    response = client.post("/lifecycle/requests/", data={"number": number, "kind": kind, "channel": "柜台"})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    return int(re.search(r"/requests/(\d+)", response.headers["Location"]).group(1))


def test_copy_request_pdf_holds_the_data_of_every_installed_module(app, client, login_as, make_customer,
                                                                     enable_module, tmp_path):
    from modules.customers import Customer
    cid = make_customer(name=NAME, phone=PHONE)
    with app.test_request_context():
        import modules.archives as archives
        customer = db.session.get(Customer, cid)
        owner = db.session.get(User, customer.owner_id)
        doc = archives.create_document(owner, customer, {
            "doc_type": "contract", "title": "购销合同", "doc_date": date(2026, 1, 5), "keeper_id": owner.id})
        archives.add_attachment(owner, doc, "签字页.pdf", b"%PDF-1.4\nx\n%%EOF\n")
        number, doc_number = customer.number, doc.number
        db.session.commit()
    enable_module("D1", "lifecycle")
    enable_module("D1", "archives")
    login_as(client, "sales1")
    request_id = record(client, number, "copy")
    page = client.get(f"/lifecycle/requests/{request_id}").get_data(as_text=True)
    assert number in page and "处理中" in page
    response = client.get(f"/lifecycle/requests/{request_id}/copy.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.data, tmp_path)
    for expected in (NAME, "136 0000 2222", number, doc_number, "购销合同", "签字页.pdf", "客户档案"):  # the phone as people write it
        assert expected in text, expected
    with app.app_context():
        assert audit.count("lifecycle.request.created") == 1
        assert audit.count("lifecycle.request.copy_printed") == 1
        details = " ".join(db.session.scalars(select(audit.AuditEntry.details)).all())
        assert NAME not in details and PHONE not in details
    # closed with an outcome
    assert client.post(f"/lifecycle/requests/{request_id}/close",
                       data={"status": "done", "outcome": "已当面交付"}).status_code == 302
    assert "已办结" in client.get(f"/lifecycle/requests/{request_id}").get_data(as_text=True)


def test_an_approved_deletion_destroys_the_customer_unless_held(app, client, login_as, make_customer,
                                                               enable_module):
    from modules.customers import Customer
    from modules.lifecycle import services
    cid = make_customer(name=NAME, phone=PHONE)
    with app.app_context():
        number = db.session.get(Customer, cid).number
    enable_module("D1", "lifecycle")
    login_as(client, "head1", role="head")
    request_id = record(client, number, "delete")
    with app.test_request_context():
        services.set_hold("test", db.session.get(Customer, cid), "审计保全")
        db.session.commit()
    client.post(f"/lifecycle/requests/{request_id}/approve")
    with app.app_context():
        assert db.session.get(Customer, cid).name == NAME
        hold = services.active_hold(cid)
        services.release_hold("test", hold)
        db.session.commit()
    assert client.post(f"/lifecycle/requests/{request_id}/approve").status_code == 302
    with app.app_context():
        row = db.session.get(Customer, cid)
        assert row.subject_key_id is None and row.name is None
        assert services.is_destroyed(cid)
        from modules.lifecycle.models import SubjectRequest, Tombstone
        assert db.session.get(SubjectRequest, request_id).status == "done"
        assert db.session.scalar(select(Tombstone.policy)) == db.session.scalar(
            select("request:" + SubjectRequest.number))


def test_requests_outside_the_remit_answer_404(app, client, login_as, make_customer, enable_module, make_user):
    from modules.customers import Customer
    cid = make_customer(name=NAME)
    with app.app_context():
        number = db.session.get(Customer, cid).number
    enable_module("D1", "lifecycle")
    enable_module("D2", "lifecycle")
    login_as(client, "sales1")
    request_id = record(client, number, "copy")
    client.post("/logout")
    other = app.test_client()
    login_as(other, "sales_d2", dept="D2")
    assert other.get(f"/lifecycle/requests/{request_id}").status_code == 404
    assert other.get(f"/lifecycle/requests/{request_id}/copy.pdf").status_code == 404
    response = other.post("/lifecycle/requests/", data={"number": number, "kind": "copy"})
    assert response.status_code == 400
