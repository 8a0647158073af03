"""PDFs of the feedback module read back with poppler: the blank paper form (with a QR code and
the link when one is created), the filled form; A4, CJK font embedded, company name, page
numbers; markup typed into answers printed as text and never fetched."""
import re
import subprocess
import uuid

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.db import db

from .conftest import ANSWERS, latest_version

pytestmark = pytest.mark.pdf

XSS = ('<script>alert(1)</script><img src="http://127.0.0.1:9/x.png">'
       '<link rel="stylesheet" href="file:///etc/passwd"><a href="https://evil.example/">点我</a>'
       '<style>@import url(http://127.0.0.1:9/a.css)</style>')


@pytest.fixture
def config_overrides():
    return {"COMPANY_NAME": "华信客户服务有限公司"}


def _write(tmp_path, data):
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(data)
    return path


def poppler(tmp_path, data, *command):
    return subprocess.run([*command, str(_write(tmp_path, data)), *(["-"] if command[0] == "pdftotext" else [])],
                          capture_output=True, text=True, check=True).stdout


def squeeze(text):
    return re.sub(r"\s+", "", text)


def check_pdf(tmp_path, data):
    text = poppler(tmp_path, data, "pdftotext", "-enc", "UTF-8")
    info = poppler(tmp_path, data, "pdfinfo")
    fonts = poppler(tmp_path, data, "pdffonts")
    assert re.search(r"Page size:\s+595\.\d* x 841\.\d* pts \(A4\)", info), info
    assert "CID" in fonts and re.search(r"\byes\b", fonts)
    flat = squeeze(text)
    assert "华信客户服务有限公司" in flat and "第1页" in flat and "客户信息反馈表" in flat
    return text, flat


def test_the_blank_form_for_paper(app, client, login_as, fdept, template, tmp_path):
    login_as(client, "f_sales")
    r = client.get(f"/feedback/versions/{latest_version(app, template)}/blank.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    _text, flat = check_pdf(tmp_path, r.data)
    assert "服务满意度" in flat and "产品A" in flat and "客户签字" in flat and "第1版" in flat
    with app.app_context():
        assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "feedback.form.printed")).all()


def test_the_blank_form_with_the_qr_code_of_a_new_link(app, client, login_as, fdept, customer, template, tmp_path):
    login_as(client, "f_sales")
    r = client.post(f"/feedback/customers/{customer}/link",
                    data={"version_id": latest_version(app, template), "days": 5, "output": "pdf"})
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    text, flat = check_pdf(tmp_path, r.data)
    assert "请用手机扫描二维码" in flat
    url = re.search(r"http://localhost/f/[A-Za-z0-9_-]{43}", flat).group(0)
    assert app.test_client().get(url.split("localhost")[1]).status_code == 200  # the printed link works
    from modules.feedback.services import qr_path
    with app.test_request_context():
        qr = qr_path(url)
    assert qr["size"] > 20 and re.fullmatch(r"[Mhvz0-9 -]+", qr["d"])


def test_the_filled_form_prints_markup_as_text(app, client, login_as, fdept, customer, template, tmp_path):
    login_as(client, "f_sales")
    r = client.post(f"/feedback/customers/{customer}/fill",
                    data={"template_id": template, **ANSWERS, "q1": "王先生", "q5": XSS})
    response_id = int(re.search(r"/responses/(\d+)", r.headers["Location"]).group(1))
    page = client.get(f"/feedback/responses/{response_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<img src="http://127.0.0.1:9' not in page and '<a href="https://evil.example/">' not in page
    r = client.get(f"/feedback/responses/{response_id}/form.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"  # nothing fetched: the render did not stop
    text, flat = check_pdf(tmp_path, r.data)
    assert "<script>alert(1)</script>" in text.replace("\n", "")
    assert "file:///etc/passwd" in flat and "王先生" in flat and "产品A、产品C" in flat
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "feedback.form.printed")).all()[-1]
        assert entry.result == "ok" and entry.target_id == str(response_id)
