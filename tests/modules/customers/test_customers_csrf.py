"""With CSRF protection on (as in production), every change of the register needs the form's
token; a forged request changes nothing."""
import re

import pytest
from sqlalchemy import func, select

from core.db import db
from modules.customers.models import Customer


@pytest.fixture
def config_overrides():
    return {"WTF_CSRF_ENABLED": True}


def token(html):
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


def count():
    return db.session.scalar(select(func.count()).select_from(Customer))


def test_changes_need_the_csrf_token(app, client, make_user):
    make_user("sales1", "sales", "D1")
    login_page = client.get("/login").get_data(as_text=True)
    assert client.post("/login", data={"username": "sales1", "password": "Correct-horse-42",
                                       "csrf_token": token(login_page)}).status_code == 302
    form = client.get("/customers/new?kind=person").get_data(as_text=True)
    forged = client.post("/customers/new?kind=person", data={"name": "伪造"})
    assert forged.status_code == 400
    with app.app_context():
        assert count() == 0
    response = client.post("/customers/new?kind=person", data={"name": "真实", "csrf_token": token(form)})
    assert response.status_code == 302
    customer_url = response.headers["Location"]
    with app.app_context():
        assert count() == 1
    for url, data in ((f"{customer_url}/status", {"status": "active"}),
                      (f"{customer_url}/reveal/id_number", {}),
                      (f"{customer_url}/transactions/new", {"kind": "service", "occurred_on": "2024-01-01",
                                                             "product": "x"})):
        assert client.post(url, data=data).status_code == 400, url
    with app.app_context():
        customer = db.session.scalars(select(Customer)).one()
        assert customer.status == "prospect" and customer.transactions.count() == 0
