"""Fixtures of the visits tests: departments D1 and D2 using the module, D3 not, staff in each,
and helpers to log visits through the service and read the audit trail."""
from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest

from core.db import db
from core.models import User


@pytest.fixture
def vw(app, make_user, enable_module, make_customer, login_as):
    """Users: head1, sales1, sales1b (D1); head2, sales2 (D2); sales3 (D3, visits not enabled).
    Customers: c1, customer2, customer3, customer4 (sales1's, D1), c2 (sales2's, D2)."""
    enable_module("D1", "visits")
    enable_module("D2", "visits")
    ids = {name: make_user(name, role, dept) for name, role, dept in (
        ("head1", "head", "D1"), ("sales1", "sales", "D1"), ("sales1b", "sales", "D1"),
        ("head2", "head", "D2"), ("sales2", "sales", "D2"), ("sales3", "sales", "D3"))}
    world = SimpleNamespace(app=app, ids=ids)
    world.c1 = make_customer("sales1", name="王小明", phone="13912345678")
    world.c2 = make_customer("sales2", kind="org", dept="D2", company_name="乙方贸易有限公司")
    # more customers of sales1, for lists with several next contacts
    world.customer2 = make_customer("sales1", name="赵二")
    world.customer3 = make_customer("sales1", kind="org", company_name="丙方制造有限公司")
    world.customer4 = make_customer("sales1", name="钱四")

    def client(name):
        c = app.test_client()
        login_as(c, name)
        return c

    def visit(customer_id, actor="sales1", on=None, **data):
        """Log a visit through the service; returns its id."""
        from modules.customers import Customer
        from modules.visits import services
        values = {"visited_on": on or services.today(), "channel": "phone", "purpose": "续约洽谈",
                  "notes": "", "next_step": "", "next_contact_on": None}
        values.update(data)
        with app.test_request_context():
            user = db.session.query(User).filter_by(username=actor).one()
            row = services.log_visit(user, db.session.get(Customer, customer_id), values, on=on)
            db.session.commit()
            return row.id

    def audit(prefix=""):
        from core.audit import AuditEntry
        with app.app_context():
            return [e for e in db.session.query(AuditEntry).order_by(AuditEntry.id) if e.action.startswith(prefix)]

    def get_visit(visit_id):
        from modules.visits.models import Visit
        with app.app_context():
            row = db.session.get(Visit, visit_id)
            if row is None:
                return None
            return SimpleNamespace(id=row.id, purpose=row.purpose, notes=row.notes, next_step=row.next_step,
                                   next_contact_on=row.next_contact_on, owner_id=row.owner_id,
                                   channel=row.channel, visited_on=row.visited_on, version=row.version)

    world.client, world.visit, world.audit, world.get_visit = client, visit, audit, get_visit
    world.today = lambda: _today(app)
    return world


def _today(app):
    from modules.visits import services
    with app.app_context():
        return services.today()


@pytest.fixture
def days():
    return lambda n: datetime.timedelta(days=n)
