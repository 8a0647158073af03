"""Helpers of the security suite: canary values and their encodings, the shared "world" of
departments, users and rows, and sign-in through the real form (CSRF token included when the
app keeps CSRF on)."""
from __future__ import annotations

import base64
import datetime
import io
import re
from dataclasses import dataclass, field

from sqlalchemy import MetaData, select

from core import services as core_services
from core.audit import AuditEntry
from core.db import db
from core.models import Department, User
from tests.conftest import PASSWORD, PG_URL, _reset_postgres, csrf_token, make_config

# --- canary personal data (security.md Part 5) ---------------------------------------------------

ID_CANARY = "11010519491231002X"
PHONE_CANARY = "13800138000"
NAME_CANARY = "测试甲𠮷"
ADDRESS_CANARY = "北京市朝阳区测试路1号"
BANK_CANARY = "6222021234567890123"
CANARIES = (ID_CANARY, PHONE_CANARY, NAME_CANARY, ADDRESS_CANARY, BANK_CANARY)

# Department A's own customer: valid values that are not canaries.
ID_A = "110101199003074477"
PHONE_A = "13900139000"

SEPARATE_CONSENT = {"purposes": ["service", "contract", "analysis"], "channel": "paper", "sensitive": True,
                    "scope": "身份证号、银行账号"}
FORM_CONSENT = {"consent_purposes": ["service", "contract"], "consent_channel": "paper",
                "consent_sensitive": "y"}

USERS = (  # username, role, department
    ("a1", "sales", "DA"), ("a2", "sales", "DA"), ("sa", "service", "DA"), ("ha", "head", "DA"),
    ("b1", "sales", "DB"), ("b2", "sales", "DB"), ("hb", "head", "DB"),
    ("ad", "admin", None), ("au", "security", None),
)


def pdf_bytes(body: bytes = b"hello") -> bytes:
    """A minimal file that starts like a PDF (the archives sniff content, not names)."""
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + body + b"\n%%EOF\n"


def canary_encodings(values=CANARIES):
    """(value, bytes) for UTF-8, UTF-16-LE, GBK (where encodable) and base64 of each canary."""
    out = []
    for value in values:
        raw = value.encode("utf-8")
        out += [(value, raw), (value, value.encode("utf-16-le")), (value, base64.b64encode(raw)),
                (value, base64.urlsafe_b64encode(raw).rstrip(b"="))]
        try:
            gbk = value.encode("gbk")
        except UnicodeEncodeError:  # 𠮷 is outside GBK: grep its encodable part instead
            gbk = "".join(c for c in value if _gbk_ok(c)).encode("gbk")
        if len(gbk) >= 4:
            out.append((value, gbk))
    return out


def _gbk_ok(char):
    try:
        char.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


def find_canaries(data: bytes, values=CANARIES):
    return sorted({value for value, encoded in canary_encodings(values) if encoded in data})


# --- the world ---------------------------------------------------------------------------------------

@dataclass
class World:
    app: object
    users: dict = field(default_factory=dict)  # username -> id
    depts: dict = field(default_factory=dict)  # code -> id
    ids: dict = field(default_factory=dict)  # name of a row -> id
    _clients: dict = field(default_factory=dict)
    _meta: object = None

    # sessions

    def client(self, username, fresh=False):
        """A test client signed in as ``username`` (cached per user unless ``fresh``)."""
        if not fresh and username in self._clients:
            return self._clients[username]
        client = self.app.test_client()
        sign_in(client, username)
        if not fresh:
            self._clients[username] = client
        return client

    def forget(self, username):
        self._clients.pop(username, None)

    # data

    def user(self, username):
        return db.session.get(User, self.users[username])

    def audit_max(self):
        with self.app.app_context():
            return db.session.scalar(select(db.func.max(AuditEntry.id))) or 0

    def audit_since(self, last_id):
        with self.app.app_context():
            return db.session.scalars(select(AuditEntry).where(AuditEntry.id > last_id)
                                      .order_by(AuditEntry.id)).all()

    def snapshot(self, exclude=("core_audit_entry", "core_login_throttle", "oversight_alert", "oversight_cursor")):
        """Every row of every table but the audit trail and the sign-in throttle (and the anomaly
        alerts read from the trail: probing foreign rows rightly raises one), as plain tuples."""
        with self.app.app_context():
            if self._meta is None:
                self._meta = MetaData()
                self._meta.reflect(bind=db.engine)
            out = {}
            for name, table in sorted(self._meta.tables.items()):
                if name in exclude or name == "alembic_version":
                    continue
                order = list(table.primary_key.columns) or list(table.columns)
                out[name] = [tuple(row) for row in db.session.execute(select(table).order_by(*order))]
            db.session.rollback()
            return out


