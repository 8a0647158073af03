"""Fixtures of the complaints tests: department D1 uses complaints, with a head, a service and a
sales user; D2 (also using complaints) has its own head and service user. Customers are owned by
the service user unless said otherwise."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core.db import db
from core.models import User


@pytest.fixture
def cdept(app, make_user, enable_module, department):
    enable_module("D1", "complaints")
    enable_module("D2", "complaints")
    return SimpleNamespace(
        id=department("D1"), d2=department("D2"),
        head=make_user("c_head", "head", "D1"), service=make_user("c_service", "service", "D1"),
        sales=make_user("c_sales", "sales", "D1"), head2=make_user("c_head2", "head", "D2"),
        service2=make_user("c_service2", "service", "D2"))


@pytest.fixture
def customer(cdept, make_customer):
    """A person customer of c_service in D1 with an ID number (for the masking checks)."""
    return make_customer("c_service", name="王小明", phone="13800138000", id_number="11010519491231002X")


INTAKE = {"channel": "phone", "category": "产品质量", "severity": "normal",
          "description": "产品有质量问题", "customer_request": "退货"}


@pytest.fixture
def file_complaint(app, login_as):
    """file_complaint(client, customer_id, **fields) -> complaint id, through the intake form."""
    def file(client, customer_id, **fields):
        response = client.post(f"/complaints/new?customer_id={customer_id}", data={**INTAKE, **fields})
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        return int(re.search(r"/complaints/(\d+)$", response.headers["Location"]).group(1))
    return file


@pytest.fixture
def complaint_row(app):
    def get(complaint_id):
        from modules.complaints.models import Complaint
        with app.app_context():
            c = db.session.get(Complaint, complaint_id)
            db.session.expunge(c)
            return c
    return get


@pytest.fixture
def user_id(app):
    def get(username):
        with app.app_context():
            return db.session.execute(select(User.id).where(User.username == username)).scalar_one()
    return get


def audit_actions(app, action):
    from core.audit import AuditEntry
    with app.app_context():
        return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                  .order_by(AuditEntry.id)).scalars().all()
