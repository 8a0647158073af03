"""Attachments: content-checked, size-limited, encrypted at rest, served only through the
authorised endpoint, gone with the customer's data key."""
import base64
import io
import os
import re
import uuid
import zipfile
from pathlib import Path

import pytest

from core import crypto
from core.db import db
from tests.conftest import both_suites

MIB = 1024 * 1024


def pdf_bytes(body=b"hello"):
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + body + b"\n%%EOF\n"


def uploads_dir(app):
    return Path(app.config["UPLOAD_FOLDER"]) / "archives"


def office_zip(main_type, extra=None):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"><Override PartName="/main.xml" ContentType="'
            f'{main_type}"/></Types>'))
        archive.writestr("main.xml", "<x/>")
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"


@both_suites
def test_pdf_upload_is_encrypted_at_rest_and_downloads_intact(arch, app):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    canary = f"KEHU-ATTACHMENT-CANARY-{uuid.uuid4().hex}"
    name_canary = f"客户身份证复印件{uuid.uuid4().hex[:8]}"
    content = arch.pdf_bytes(canary.encode() * 50)
    client = arch.client("sales1")
    page = arch.post_file(client, doc_id, content, f"{name_canary}.pdf")
    assert page.status_code == 200
    [att] = arch.attachment_rows()
    assert att.kind == "pdf" and att.size == len(content)

    # on disk: one file, a random name, mode 0600, folder 0700, no user file name
    files = arch.stored_files()
    assert len(files) == 1 and re.fullmatch(r"[0-9a-f]{32}", files[0])
    path = uploads_dir(app) / files[0]
    assert path.stat().st_mode & 0o777 == 0o600
    assert uploads_dir(app).stat().st_mode & 0o777 == 0o700

    # the canaries appear nowhere in the instance folder (database, WAL, uploads), in any encoding
    needles = [canary.encode(), canary.encode("utf-16-le"), base64.b64encode(content[:60]),
               base64.b64encode(canary.encode()), name_canary.encode(), name_canary.encode("gbk")]
    instance = Path(app.config["INSTANCE_PATH"])
    with app.app_context():
        db.session.remove()
        db.engine.dispose()  # close connections so the WAL is what another reader would see
    for file in instance.rglob("*"):
        if file.is_file():
            raw = file.read_bytes()
            for needle in needles:
                assert needle not in raw, f"{needle[:30]!r} in {file}"

    response = client.get(f"/archives/attachments/{att.id}")
    assert response.status_code == 200
    assert response.data == content
    assert response.mimetype == "application/pdf"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''" in disposition
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]
    assert "archives.attachment.downloaded" in arch.audit_actions()


@pytest.mark.parametrize("header, what", [
    (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "windows"),
    (b"\x7fELF\x02\x01\x01\x00", "linux"),
])
def test_disguised_executable_is_refused_with_a_clear_message(arch, app, header, what):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    client = arch.client("sales1")
    page = arch.post_file(client, doc_id, header + os.urandom(2048), "合同扫描件.pdf")
    html = page.get_data(as_text=True)
    assert "可执行程序" in html  # "This file is a program (an executable), not a document"
    assert arch.attachment_rows() == [] and arch.stored_files() == []


def test_disguised_executable_in_the_new_document_form_stores_nothing(arch, app):
    from modules.archives.models import Document
    cid = arch.customer()
    client = arch.client("sales1")
    response = client.post(f"/archives/{cid}/new", data={
        "doc_type": "contract", "title": "合同", "doc_date": "2026-03-31", "keeper_id": str(arch.ids["sales1"]),
        "attachment": arch.upload(b"MZ" + b"\x00" * 100, "contract.pdf"),
    }, content_type="multipart/form-data")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="attachment-error"' in html and "可执行程序" in html
    with app.app_context():
        assert db.session.query(Document).count() == 0
    assert arch.attachment_rows() == [] and arch.stored_files() == []


def test_oversized_file_is_refused_with_a_clear_message(arch, app):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    client = arch.client("sales1")
    page = arch.post_file(client, doc_id, arch.pdf_bytes(b"x" * (10 * MIB)), "big.pdf")  # default limit: 10 MiB
    html = page.get_data(as_text=True)
    assert "10 MiB" in html and "上限" in html
    assert arch.attachment_rows() == [] and arch.stored_files() == []


