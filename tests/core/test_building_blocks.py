"""The shared building blocks of the public core API that modules use instead of copies: the
encrypted field, the PDF response, `can()` in templates, and the make_customer test helper."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from flask import get_flashed_messages, render_template_string
from flask_login import login_user
from jinja2 import FileSystemLoader
from sqlalchemy import select

from core import api, pdf
from core.audit import AuditEntry
from core.db import db
from core.models import User

PDF_TEMPLATES = Path(__file__).parent / "pdf_templates"


# --- Encrypted ---------------------------------------------------------------------------------

class Row:
    """Any object with a table name, a uid and a data key can carry encrypted fields."""

    __tablename__ = "test_row"

    def __init__(self, key):
        self.uid, self.note_ct, self.phone_ct, self.phone_bidx, self._key = None, None, None, None, key

    def data_key(self):
        return self._key

    note = api.Encrypted()
    phone = api.Encrypted(search_domain="phone")


def test_an_encrypted_field_stores_ciphertext_bound_to_its_row_and_field(app):
    with app.app_context():
        key = api.crypto.new_subject_key()
        row, other = Row(key), Row(key)
        row.note, row.phone = "客户说明：张三 13800138000", "13800138000"
        assert row.uid and row.note_ct.startswith(api.crypto.suite().prefix) and "13800138000" not in row.note_ct
        assert row.note == "客户说明：张三 13800138000"
        assert row.phone_bidx in api.crypto.blind_index_candidates("phone", "13800138000")
        other.note_ct = row.note_ct  # copied to another row: refused, never garbage
        with pytest.raises(api.crypto.DecryptionError):
            other.note  # noqa: B018
        row.note_ct, row.phone_ct = row.phone_ct, row.note_ct  # swapped between fields: refused too
        with pytest.raises(api.crypto.DecryptionError):
            row.note  # noqa: B018
        row.phone = ""
        assert (row.phone_ct, row.phone_bidx, row.phone) == (None, None, None)
        db.session.rollback()


# --- pdf.response ------------------------------------------------------------------------------

def _pdf_view(app, user_id, **overrides):
    app.jinja_loader.loaders.append(FileSystemLoader(str(PDF_TEMPLATES)))
    with app.test_request_context("/customers/1/print"):
        login_user(db.session.get(User, user_id))
        args = {"filename": "客户档案表-KH-2026-000001.pdf", "action": "test.printed",
                "target_type": "customers_customer", "target_id": 7, "fallback": "/customers/7",
                "audit_details": {"pages": 1}, "title": "测试表", "name": "张三", "address": "北京",
                "note": "<b>不是标记</b>", "rows": [("2026-12-01", "回访")]}
        args.update(overrides)
        response = pdf.response("pdftest/form.html", **args)
        return response, get_flashed_messages()


def _entries(app):
    with app.app_context():
        return db.session.execute(select(AuditEntry).where(AuditEntry.action == "test.printed")).scalars().all()


@pytest.mark.pdf
def test_a_pdf_view_is_one_call_audited_uncached_with_a_chinese_file_name(app, make_user, tmp_path):
    user_id = make_user("printer", "sales", "D1")
    response, flashed = _pdf_view(app, user_id)
    assert response.status_code == 200 and response.mimetype == "application/pdf" and flashed == []
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('inline; filename="KH-2026-000001.pdf"')
    assert "filename*=UTF-8''%E5%AE%A2%E6%88%B7%E6%A1%A3%E6%A1%88%E8%A1%A8-KH-2026-000001.pdf" in disposition
    assert response.headers["Cache-Control"] == "no-store"
    path = tmp_path / "out.pdf"
    path.write_bytes(response.get_data())
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "测试表" in text and "<b>不是标记</b>" in text
    [entry] = _entries(app)
    assert (entry.result, entry.actor, entry.target_type, entry.target_id) == ("ok", "printer", "customers_customer", "7")
    assert entry.details_dict == {"pages": 1, "size": len(response.get_data())}


def test_a_failed_pdf_is_audited_and_sends_the_user_back_with_the_reason(app, make_user, monkeypatch):
    user_id = make_user("printer", "sales", "D1")

    def broken(template_name, **context):
        raise pdf.PdfBusy("renderer pool full")

    monkeypatch.setattr(pdf, "render", broken)
    response, flashed = _pdf_view(app, user_id)
    assert response.status_code == 302 and response.headers["Location"] == "/customers/7"
    assert flashed == ["正在生成的 PDF 文档过多，请稍后再试。"]  # the translated reason, not the detail
    [entry] = _entries(app)
    assert (entry.result, entry.target_id) == ("failed", "7")


# --- can() in templates ------------------------------------------------------------------------

@pytest.mark.parametrize(("role", "dept", "expected"), [("sales", "D1", "yes"), ("admin", None, "no")])
def test_templates_ask_can_for_the_signed_in_user(app, make_user, role, dept, expected):
    user_id = make_user(f"u_{role}", role, dept)
    with app.test_request_context("/"):
        login_user(db.session.get(User, user_id))
        page = render_template_string("{{ 'yes' if can('customers.view') else 'no' }}")
    assert page == expected
    with app.test_request_context("/"):  # nobody signed in: no
        assert render_template_string("{{ 'yes' if can('customers.view') else 'no' }}") == "no"


# --- make_customer -----------------------------------------------------------------------------

def test_make_customer_creates_a_customer_with_consent_in_the_owners_department(app, make_customer):
    from modules.customers.models import Consent, Customer
    person = make_customer("sales9", name="李四", phone="13800138000", id_number="11010519491231002X")
    org = make_customer("sales9", kind="org", company_name="华信科技有限公司")
    with app.test_request_context():
        customer = db.session.get(Customer, person)
        assert (customer.name, customer.phone, customer.owner.username) == ("李四", "+8613800138000", "sales9")
        consents = db.session.execute(select(Consent).where(Consent.customer_id == person)).scalars().all()
        assert [c.sensitive for c in consents] == [True]
        assert db.session.get(Customer, org).company_name == "华信科技有限公司"
