"""H and I (security.md Part 5 H, I; CR-01, CR-04, CR-05, AU-01) after one full workflow through
the pages: sign-in, create, edit, search, reveal, export, PDF, consent, status, upload, module and
role changes, refusals. Then the canaries are grepped at rest, the trail is checked for one entry
per action, and the keys are rotated last.

Covered elsewhere: plaintext grep after service calls (tests/modules/customers/test_customers_services.py::test_no_personal_field_is_stored_in_plaintext),
the blind index's HMAC construction (tests/core/test_crypto.py), rotation resumption after crashes
(test_crypto.py), attachments encrypted at rest (tests/modules/archives/test_archives_attachments.py).
"""
from __future__ import annotations

import io
import json
import logging
import shutil
from hashlib import md5, sha1, sha256
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from seclib import (
    ADDRESS_CANARY,
    BANK_CANARY,
    CANARIES,
    FORM_CONSENT,
    ID_CANARY,
    NAME_CANARY,
    PHONE_CANARY,
    build_app,
    find_canaries,
    pdf_bytes,
    populate,
    rows_of_list,
)
from sqlalchemy import LargeBinary, MetaData, String, Text, select

from core import audit, crypto
from core.audit import AuditEntry
from core.db import db
from tests.conftest import PG_URL

pytestmark = pytest.mark.slow


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()} {record.exc_text or ''}")


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """The world, a module app of its own, after the full workflow. ``flow.steps[name]`` holds
    (username, [audit entries the step wrote])."""
    app = build_app(tmp_path_factory.mktemp("storage"))
    world = populate(app)
    handler, root = _Records(), logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    steps, outputs = {}, {}
    ids = world.ids

    def step(name, username, method, url, **kwargs):
        client = world.client(username)
        before = world.audit_max()
        response = client.open(url, method=method, **kwargs)
        steps[name] = (username, world.audit_since(before), response)
        return response

    try:
        sign = world.app.test_client()
        before = world.audit_max()
        sign.post("/login", data={"username": "b1", "password": "Wrong-password-1"})
        steps["sign-in failed"] = ("b1", world.audit_since(before), None)
        before = world.audit_max()
        sign.post("/login", data={"username": "b1", "password": "Correct-horse-42"})
        steps["sign-in"] = ("b1", world.audit_since(before), None)

        created = step("create", "b1", "POST", "/customers/new?kind=person", data={
            "name": NAME_CANARY, "phone": PHONE_CANARY, "id_number": ID_CANARY, "bank_account": BANK_CANARY,
            "home_address": ADDRESS_CANARY, "notes": f"{NAME_CANARY}的备注", "confirm_duplicate": "1", **FORM_CONSENT})
        assert created.status_code == 302, created.get_data(as_text=True)[:400]
        new_id = int(created.headers["Location"].rsplit("/", 1)[-1])
        ids["new"] = new_id
        step("view", "b1", "GET", f"/customers/{new_id}")
        edit = world.client("b1").get(f"/customers/{new_id}/edit").get_data(as_text=True)
        version = edit.split('name="version" type="hidden" value="', 1)[1].split('"', 1)[0]
        assert step("edit", "b1", "POST", f"/customers/{new_id}/edit", data={
            "name": NAME_CANARY, "phone": PHONE_CANARY, "emergency_contact": f"{NAME_CANARY} {PHONE_CANARY}",
            "notes": f"{NAME_CANARY}的备注", "gender": "F", "birth_date": "1949-12-31", "version": version}
        ).status_code == 302
        for q in (PHONE_CANARY, ID_CANARY, NAME_CANARY):
            response = step(f"search {q}", "b1", "GET", f"/customers/?q={q}")
            assert rows_of_list(response.get_data(as_text=True)) == {ids["cb"], new_id}
        assert step("reveal", "hb", "POST", f"/customers/{new_id}/reveal/id_number", data={"reason": ""}).status_code == 200
        assert step("reveal L3", "hb", "POST", f"/customers/{new_id}/reveal/home_address",
                    data={"reason": "核对寄送地址"}).status_code == 200
        outputs["csv"] = step("export", "hb", "POST", "/customers/export",
                              data={"reason": "年度核对", "fmt": "csv"}).get_data()
        outputs["xlsx"] = world.client("hb").post("/customers/export", data={"reason": "年度核对", "fmt": "xlsx"}).get_data()
        pdf = step("pdf", "hb", "GET", f"/archives/{ids['cb']}/form.pdf")
        assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
        outputs["pdf"] = pdf.get_data()
        assert step("consent", "b1", "POST", f"/customers/{ids['cb_org']}/consents/new", data={
            "consent_purposes": ["marketing"], "consent_channel": "online", "consent_scope": "营销短信"}).status_code == 302
        with app.app_context():
            from modules.customers.models import Consent
            consent_id = db.session.scalars(select(Consent.id).where(Consent.customer_id == ids["cb_org"])).one()
        assert step("consent withdrawn", "b1", "POST", f"/customers/{ids['cb_org']}/consents/{consent_id}/withdraw",
                    data={"reason": "客户来电要求"}).status_code == 302
        assert step("status", "b1", "POST", f"/customers/{new_id}/status",
                    data={"status": "active", "reason": ""}).status_code == 302
        assert step("contact", "b1", "POST", f"/customers/{ids['cb_org']}/contacts/new", data={
            "name": NAME_CANARY, "phone": PHONE_CANARY}).status_code == 302
        upload = step("upload", "b1", "POST", f"/archives/documents/{ids['doc_b']}/attachments", data={
            "attachment": (io.BytesIO(pdf_bytes(f"{NAME_CANARY} {ID_CANARY} {ADDRESS_CANARY}".encode())),
                           f"{NAME_CANARY}身份证{ID_CANARY}.pdf")}, content_type="multipart/form-data")
        assert upload.status_code == 302
        assert step("module enabled", "ad", "POST", "/admin/modules/notices/enable",
                    data={"department_id": world.depts["DB"]}).status_code == 302
        assert step("role changed", "ad", "POST", f"/admin/users/{world.users['b2']}", data={
            "role": "service", "department_id": world.depts["DB"], "active": "1"}).status_code == 302
        with app.app_context():
            from core.models import RoleGrant
            grants = sorted(db.session.scalars(select(RoleGrant.permission).where(RoleGrant.role == "service")))
        assert step("grants changed", "ad", "POST", "/admin/roles", data={
            "role": "service", "permission": [g for g in grants if g != "customers.share"]}).status_code == 302
        assert step("denied", "a1", "GET", "/admin/users").status_code == 403
        assert step("row denied", "a1", "GET", f"/customers/{ids['cb']}").status_code == 404
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    world.steps, world.outputs, world.log_lines = steps, outputs, handler.lines
    yield world
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# --- I: one entry per action -----------------------------------------------------------------------------