def sign_in(client, username, password=PASSWORD):
    data = {"username": username, "password": password}
    if client.application.config.get("WTF_CSRF_ENABLED", True):
        data["csrf_token"] = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data=data)
    assert response.status_code == 302, (username, response.status_code)
    return response


def build_app(tmp_path, **overrides):
    from core.app import create_app
    if PG_URL:
        _reset_postgres(PG_URL)
    app = create_app(make_config(tmp_path, **overrides))
    with app.app_context():
        db.create_all()
        core_services.grant_defaults("core")
        for name in app.extensions["kehu.modules"]:
            core_services.install_module("test", name)
        db.session.commit()
    return app


def populate(app):
    """Departments, users and the rows every security test refers to."""
    from modules.archives import services as archives
    from modules.customers import services as customers
    from modules.customers.models import Customer

    world = World(app)
    with app.app_context():
        for code, name in (("DA", "销售甲部"), ("DB", "销售乙部")):
            world.depts[code] = core_services.create_department("test", code, name).id
        for username, role, code in USERS:
            dept = db.session.get(Department, world.depts[code]) if code else None
            world.users[username] = core_services.create_user("test", username, PASSWORD, role, dept).id
        for code in ("DA", "DB"):
            dept = db.session.get(Department, world.depts[code])
            for module in ("grading", "archives"):
                core_services.enable_module("test", module, dept)
        db.session.commit()

        u = world.user
        # department B: the canary holder, an organisation with a contact, a share, a record
        cb = customers.create_customer(u("b1"), {
            "kind": "person", "name": NAME_CANARY, "phone": PHONE_CANARY, "id_number": ID_CANARY,
            "bank_account": BANK_CANARY, "home_address": ADDRESS_CANARY, "emergency_contact": "王五",
            "notes": "乙部客户备注"}, consent=SEPARATE_CONSENT)
        cb_org = customers.create_customer(u("b1"), {"kind": "org", "company_name": "乙方测试有限公司",
                                                     "phone": "01088886666"})
        contact = customers.add_contact(u("b1"), cb_org, {"name": "联系人丙", "phone": "13700137000"})
        share = customers.share_customer(u("b1"), cb, u("b2"))
        customers.add_transaction(u("b1"), cb, {"kind": "transaction", "occurred_on": "2024-05-01",
                                                "amount": "1280.50", "product": "乙部产品", "notes": "交易备注"})
        db.session.flush()
        doc_b = archives.create_document(u("b1"), cb, {
            "doc_type": "contract", "title": "乙部合同", "doc_date": datetime.date(2024, 5, 1),
            "amount": None, "keeper_id": world.users["b1"], "storage_location": "乙部档案室"})
        att_b, _path = archives.add_attachment(u("b1"), doc_b, "乙部合同.pdf",
                                               pdf_bytes(f"{NAME_CANARY} {ID_CANARY}".encode()))
        # department A: its own customer, document and a request a2 made for B's archive
        ca = customers.create_customer(u("a1"), {
            "kind": "person", "name": "甲部客户", "phone": PHONE_A, "id_number": ID_A,
            "home_address": "上海市浦东新区甲路2号"}, consent=SEPARATE_CONSENT)
        doc_a = archives.create_document(u("a1"), ca, {
            "doc_type": "contract", "title": "甲部合同", "doc_date": datetime.date(2024, 5, 1),
            "amount": None, "keeper_id": world.users["a1"], "storage_location": "甲部档案室"})
        db.session.commit()
        number_b = db.session.get(Customer, cb.id).number
        request_b = archives.create_request(u("a2"), number_b, "borrow", "核对合同",
                                            archives.today() + datetime.timedelta(days=3))
        db.session.commit()
        world.ids.update(cb=cb.id, cb_org=cb_org.id, contact_b=contact.id, share_b=share.id,
                         consent_b=cb.consents[0].id, doc_b=doc_b.id, att_b=att_b.id, ca=ca.id,
                         consent_a=ca.consents[0].id, doc_a=doc_a.id, request_b=request_b.id)
    return world


# --- helpers for pages ---------------------------------------------------------------------------------

def rows_of_list(html):
    return {int(i) for i in re.findall(r'<tr id="customer-(\d+)"', html)}


def read_xlsx(data):
    from openpyxl import load_workbook
    return load_workbook(io.BytesIO(data)).worksheets[0]
