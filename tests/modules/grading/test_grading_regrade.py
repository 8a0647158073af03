"""Grades follow the register at once (hook customers.changed): a new transaction, a voided one,
a new customer and a changed rule regrade without a manual recompute."""
from __future__ import annotations

import json

from sqlalchemy import select

from core.audit import AuditEntry
from core.db import db
from core.models import User
from modules.grading.models import Grade, History


def grade(app, customer_id):
    with app.app_context():
        row = db.session.get(Grade, customer_id)
        return row.grade if row is not None else None


def test_a_transaction_regrades_the_customer_and_voiding_it_undoes_that(app, grading_dept, make_customer,
                                                                        login_as):
    customer_id = make_customer(grading_dept.sales, months=24)
    with app.app_context():
        sales = db.session.get(User, grading_dept.sales).username
    client = login_as(app.test_client(), sales, role="sales", dept="D1")
    assert client.post(f"/customers/{customer_id}/transactions/new", data={
        "kind": "transaction", "occurred_on": "2026-11-30", "amount": "150000", "product": "整机"}
    ).status_code == 302
    assert grade(app, customer_id) == "important"
    with app.app_context():
        from modules.customers import Transaction
        tx_id = db.session.scalars(select(Transaction.id).where(Transaction.customer_id == customer_id)).one()
        regraded = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "grading.grade.regraded")).all()
        assert [json.loads(e.details)["grade"] for e in regraded] == ["important"]
    assert client.post(f"/customers/{customer_id}/transactions/{tx_id}/void",
                       data={"reason": "录入重复"}).status_code == 302
    assert grade(app, customer_id) == "ordinary"
    with app.app_context():
        history = db.session.scalars(select(History.to_grade).where(History.customer_id == customer_id)
                                     .order_by(History.id)).all()
        assert history == ["important", "ordinary"]


def test_a_new_customer_is_graded_at_once(app, grading_dept, login_as):
    with app.app_context():
        sales = db.session.get(User, grading_dept.sales).username
    client = login_as(app.test_client(), sales, role="sales", dept="D1")
    ids = []
    for phone, purposes in (("13900139000", ["service", "analysis"]), ("13900139001", ["service"])):
        response = client.post("/customers/new?kind=person", data={
            "kind": "person", "name": "新客户", "phone": phone, "consent_purposes": purposes,
            "consent_channel": "paper"})
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        ids.append(int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert grade(app, ids[0]) == "ordinary"
    assert grade(app, ids[1]) is None  # no analysis consent: not graded


def test_changed_rules_regrade_the_department_at_once(app, grading_dept, make_customer, login_as):
    customer_id = make_customer(grading_dept.sales, months=24, transactions=[(5000, 10)])
    client = login_as(app.test_client(), "g_head", role="head", dept="D1")
    response = client.post("/grading/rules", data={"min_amount": "1000", "min_count": "",
                                                   "min_tenure_months": "3", "escalate_open_complaints": ""})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert grade(app, customer_id) == "important"