EXPECTED = {  # step: (action, target type, which id) — None: the entry names no row
    "sign-in": ("core.auth.signed_in", None, None),
    "sign-in failed": ("core.auth.failed", "core_user", "user:b1"),
    "create": ("customers.customer.created", "customers_customer", "new"),
    "view": ("customers.customer.viewed", "customers_customer", "new"),
    "edit": ("customers.customer.updated", "customers_customer", "new"),
    "search 13800138000": ("customers.customer.searched", "customers_customer", None),
    "reveal": ("customers.field.revealed", "customers_customer", "new"),
    "reveal L3": ("customers.field.revealed", "customers_customer", "new"),
    "export": ("customers.export.completed", None, None),
    "pdf": ("archives.form.printed", "customers_customer", "cb"),
    "consent": ("customers.consent.recorded", "customers_customer", "cb_org"),
    "consent withdrawn": ("customers.consent.withdrawn", "customers_customer", "cb_org"),
    "status": ("customers.customer.status_changed", "customers_customer", "new"),
    "contact": ("customers.contact.created", "customers_customer", "cb_org"),
    "upload": ("archives.attachment.added", "archives_attachment", None),
    "module enabled": ("core.module.enabled", "module", "notices"),
    "role changed": ("core.user.updated", "core_user", "user:b2"),
    "grants changed": ("core.role.grants_changed", "role", "service"),
    "denied": ("core.access.denied", None, None),
    "row denied": ("core.access.row_denied", "customers_customer", "cb"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_action_leaves_exactly_one_entry_naming_actor_and_target(flow, name):
    action, target_type, which = EXPECTED[name]
    username, entries, _response = flow.steps[name]
    matching = [e for e in entries if e.action == action]
    assert len(matching) == 1, (name, [e.action for e in entries])
    entry = matching[0]
    assert entry.actor == username
    # a failed sign-in is nobody's act yet: the account tried is its target
    assert entry.actor_id == (None if name == "sign-in failed" else flow.users[username])
    assert entry.at.tzinfo is not None and entry.request_id and entry.address
    if target_type is not None:
        assert entry.target_type == target_type
    if which is not None:
        expected = (str(flow.users[which[5:]]) if which.startswith("user:")
                    else str(flow.ids[which]) if which in flow.ids else which)
        assert entry.target_id == expected
    if name.startswith("reveal"):
        assert entry.details_dict["field"] in ("id_number", "home_address")
    if name == "export":
        assert entry.details_dict["rows"] >= 2 and entry.details_dict["reason"] == "年度核对"
    if name == "edit":
        assert entry.details_dict["fields"] == ["emergency_contact"]


def test_no_audit_row_holds_a_canary_in_any_column(flow):
    with flow.app.app_context():
        for entry in db.session.scalars(select(AuditEntry)):
            text = json.dumps([entry.actor, entry.role, entry.action, entry.result, entry.target_type,
                               entry.target_id, entry.details, entry.address, entry.request_id], ensure_ascii=False)
            assert find_canaries(text.encode()) == [], entry.action
            assert "8613800138000" not in text and "****" not in entry.details  # neither values nor masks


# --- H: nothing at rest in the clear -----------------------------------------------------------------------

def _database_files(app):
    path = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")) if p.exists()]


def test_no_canary_at_rest_in_the_database_uploads_logs_or_session(flow):
    hits = []
    if PG_URL:
        meta = MetaData()
        with flow.app.app_context():
            meta.reflect(bind=db.engine)
            for table in meta.tables.values():
                columns = [c for c in table.columns if isinstance(c.type, (String, Text, LargeBinary))]
                for row in db.session.execute(select(*columns)) if columns else ():
                    for column, value in zip(columns, row, strict=True):
                        data = value if isinstance(value, bytes) else str(value or "").encode()
                        hits += [(table.name, column.name, c) for c in find_canaries(data)]
    else:
        files = _database_files(flow.app)
        assert files and any(p.name.endswith("-wal") for p in files)  # the WAL is grepped, not checkpointed
        for path in files:
            hits += [(path.name, c) for c in find_canaries(path.read_bytes())]
    uploads = [p for p in Path(flow.app.config["UPLOAD_FOLDER"]).rglob("*") if p.is_file()]
    assert len(uploads) >= 2
    for path in uploads:
        hits += [(path.name, c) for c in find_canaries(path.read_bytes())]
    hits += [("log", c) for c in find_canaries("\n".join(flow.log_lines).encode())]
    serializer = flow.app.session_interface.get_signing_serializer(flow.app)
    for username, client in flow._clients.items():
        cookie = client.get_cookie("kehu_session")
        if cookie is not None:
            session = json.dumps(serializer.loads(cookie.value), ensure_ascii=False, default=str)
            hits += [(f"session of {username}", c) for c in find_canaries(session.encode())]
    assert hits == []


def test_downloads_are_masked_where_the_user_may_not_reveal(flow):
    """The export and the PDF are masked for everyone, the head of B too: clear text needs an
    approved disclosure request (issue 17)."""
    from pypdf import PdfReader
    text = "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(flow.outputs["pdf"])).pages)
    assert "110105" in text and "002X" in text and ID_CANARY not in text and BANK_CANARY not in text
    assert ADDRESS_CANARY not in text
    assert ID_CANARY not in flow.outputs["csv"].decode("utf-8-sig")
    (username, entries, _r) = flow.steps["export"]
    assert [e.action for e in entries] == ["customers.export.completed"]
    assert entries[0].details_dict["revealed"] == [] and "id_number" in entries[0].details_dict["masked"]


def test_blind_indexes_are_not_plain_hashes_of_the_values(flow):
    from modules.customers.models import Contact, Customer
    values = {ID_CANARY, PHONE_CANARY, "+86" + PHONE_CANARY, NAME_CANARY, ID_CANARY.lower()}
    domains = ("", "customers.phone\x00", "customers.id_number\x00", "customers.name\x00")
    plain = {h(f"{d}{v}".encode()).hexdigest()[:16] for v in values for d in domains for h in (sha256, sha1, md5)}
    with flow.app.app_context():
        stored = [value for model, columns in (
            (Customer, ("name_bidx", "phone_bidx", "phone2_bidx", "id_number_bidx")),
            (Contact, ("name_bidx", "phone_bidx"))) for column in columns
            for value in db.session.scalars(select(getattr(model, column))) if value]
    assert len(stored) >= 8
    assert all(v.split(":", 1)[1] not in plain for v in stored)
    assert len({v for v in stored}) < len(stored)  # equal values, equal index: that is what search needs


# --- H: key rotation (last: it changes the keys of this module's app) ----------------------------------------

def test_rotation_keeps_everything_readable_and_searchable_and_retires_the_old_keys(flow, tmp_path):
    from core.cli import main
    from modules.archives.models import Attachment
    from modules.archives.services import read_attachment
    from modules.customers.models import Contact, Customer
    app = flow.app
    key_file = Path(app.config["MASTER_KEY_FILE"])
    old_copy = tmp_path / "old-master.key"
    shutil.copy2(key_file, old_copy)
    with app.app_context():
        def readable():
            out = {}
            for customer in db.session.scalars(select(Customer)):
                out[("c", customer.id)] = tuple(getattr(customer, f) for f in (
                    "name", "phone", "id_number", "bank_account", "home_address", "emergency_contact", "notes"))
            for contact in db.session.scalars(select(Contact)):
                out[("k", contact.id)] = (contact.name, contact.phone)
            for att in db.session.scalars(select(Attachment)):
                out[("a", att.id)] = (att.filename, read_attachment(att))
            db.session.rollback()
            return out
        before = readable()
    result = CliRunner().invoke(main, ["keys", "rotate"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert readable() == before
        old = crypto.Keyring.load(old_copy)
        keys = db.session.scalars(select(crypto.SubjectKey)).all()
        assert keys and {k.kek_id for k in keys} == {crypto.keyring().kek_id}
        for subject_key in keys:
            for kek_id in old.kek_ids:
                with pytest.raises(crypto.DecryptionError):
                    old.unwrap(kek_id, subject_key.wrapped)
        stale = [v for v in db.session.scalars(select(Customer.phone_bidx)) if v and not v.startswith("2:")]
        assert stale == []
        (entry,) = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "core.keys.rotated")).all()
        assert entry.details_dict["subject_keys"] == len(keys)
        assert audit.verify()[1] is None
    b1 = flow.client("b1")
    holders = {flow.ids["cb"], flow.ids["new"]}
    for q, expected in ((PHONE_CANARY, holders | {flow.ids["cb_org"]}), (ID_CANARY, holders),
                        (NAME_CANARY, holders | {flow.ids["cb_org"]})):  # the organisation's contact
        assert rows_of_list(b1.get("/customers/", query_string={"q": q}).get_data(as_text=True)) == expected, q
    download = b1.get(f"/archives/attachments/{flow.ids['att_b']}")
    assert download.status_code == 200 and download.get_data().startswith(b"%PDF")
    assert all(c not in result.output for c in CANARIES)
