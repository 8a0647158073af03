"""Feedback in the data lifecycle: a copy request lists the customer's filled forms, destroying the
customer empties them and withdraws its open links."""
from sqlalchemy import select

from core.db import db
from tests.modules.feedback.conftest import ANSWERS


def test_the_copy_lists_the_answers_and_destruction_empties_them(app, client, login_as, fdept, customer, template):
    from modules.customers import Customer
    from modules.feedback.models import Link, Response
    from modules.lifecycle import requests, services
    login_as(client, "f_sales")
    response = client.post(f"/feedback/customers/{customer}/fill", data={"template_id": template, **ANSWERS})
    assert response.status_code == 302
    with app.test_request_context():
        c = db.session.get(Customer, customer)
        [(_when, text)] = dict((s.title, s.rows) for s in requests.subject_data(c))["客户信息反馈"]
        assert "您的称呼：王先生" in text and "意见和建议：很好" in text
        db.session.add(Link(token_hash="0" * 64, customer_id=customer, department_id=c.department_id, version_id=db.session.scalar(
            select(Response.version_id)), created_by=fdept.sales, expires_at=c.created_at))
        db.session.commit()
    with app.test_request_context():
        services.destroy_customer("test", db.session.get(Customer, customer), "manual")
        db.session.commit()
        assert db.session.scalars(select(Response.answers_ct)).all() == [None]
        assert db.session.scalars(select(Link)).all() == []
