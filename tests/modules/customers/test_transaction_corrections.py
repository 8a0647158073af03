"""Transaction amounts are checked (no negative amount unless a refund); a record is corrected
or voided with a reason, audited, and a voided record counts in no total."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.db import db
from modules.customers import api
from modules.customers.models import Transaction

from .test_customers_pages import compiled_catalogue, field_error, user  # noqa: F401


@pytest.fixture
def people(make_user):
    return {name: make_user(name, role, dept) for name, role, dept in (
        ("sales1", "sales", "D1"), ("sales2", "sales", "D2"))}


@pytest.fixture
def signed_in(app, login_as, people):
    def get(name):
        with app.app_context():
            role = user(name).role
        return login_as(app.test_client(), name, role=role)
    return get


def entries(action):
    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()


def add(client, customer_id, **data):
    return client.post(f"/customers/{customer_id}/transactions/new", data={
        "occurred_on": "2026-05-01", "product": "年度维保", **data})


def test_negative_amounts_only_for_refunds(app, signed_in, make_customer):
    customer_id = make_customer("sales1")
    client = signed_in("sales1")
    response = add(client, customer_id, kind="transaction", amount="-100")
    assert response.status_code == 400
    assert "退款" in field_error(response.get_data(as_text=True), "amount")
    response = add(client, customer_id, kind="refund", amount="")
    assert response.status_code == 400 and field_error(response.get_data(as_text=True), "amount")
    assert add(client, customer_id, kind="transaction", amount="1000").status_code == 302
    assert add(client, customer_id, kind="refund", amount="300").status_code == 302
    with app.app_context():
        amounts = db.session.scalars(select(Transaction.amount).order_by(Transaction.id)).all()
        assert amounts == [Decimal("1000.00"), Decimal("-300.00")]
        assert api.transaction_totals([customer_id]) == {customer_id: (1, Decimal("700.00"))}


def test_correct_and_void_with_a_reason_audited(app, signed_in, make_customer):
    customer_id = make_customer("sales1")
    client = signed_in("sales1")
    assert add(client, customer_id, kind="transaction", amount="1280.50", notes="含安装").status_code == 302
    with app.app_context():
        tx_id = db.session.scalars(select(Transaction.id)).one()
    url = f"/customers/{customer_id}/transactions/{tx_id}/correct"
    page = client.get(url).get_data(as_text=True)
    assert 'value="1280.50"' in page and "年度维保" in page
    response = client.post(url, data={"kind": "transaction", "occurred_on": "2026-05-01", "amount": "1208.50",
                                      "product": "年度维保", "notes": "含安装", "reason": ""})
    assert response.status_code == 400
    assert field_error(response.get_data(as_text=True), "reason")
    assert client.post(url, data={"kind": "transaction", "occurred_on": "2026-05-01", "amount": "1208.50",
                                  "product": "年度维保", "notes": "含安装", "reason": "金额录错"}).status_code == 302
    with app.app_context():
        record = db.session.get(Transaction, tx_id)
        assert record.amount == Decimal("1208.50") and record.correction_reason == "金额录错"
        (entry,) = entries("customers.transaction.corrected")
        details = json.loads(entry.details)
        assert details["fields"] == ["amount"] and details["reason"] == "金额录错"
        assert (details["amount_before"], details["amount_after"]) == ("1280.50", "1208.50")
        assert "含安装" not in entry.details  # notes are named, never copied
    void_url = f"/customers/{customer_id}/transactions/{tx_id}/void"
    response = client.post(void_url, data={"reason": ""})
    assert response.status_code == 400 and field_error(response.get_data(as_text=True), "reason")
    assert client.post(void_url, data={"reason": "客户取消订单"}).status_code == 302
    with app.app_context():
        record = db.session.get(Transaction, tx_id)
        assert record.voided and record.void_reason == "客户取消订单"
        assert json.loads(entries("customers.transaction.voided")[0].details)["reason"] == "客户取消订单"
        assert api.transaction_totals([customer_id]) == {}
    html = client.get(f"/customers/{customer_id}/transactions").get_data(as_text=True)
    assert 'data-voided="yes"' in html and "客户取消订单" in html and "已作废" in html
    assert client.get(url).status_code == 404  # a voided record is not corrected
    assert client.post(void_url, data={"reason": "again"}).status_code == 400


def test_another_customers_record_is_not_reachable(app, signed_in, make_customer):
    mine, other = make_customer("sales1"), make_customer("sales1", name="李四")
    client = signed_in("sales1")
    assert add(client, other, kind="transaction", amount="10").status_code == 302
    with app.app_context():
        tx_id = db.session.scalars(select(Transaction.id)).one()
    assert client.get(f"/customers/{mine}/transactions/{tx_id}/correct").status_code == 404
    assert client.post(f"/customers/{mine}/transactions/{tx_id}/void", data={"reason": "x"}).status_code == 404
    assert signed_in("sales2").post(f"/customers/{other}/transactions/{tx_id}/void",
                                    data={"reason": "x"}).status_code == 404
