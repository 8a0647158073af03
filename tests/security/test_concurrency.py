"""G (security.md Part 5 G): lost updates through two open edit forms, and concurrent writers on
the file database never meeting "database is locked".

Covered elsewhere: a stale edit refused with a message when a colleague saved through the
service (tests/modules/customers/test_customers_pages.py::test_stale_edit_is_refused_with_a_message_and_overwrites_nothing),
a commit between load and save (test_customers_services.py), archive documents' optimistic lock
(tests/modules/archives/test_archives_documents.py), unique document numbers under concurrency
(test_archives_numbering.py). kill -9 during an import (all or nothing) is tested with the
import in tests/modules/customers.
"""
from __future__ import annotations

import re
import threading
from html import unescape

import pytest
from seclib import SEPARATE_CONSENT
from sqlalchemy import func, select, text

from core import audit
from core.audit import AuditEntry
from core.db import db
from tests.conftest import PG_URL


def _version(html):
    return re.search(r'name="version" type="hidden" value="(\d+)"', html).group(1)


def test_two_open_edit_forms_the_second_save_is_refused_and_the_first_kept(world):
    from modules.customers import services
    from modules.customers.models import Customer
    with world.app.app_context():
        customer = services.create_customer(world.user("a1"), {
            "kind": "person", "name": "并发客户", "phone": "13900139555", "notes": "原备注"},
            consent=SEPARATE_CONSENT)
        db.session.commit()
        customer_id = customer.id
    x, y = world.client("a1"), world.client("ha")
    form_x = x.get(f"/customers/{customer_id}/edit").get_data(as_text=True)
    form_y = y.get(f"/customers/{customer_id}/edit").get_data(as_text=True)
    assert _version(form_x) == _version(form_y)
    version = _version(form_x)
    before = world.audit_max()

    saved = x.post(f"/customers/{customer_id}/edit", data={
        "name": "并发客户", "phone": "13900139556", "notes": "原备注", "version": version})
    assert saved.status_code == 302
    refused = y.post(f"/customers/{customer_id}/edit", data={
        "name": "并发客户", "phone": "13900139555", "notes": "乙的新备注", "version": version,
        "owner_id": world.users["a1"]})
    assert refused.status_code == 409
    page = unescape(refused.get_data(as_text=True))
    with world.app.test_request_context():
        from flask_babel import gettext
        message = str(services.StaleEdit().message)
        assert gettext(message) in page or message in page
    assert "乙的新备注" in page  # what Y typed is still in the form, to decide on
    assert _version(refused.get_data(as_text=True)) == str(int(version) + 1)
    with world.app.app_context():
        row = db.session.get(Customer, customer_id)
        assert (row.phone, row.notes, row.version) == ("+8613900139556", "原备注", int(version) + 1)
    updates = [e for e in world.audit_since(before) if e.action == "customers.customer.updated"]
    assert [(e.actor, e.details_dict["fields"]) for e in updates] == [("a1", ["phone"])]

    # deciding again on the new values goes through, and does not undo X's change
    again = y.post(f"/customers/{customer_id}/edit", data={
        "name": "并发客户", "phone": "13900139556", "notes": "乙的新备注", "version": int(version) + 1})
    assert again.status_code == 302
    with world.app.app_context():
        row = db.session.get(Customer, customer_id)
        assert (row.phone, row.notes) == ("+8613900139556", "乙的新备注")


@pytest.mark.slow
def test_concurrent_writers_all_land_and_never_see_database_is_locked(world):
    from modules.customers.models import Customer, Transaction
    writers = ("a1", "a2", "sa", "b1", "b2", "hb")
    rounds = 8  # per writer: a create, an edit of it, a record on it, alternately
    clients = {name: world.client(name, fresh=True) for name in writers}
    problems, created = [], {name: [] for name in writers}
    start = threading.Barrier(len(writers))

    def work(name, index):
        client = clients[name]
        start.wait()
        for n in range(rounds):
            try:
                phone = f"1390{index:02d}{n:05d}"
                response = client.post("/customers/new?kind=person", data={
                    "name": f"并发{name}{n}", "phone": phone, "confirm_duplicate": "1"})
                if response.status_code != 302:
                    problems.append((name, "create", response.status_code, response.get_data(as_text=True)[:200]))
                    continue
                customer_id = int(response.headers["Location"].rsplit("/", 1)[-1])
                created[name].append(customer_id)
                if n % 2:
                    response = client.post(f"/customers/{customer_id}/edit", data={
                        "name": f"并发{name}{n}改", "phone": phone, "version": "1"})
                else:
                    response = client.post(f"/customers/{customer_id}/transactions/new", data={
                        "kind": "transaction", "occurred_on": "2024-06-01", "amount": str(n + 1), "product": "并发"})
                if response.status_code != 302:
                    problems.append((name, "write", response.status_code, response.get_data(as_text=True)[:200]))
            except Exception as exc:  # an exception escaping the app is a 500 in production
                problems.append((name, "exception", repr(exc)[:300]))

    threads = [threading.Thread(target=work, args=(name, i)) for i, name in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not [t for t in threads if t.is_alive()]
    assert problems == []
    assert not any("database is locked" in str(p) for p in problems)
    ids = [i for ids in created.values() for i in ids]
    assert len(ids) == len(set(ids)) == len(writers) * rounds
    with world.app.app_context():
        rows = db.session.scalars(select(Customer).where(Customer.id.in_(ids))).all()
        assert len(rows) == len(ids)
        edited = [c for c in rows if c.name.endswith("改")]
        assert len(edited) == len(writers) * (rounds // 2) and all(c.version == 2 for c in edited)
        records = db.session.scalar(select(func.count()).select_from(Transaction)
                                    .where(Transaction.customer_id.in_(ids)))
        assert records == len(writers) * (rounds - rounds // 2)
        numbers = db.session.scalars(select(Customer.number).where(Customer.id.in_(ids))).all()
        assert len(set(numbers)) == len(numbers)
        created_entries = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "customers.customer.created", AuditEntry.target_id.in_([str(i) for i in ids])))
        assert created_entries == len(ids)
        count, broken = audit.verify()
        assert broken is None and count > len(ids)
        if not PG_URL:
            assert db.session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
