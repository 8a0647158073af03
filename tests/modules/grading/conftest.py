"""Fixtures of the grading tests: a department using grading with a head and a sales user, and
customers with a given tenure and transactions (rows made directly through the models the
customers module exports, so hundreds of them are quick)."""
from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from core.db import db
from core.models import User, utcnow

_numbers = itertools.count(1)


@pytest.fixture
def grading_dept(app, make_user, enable_module, department):
    """D1 uses grading; its head g_head and sales user g_sales. Returns their ids."""
    dept_id = department("D1")
    enable_module("D1", "grading")
    return SimpleNamespace(id=dept_id, code="D1", head=make_user("g_head", "head", "D1"),
                           sales=make_user("g_sales", "sales", "D1"))


@pytest.fixture
def make_customer(app):
    """make_customer(owner_id, months=24, transactions=[(amount, days_ago), ...]) -> customer id,
    with a consent to analysis unless ``analysis=False``.

    ``months`` is the tenure: the customer was registered that many months (of 31 days) ago."""
    def make(owner_id, months=24, transactions=(), kind="transaction", name="测试客户", analysis=True):
        from modules.customers import Customer, Transaction
        from modules.customers.models import Consent
        with app.app_context():
            owner = db.session.get(User, owner_id)
            created = utcnow() - timedelta(days=31 * months + 1)
            customer = Customer(number=f"KH-T-{next(_numbers):06d}", kind="person", status="active",
                                owner_id=owner.id, department_id=owner.department_id, created_at=created,
                                status_changed_at=created)
            customer.name = name
            db.session.add(customer)
            db.session.flush()
            if analysis:  # grading processes only customers who consented to analysis
                db.session.add(Consent(customer_id=customer.id, purposes="service,analysis", scope="",
                                       sensitive=False, channel="paper", notice_version="1.0",
                                       recorded_by=owner.id, recorded_at=created))
            for amount, days_ago in transactions:
                db.session.add(Transaction(customer_id=customer.id, kind=kind, amount=Decimal(str(amount)),
                                           occurred_on=(utcnow() - timedelta(days=days_ago)).date(),
                                           product="测试产品", created_by=owner.id))
            db.session.commit()
            return customer.id
    return make


@pytest.fixture
def as_user(app):
    """Run service code as a user: with as_user(user_id) as actor: ..."""
    from contextlib import contextmanager

    @contextmanager
    def run(user_id):
        with app.test_request_context():
            yield db.session.get(User, user_id)
    return run
