"""Fixtures of the oversight tests: a department using the module, a head and a salesperson in
it, a security officer, and a clock for the audit trail (the alert rules read the entries' times)."""
from datetime import UTC, datetime, timedelta

import pytest

from core.db import db
from core.models import User

ID_1 = "110101199003074514"


@pytest.fixture
def ov(app, client, login_as, make_user, enable_module, make_customer):
    """D1 uses oversight (and incidents, lifecycle); head1 and sales1 work there, security1 company-wide."""
    for name in ("oversight", "incidents", "lifecycle"):
        enable_module("D1", name)

    class Ov:
        pass

    ov = Ov()
    ov.app = app
    ov.head = make_user("head1", "head", "D1")
    ov.sales = make_user("sales1", "sales", "D1")
    ov.security = make_user("security1", "security", None)
    ov.customer = make_customer("sales1", id_number=ID_1)

    def signed_in(username, **environ):
        c = app.test_client()
        if environ:
            c.environ_base.update(environ)
        role = {"head1": "head", "sales1": "sales", "security1": "security"}.get(username, "sales")
        return login_as(c, username, role, None if role == "security" else "D1")

    def user(username):
        return db.session.query(User).filter_by(username=username).one()

    ov.client, ov.user = signed_in, user
    return ov


class Clock:
    """Stands in for the audit trail's clock: each entry one second after the previous."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        self.now += timedelta(seconds=1)
        return self.now

    def set(self, start):
        self.now = start

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    """Audit entries written at a fixed working time: Tuesday 2026-12-01 10:00 Beijing time."""
    c = Clock(datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    monkeypatch.setattr("core.audit.utcnow", c)
    return c
