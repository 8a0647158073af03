"""The 投诉处理单 PDF read back with poppler (text, CJK font embedded, masked ID number, markup as
text, Beijing times), and filing into the customer's archive on closing with and without archives."""
import re
import subprocess
import uuid
from io import BytesIO

import pytest
from pypdf import PdfReader

from core.db import db

from .conftest import audit_actions
from .test_complaints_workflow import XSS, step

pytestmark = pytest.mark.pdf


@pytest.fixture
def config_overrides():
    return {"COMPANY_NAME": "华信客户服务有限公司"}


def _write(tmp_path, data):
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(data)
    return path


def pdftotext(tmp_path, data):
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(_write(tmp_path, data)), "-"],
                          capture_output=True, text=True, check=True).stdout


def pdffonts(tmp_path, data):
    return subprocess.run(["pdffonts", str(_write(tmp_path, data))], capture_output=True, text=True,
                          check=True).stdout


def squeeze(text):
    return re.sub(r"\s+", "", text)


def _closed(client, cid):
    step(client, cid, "accept", comment="已受理")
    step(client, cid, "start")
    step(client, cid, "resolve", cause="包装破损", measures="换货", result="客户已收到新货", compensation="赠券50元")
    step(client, cid, "visit", satisfaction="5", visit_comment="很满意")
    return step(client, cid, "close")


def test_the_complaint_form_pdf(app, client, login_as, cdept, customer, file_complaint, complaint_row, tmp_path):
    login_as(client, "c_service")
    cid = file_complaint(client, customer, description=XSS + " 产品破损")
    step(client, cid, "accept", comment=XSS)
    r = client.get(f"/complaints/{cid}/form.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert r.headers["Cache-Control"] == "no-store"
    text = pdftotext(tmp_path, r.data)
    flat = squeeze(text)
    c = complaint_row(cid)
    assert "投诉处理单" in flat and "华信客户服务有限公司" in flat and c.number in flat
    assert "11010519491231002X" not in flat and "110105********002X" in flat  # masked ID
    assert "处理人签字" in flat and "部门负责人签字" in flat
    from modules.complaints.services import local_text
    with app.app_context():
        assert squeeze(local_text(c.created_at)) in flat  # history in Beijing time
        assert local_text(c.created_at) != c.created_at.strftime("%Y-%m-%d %H:%M")  # UTC+8
    assert "<script>alert(1)</script>" in text.replace("\n", "")  # printed as text
    fonts = pdffonts(tmp_path, r.data)
    assert "CID" in fonts and re.search(r"\byes\b", fonts)
    reader = PdfReader(BytesIO(r.data))
    assert "/EmbeddedFiles" not in str(reader.trailer["/Root"]) and "/JavaScript" not in str(reader.trailer["/Root"])
    entry = audit_actions(app, "complaints.form.printed")[-1]
    assert entry.target_id == str(cid)


def test_closing_files_the_form_into_the_archive_when_archives_is_enabled(app, client, login_as, cdept, customer,
                                                                         file_complaint, complaint_row,
                                                                         enable_module, tmp_path):
    enable_module("D1", "archives")
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    assert _closed(client, cid).status_code == 302
    c = complaint_row(cid)
    assert c.status == "closed" and c.archive_number and c.archive_number.startswith("DA-")
    import modules.archives as archives
    from modules.archives import documents_of
    with app.app_context():
        docs = documents_of(customer)
        assert [d.doc_type for d in docs] == ["complaint"] and docs[0].number == c.archive_number
        assert len(docs[0].attachments) == 1
        from modules.archives.services import read_attachment  # the test reads the stored file back
        data = read_attachment(docs[0].attachments[0])
    assert data.startswith(b"%PDF-") and c.number in squeeze(pdftotext(tmp_path, data))
    assert "complaint" in archives.DOC_TYPES
    assert audit_actions(app, "complaints.complaint.filed")


def test_closing_without_archives_files_nothing(app, client, login_as, cdept, customer, file_complaint,
                                                complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    assert _closed(client, cid).status_code == 302
    c = complaint_row(cid)
    assert c.status == "closed" and c.archive_number is None
    from modules.archives.models import Document
    with app.app_context():
        assert db.session.query(Document).count() == 0
