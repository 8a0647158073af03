"""Issue 10, the customer register's edges: who a handover may touch (point 5), malformed XLSX
imports (point 10), and the smaller findings of point 11 on the customer pages (clearing the
tags, the CSV content type)."""
from __future__ import annotations

import re

import pytest
from seclib import PASSWORD
from sqlalchemy import select

from core import services as core_services
from core.db import db
from core.models import Department, User
from modules.customers import services as customers
from modules.customers.models import Customer


def _make_user(world, username, role, dept_code):
    with world.app.app_context():
        dept = db.session.get(Department, world.depts[dept_code]) if dept_code else None
        staff = role in ("head", "sales", "service")
        user = core_services.create_user("test", username, PASSWORD, role, dept if staff else None)
        user.department_id = dept.id if dept else None  # an admin or security officer may carry one
        db.session.commit()
        world.users[username] = user.id
        return user.id


# --- point 5: handover only between active sales/service staff of the head's department ------------

@pytest.fixture(scope="module")
def handover_people(world):
    ids = {name: _make_user(world, name, role, "DA") for name, role in (
        ("ho_admin", "admin"), ("ho_sec", "security"), ("ho_head", "head"), ("ho_sales", "sales"))}
    with world.app.app_context():
        customers.create_customer(world.user("ho_sales"), {"kind": "person", "name": "移交客户"})
        db.session.commit()
    return ids


@pytest.mark.parametrize("leaver, taker", [
    ("ho_admin", "a1"),  # an administrator carrying a department is no leaver of the head's
    ("ho_sec", "a1"),  # nor is the security officer
    ("ho_head", "a1"),  # nor another head
    ("ho_sales", "ho_head"),  # customers go to sales or service staff only
    ("ho_sales", "ho_admin"),
])
def test_handover_never_touches_admin_head_or_security_accounts(world, handover_people, leaver, taker):
    client = world.client("ha")
    before = world.audit_max()
    response = client.post("/customers/handover", data={"from_user": world.users[leaver],
                                                         "to_user": world.users[taker]})
    assert response.status_code == 400
    assert 'id="handover-problem"' in response.get_data(as_text=True)
    with world.app.app_context():
        assert db.session.get(User, world.users[leaver]).active is True
        assert {c.owner_id for c in db.session.scalars(select(Customer).where(
            Customer.owner_id == world.users["ho_sales"]))} == {world.users["ho_sales"]}
    assert not [e for e in world.audit_since(before) if e.action in (
        "customers.handover.completed", "core.user.updated")]


def test_the_handover_form_offers_only_sales_and_service_staff(world, handover_people):
    html = world.client("ha").get("/customers/handover").get_data(as_text=True)
    offered = {int(v) for v in re.findall(r'<option value="(\d+)"', html)}
    assert offered == {world.users[n] for n in ("a1", "a2", "sa", "ho_sales")}


# --- point 11: clearing the tags; the CSV content type ----------------------------------------------

def test_clearing_the_tags_on_the_edit_form_saves(world):
    with world.app.app_context():
        customer = customers.create_customer(world.user("a1"), {"kind": "person", "name": "标签客户",
                                                                "tags": "重点,老客户"})
        db.session.commit()
        customer_id, version = customer.id, customer.version
    response = world.client("a1").post(f"/customers/{customer_id}/edit", data={
        "name": "标签客户", "tags": "", "version": str(version), "owner_id": str(world.users["a1"])})
    assert response.status_code == 302
    with world.app.app_context():
        assert db.session.get(Customer, customer_id).tags == ""


def test_the_csv_export_names_its_charset_once(world):
    response = world.client("ha").post("/customers/export", data={"reason": "核对", "fmt": "csv"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