@pytest.mark.parametrize("content, name, kind", [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64, "照片.JPG", "jpeg"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "scan.png", "png"),
    (office_zip(DOCX), "合同.docx", "docx"),
    (office_zip(XLSX), "对账单.xlsx", "xlsx"),
    (pdf_bytes(), "no-extension", "pdf"),
])
def test_allowed_kinds_are_recognised_by_content(arch, app, content, name, kind):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    arch.post_file(arch.client("sales1"), doc_id, content, name)
    [att] = arch.attachment_rows()
    assert att.kind == kind
    with app.app_context():
        from modules.archives.models import Attachment
        assert db.session.get(Attachment, att.id).filename.lower().endswith(
            {"jpeg": ".jpg", "png": ".png", "docx": ".docx", "xlsx": ".xlsx", "pdf": ".pdf"}[kind])


@pytest.mark.parametrize("content, name, message", [
    (b"<html><script>alert(1)</script></html>", "page.pdf", "只接受"),  # HTML named .pdf
    (b"GIF89a\x01\x00", "a.gif", "只接受"),
    (office_zip("application/zip"), "x.docx", "不是 Word"),  # a zip, but no Office main part
    (office_zip(DOCX, {"word/vbaProject.bin": "x"}), "macro.docx", "宏"),
    (b"PK\x03\x04broken", "broken.xlsx", "不是 Word"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, "scan.pdf", ".pdf"),  # the name contradicts the content
    (pdf_bytes(), "invoice\u202efdp.exe", ".exe"),  # right-to-left override trick
    (b"", "empty.pdf", "空"),
])
def test_refused_files_store_nothing(arch, app, content, name, message):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    html = arch.post_file(arch.client("sales1"), doc_id, content, name).get_data(as_text=True)
    assert message in html
    assert arch.attachment_rows() == [] and arch.stored_files() == []


@pytest.mark.parametrize("name, expected", [
    ("../../instance/kehu.db.pdf", "kehu.db.pdf"),
    ("C:\\Users\\张三\\合同 (2026).pdf", "合同 (2026).pdf"),
    ("CON.pdf", "_CON.pdf"),
    ('a"b<c>d|e?.pdf', "a_b_c_d_e_.pdf"),
    ("x" * 300 + ".pdf", "x" * 100 + ".pdf"),
    ("合同\x00.pdf", "合同.pdf"),
])
def test_download_name_is_sanitised(arch, app, name, expected):
    from modules.archives.services import sanitise_filename
    assert sanitise_filename(name, "pdf") == expected


def test_download_is_refused_outside_the_remit(arch, app):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    arch.post_file(arch.client("sales1"), doc_id, arch.pdf_bytes(), "a.pdf")
    [att] = arch.attachment_rows()
    for name in ("sales1b", "head2", "sales2"):
        assert arch.client(name).get(f"/archives/attachments/{att.id}").status_code == 404
    assert arch.client("sales3").get(f"/archives/attachments/{att.id}").status_code == 404  # module off
    assert arch.client("head1").get(f"/archives/attachments/{att.id}").status_code == 200
    anonymous = app.test_client().get(f"/archives/attachments/{att.id}")
    assert anonymous.status_code in (302, 401)


@both_suites
def test_deleting_removes_the_file(arch, app):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    client = arch.client("sales1")
    arch.post_file(client, doc_id, arch.pdf_bytes(), "a.pdf")
    arch.post_file(client, doc_id, arch.pdf_bytes(b"2"), "b.pdf")
    first, second = arch.attachment_rows()
    assert len(arch.stored_files()) == 2
    assert client.post(f"/archives/attachments/{first.id}/delete").status_code == 302
    assert arch.stored_files() == [second.stored_name]
    assert client.post(f"/archives/documents/{doc_id}/delete").status_code == 302
    assert arch.stored_files() == [] and arch.attachment_rows() == []
    assert "archives.attachment.deleted" in arch.audit_actions()


@both_suites
def test_destroying_the_customers_data_key_makes_attachments_unreadable(arch, app):
    from modules.customers import Customer
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    client = arch.client("sales1")
    arch.post_file(client, doc_id, arch.pdf_bytes(b"secret"), "a.pdf")
    [att] = arch.attachment_rows()
    with app.app_context():
        customer = db.session.get(Customer, cid)
        crypto.destroy_subject_key(customer.subject_key)
        db.session.commit()
    response = client.get(f"/archives/attachments/{att.id}")
    assert response.status_code == 410
    assert b"secret" not in response.data
    page = client.get(f"/archives/documents/{doc_id}")
    assert page.status_code == 200  # the document page still works, the name shows as unreadable
