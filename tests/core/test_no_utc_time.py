"""No page or PDF shows a UTC time: records stamped at a known UTC instant just before midnight
(2026-11-30 17:30 UTC = 2026-12-01 01:30 in Beijing) show the Beijing date and time on the
customer's pages, the archive page and the archive form PDF, never the UTC ones."""
from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import update

from core.db import db

STAMP = datetime(2026, 11, 30, 17, 30, tzinfo=UTC)
LOCAL, LOCAL_DAY = "2026-12-01 01:30", "2026-12-01"
UTC_TIME, UTC_DAY = "2026-11-30 17:30", "2026-11-30"


@pytest.fixture
def stamped(app, make_customer, enable_module, login_as):
    """A customer, its consent, status change, a voided transaction and an archive document, all
    stamped at STAMP."""
    from modules.archives import services as archives
    from modules.archives.models import Document
    from modules.customers import services
    from modules.customers.models import Consent, Customer, StatusChange, Transaction
    enable_module("D1", "archives")
    customer_id = make_customer("sales1", name="时区测试")
    client = login_as(app.test_client(), "sales1")
    with app.app_context():
        from core.models import User
        actor = db.session.query(User).filter_by(username="sales1").one()
        customer = db.session.get(Customer, customer_id)
        record = services.add_transaction(actor, customer, {"kind": "transaction", "occurred_on": LOCAL_DAY,
                                                            "amount": "100", "product": "测试"})
        services.void_transaction(actor, record, {"reason": "测试作废"})
        archives.create_document(actor, customer, {"doc_type": "basic_info", "title": "登记表",
                                                   "doc_date": date(2026, 12, 1), "keeper_id": actor.id,
                                                   "storage_location": "A柜"})
        db.session.commit()
        db.session.execute(update(Customer).where(Customer.id == customer_id)
                           .values(created_at=STAMP, status_changed_at=STAMP))
        for model, column in ((Consent, "recorded_at"), (StatusChange, "changed_at")):
            db.session.execute(update(model).where(model.customer_id == customer_id).values({column: STAMP}))
        db.session.execute(update(Transaction).where(Transaction.customer_id == customer_id)
                           .values(created_at=STAMP, voided_at=STAMP))
        db.session.execute(update(Document).where(Document.customer_id == customer_id).values(created_at=STAMP))
        db.session.commit()
    return customer_id, client


def test_pages_show_beijing_time_never_utc(stamped):
    customer_id, client = stamped
    for url in (f"/customers/{customer_id}", f"/customers/{customer_id}/transactions",
                f"/archives/{customer_id}"):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.get_data(as_text=True)
        assert LOCAL in page or LOCAL_DAY in page, url
        assert UTC_TIME not in page and UTC_DAY not in page and "UTC" not in page, url
    assert LOCAL in client.get(f"/customers/{customer_id}").get_data(as_text=True)  # the consent's time
    assert LOCAL in client.get(f"/customers/{customer_id}/transactions").get_data(as_text=True)  # voided at


@pytest.mark.pdf
def test_the_archive_form_pdf_shows_beijing_dates(stamped, tmp_path):
    customer_id, client = stamped
    response = client.get(f"/archives/{customer_id}/form.pdf")
    assert response.status_code == 200
    path = tmp_path / "form.pdf"
    path.write_bytes(response.data)
    text = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert LOCAL_DAY in text  # 建档日期 and the consent's date
    assert UTC_DAY not in text and UTC_TIME not in text and "UTC" not in text
