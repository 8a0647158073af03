"""Fixtures for the customer archives: two departments using the module, staff in each, and
helpers to create customers and documents."""
from __future__ import annotations

import datetime
import io
import sys
from pathlib import Path

import pytest

from core.db import db
from core.models import User

ROOT = Path(__file__).resolve().parents[3]
ARCHIVES = ROOT / "modules" / "archives"


def _unshadow_modules_package():
    """pytest puts tests/ first on sys.path, and the project is installed in editable mode through
    a meta-path finder that runs after the normal path search: ``import modules`` then finds the
    folder tests/modules as a namespace package, and ``modules.archives`` becomes
    tests/modules/archives. With the project root on sys.path the real (regular) package wins.
    (The lasting fix is ``pythonpath = ["."]`` in pytest's configuration.)"""
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    for name in [n for n in sys.modules if n == "modules" or n.startswith("modules.")]:
        module = sys.modules[name]
        where = getattr(module, "__file__", None)
        if where is None or Path(where).resolve().is_relative_to(ROOT / "tests"):
            del sys.modules[name]
    import modules  # noqa: F401 - the regular package, from the project root


_unshadow_modules_package()


@pytest.fixture(scope="session", autouse=True)
def compiled_catalog():
    """The module's Chinese catalog, compiled when missing or older than its .po (the .mo is not
    committed)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    for po in (ARCHIVES / "translations").glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with po.open("rb") as fh:
                catalog = read_po(fh)
            with mo.open("wb") as fh:
                write_mo(fh, catalog)


@pytest.fixture
def arch(app, make_user, enable_module, login_as):
    """Departments D1 and D2 with the archives enabled; D3 without. Users: head1, sales1, sales1b
    (D1), head2, sales2 (D2), sales3 (D3)."""
    enable_module("D1", "archives")
    enable_module("D2", "archives")
    ids = {
        "head1": make_user("head1", "head", "D1"),
        "sales1": make_user("sales1", "sales", "D1"),
        "sales1b": make_user("sales1b", "sales", "D1"),
        "head2": make_user("head2", "head", "D2"),
        "sales2": make_user("sales2", "sales", "D2"),
        "sales3": make_user("sales3", "sales", "D3"),
    }
    return Helper(app, ids, login_as)


class Helper:
    def __init__(self, app, ids, login_as):
        self.app = app
        self.ids = ids
        self._login_as = login_as

    def user(self, name):
        return db.session.get(User, self.ids[name])

    def client(self, name):
        client = self.app.test_client()
        self._login_as(client, name)
        return client

    def customer(self, owner="sales1", kind="person", name="张三", company="示例科技有限公司"):
        """A customer owned by ``owner``; returns its id."""
        from modules.customers import Customer
        with self.app.app_context():
            actor = self.user(owner)
            data = {"kind": kind, "name": name} if kind == "person" else {"kind": kind, "company_name": company}
            try:
                from modules.customers.services import create_customer
                customer = create_customer(actor, data)
                db.session.commit()
                return customer.id
            except Exception:  # the register's services are still being written: make the row
                db.session.rollback()
            from core.numbering import next_number
            customer = Customer(number=next_number("KH"), kind=kind, owner_id=actor.id,
                                department_id=actor.department_id)
            db.session.add(customer)
            if kind == "person":
                customer.name = name
            else:
                customer.company_name = company
            db.session.commit()
            return customer.id

    def document(self, customer_id, actor="sales1", doc_type="contract", title="销售合同", **extra):
        """Register a document through the service; returns (id, number)."""
        from modules.archives import services
        from modules.customers import Customer
        with self.app.app_context():
            actor_obj = self.user(actor)
            customer = db.session.get(Customer, customer_id)
            data = {"doc_type": doc_type, "title": title, "doc_date": datetime.date(2026, 3, 1),
                    "amount": None, "keeper_id": extra.pop("keeper_id", actor_obj.id),
                    "storage_location": "档案室A柜"}
            data.update(extra)
            doc = services.create_document(actor_obj, customer, data)
            db.session.commit()
            return doc.id, doc.number

    @staticmethod
    def pdf_bytes(body=b"hello"):
        """A minimal file that starts like a PDF."""
        return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + body + b"\n%%EOF\n"

    @staticmethod
    def upload(data, name):
        return (io.BytesIO(data), name)

    def post_file(self, client, doc_id, data, name):
        return client.post(f"/archives/documents/{doc_id}/attachments",
                           data={"attachment": self.upload(data, name)},
                           content_type="multipart/form-data", follow_redirects=True)

    def stored_files(self):
        folder = Path(self.app.config["UPLOAD_FOLDER"]) / "archives"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    def attachment_rows(self):
        from modules.archives.models import Attachment
        with self.app.app_context():
            return db.session.query(Attachment).order_by(Attachment.id).all()

    def customer_number(self, customer_id):
        from modules.customers import Customer
        with self.app.app_context():
            return db.session.get(Customer, customer_id).number

    def audit_actions(self, prefix="archives."):
        from core.audit import AuditEntry
        with self.app.app_context():
            return [e.action for e in db.session.query(AuditEntry).order_by(AuditEntry.id)
                    if e.action.startswith(prefix)]
