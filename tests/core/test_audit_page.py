"""The audit trail as the security officer reads it: actions in words, Beijing time, customers by
number, filters without internal codes, a formula-safe CSV export, and the chain check button."""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import select

from core import audit
from core.audit import AuditEntry
from core.db import db


def officer(app, login_as):
    client = app.test_client()
    login_as(client, "officer", role="security", dept=None)
    return client


def customer_number(app, customer_id):
    from modules.customers.models import Customer
    with app.app_context():
        return db.session.get(Customer, customer_id).number


def test_entries_read_in_words_and_beijing_time(app, client, login_as):
    login_as(client, "sales1", role="sales", dept="D1")
    sec = officer(app, login_as)
    page = sec.get("/audit/").get_data(as_text=True)
    with app.app_context():
        signed_in = db.session.execute(select(AuditEntry).where(AuditEntry.action == "core.auth.signed_in")
                                       .order_by(AuditEntry.id)).scalars().first()
    beijing = (signed_in.at + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    row = re.search(rf"<tr><td>{signed_in.id}</td>(.*?)</tr>", page, re.S).group(1)
    assert beijing in row and "登录" in row and "销售" in row
    assert "UTC" not in page
    assert re.search(r'target_type=core_user&amp;target_id=\d+"><bdi>sales1</bdi></a>', page)  # accounts by name


def test_a_customer_is_found_by_number_and_shown_by_number(app, client, login_as, make_customer):
    first, second = make_customer("sales1", name="张三"), make_customer("sales1", name="李四")
    login_as(client, "sales1", role="sales", dept="D1")
    client.get(f"/customers/{first}")
    client.get(f"/customers/{second}")
    number = customer_number(app, first)
    sec = officer(app, login_as)
    page = sec.get("/audit/", query_string={"customer": number}).get_data(as_text=True)
    assert page.count("<code>customers.customer.viewed</code>") == 1
    assert f"<bdi>{number}</bdi>" in page and customer_number(app, second) not in page
    tail = number.rsplit("-", 1)[-1].lstrip("0")  # the last digits are enough
    assert "<code>customers.customer.viewed</code>" in sec.get("/audit/", query_string={"customer": tail}).get_data(as_text=True)
    nothing = sec.get("/audit/", query_string={"customer": "KH-1999-999999"}).get_data(as_text=True)
    assert 'colspan="8"' in nothing


def test_module_and_action_filters_need_no_codes(app, client, login_as, make_customer):
    customer_id = make_customer("sales1")
    login_as(client, "sales1", role="sales", dept="D1")
    client.get(f"/customers/{customer_id}")
    sec = officer(app, login_as)
    page = sec.get("/audit/", query_string={"module": "customers"}).get_data(as_text=True)
    codes = set(re.findall(r"<code>([a-z_.]+)</code>", page))
    assert codes and all(c.startswith("customers.") for c in codes)
    assert re.search(r'<option value="customers.customer.viewed"\s*>查看客户</option>', page)
    page = sec.get("/audit/", query_string={"action": "core.auth.signed_in"}).get_data(as_text=True)
    assert set(re.findall(r"<code>([a-z_.]+)</code>", page)) == {"core.auth.signed_in"}


def test_the_export_is_formula_safe_readable_and_audited(app, login_as):
    with app.app_context():
        audit.record("test.details", actor="=cmd|' /C calc'!A0", note='=HYPERLINK("http://evil.example","点我")')
        db.session.commit()
    sec = officer(app, login_as)
    response = sec.get("/audit/export.csv", query_string={"action": "test.details"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "filename*=UTF-8''%E5%AE%A1%E8%AE%A1%E6%97%A5%E5%BF%97-" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["序号", "时间", "用户"] and len(rows) == 2
    assert rows[1][2] == "'=cmd|' /C calc'!A0"  # a formula typed as a name stays text in Excel
    assert rows[1][8] == 'note==HYPERLINK("http://evil.example","点我")'
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in rows[1])
    with app.app_context():
        exported = db.session.execute(select(AuditEntry).where(AuditEntry.action == "core.audit.exported")).scalar_one()
    assert exported.details_dict["rows"] == 1 and "test.details" in exported.details_dict["filters"]


def test_the_chain_check_button(app, login_as):
    sec = officer(app, login_as)
    page = sec.post("/audit/verify", follow_redirects=True).get_data(as_text=True)
    assert "审计链完整" in page
    with app.app_context():  # a checkpoint ahead of the trail: its newest entries were cut
        audit._write_checkpoint(app.config["AUDIT_CHECKPOINT_FILE"], 10**6, "f" * 64)
    page = sec.post("/audit/verify", follow_redirects=True).get_data(as_text=True)
    assert "审计链在第" in page and "断开" in page
    with app.app_context():
        results = db.session.execute(select(AuditEntry.result).where(AuditEntry.action == "core.audit.verified")
                                     .order_by(AuditEntry.id)).scalars().all()
    assert results == ["ok", "failed"]
    assert sec.get("/audit/verify").status_code == 405
