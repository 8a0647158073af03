"""The archive form PDF (客户档案表) through core.pdf: Chinese text in an embedded Noto Sans CJK
font, page numbers, masked personal data, user text printed literally, 404 outside the remit."""
import os
import re
import subprocess
import time
import uuid
from io import BytesIO
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader
from pypdf.generic import StreamObject

from core.db import db
from tests.conftest import both_suites

pytestmark = pytest.mark.pdf

ID_NUMBER = "11010519491231002X"
HOME = "北京市朝阳区望京街道幸福小区8号楼"


@pytest.fixture
def config_overrides():
    return {"COMPANY_NAME": "华信客户服务有限公司"}


def write(tmp_path, data):
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(data)
    return path


def pdftotext(tmp_path, data):
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(write(tmp_path, data)), "-"],
                          capture_output=True, text=True, check=True).stdout


def pdffonts(tmp_path, data):
    lines = subprocess.run(["pdffonts", str(write(tmp_path, data))], capture_output=True, text=True,
                           check=True).stdout.splitlines()[2:]
    rows = []
    for line in lines:
        match = re.match(r"(\S+)\s+(.+?)\s+(\S+)\s+(yes|no)\s+(yes|no)\s+(yes|no)\s+\d+\s+\d+$", line)
        assert match, line
        rows.append({"name": match[1], "emb": match[4], "uni": match[6]})
    return rows


def embedded_programs(data):
    """PostScript names of the embedded font programs (pdffonts shows only the @font-face alias)."""
    names = set()
    for page in PdfReader(BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            descriptor = font.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
            program = descriptor.get("/FontFile3") or descriptor.get("/FontFile2")
            names.add(TTFont(BytesIO(program.get_object().get_data()))["name"].getDebugName(6))
    return names


def everything(data):
    reader = PdfReader(BytesIO(data))
    chunks = [data]
    for num in range(1, int(reader.trailer["/Size"])):
        try:
            obj = reader.get_object(num)
        except Exception:  # sparse object numbers
            continue
        if isinstance(obj, StreamObject):
            chunks.append(obj.get_data())
    return b"\n".join(chunks)


def squeeze(text):
    return re.sub(r"\s+", "", text)


@pytest.fixture
def customer_with_archive(arch, app):
    from modules.customers import Customer
    cid = arch.customer(owner="sales1", name="王小明")
    with app.app_context():
        customer = db.session.get(Customer, cid)
        customer.id_number = ID_NUMBER  # L2
        customer.home_address = HOME  # L3
        db.session.commit()
    arch.document(cid, doc_type="basic_info", title="客户基本信息登记表")
    arch.document(cid, doc_type="contract", title='<img src="file:///etc/passwd">', amount="8800.50",
                  storage_location='<link rel=attachment href="file:///etc/hostname">')
    return cid


@both_suites
def test_archive_form_pdf(arch, app, customer_with_archive, tmp_path):
    cid = customer_with_archive
    client = arch.client("sales1")
    started = time.monotonic()
    response = client.get(f"/archives/{cid}/form.pdf")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "application/pdf"
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    data = response.data
    assert data.startswith(b"%PDF-")

    text = pdftotext(tmp_path, data)
    flat = squeeze(text)
    for word in ("客户档案表", "王小明", "客户基本信息登记表", "华信客户服务有限公司", "档案文件登记", "8,800.50",
                 arch.customer_number(cid)):
        assert squeeze(word) in flat, word
    assert "第1页/共1页" in flat
    assert re.search(r"打印时间：\d{4}-\d\d-\d\d\d\d:\d\d", flat)

    # masked: the L2 ID number and the L3 home address never appear in clear
    assert ID_NUMBER not in flat and ID_NUMBER[6:14] not in flat
    assert squeeze(HOME) not in flat and "幸福小区" not in flat

    # user text is printed literally and fetched nothing
    assert squeeze('<img src="file:///etc/passwd">') in flat
    assert squeeze('<link rel=attachment href="file:///etc/hostname">') in flat
    raw = everything(data)
    assert b"root:x:0:0" not in raw
    hostname = Path("/etc/hostname").read_bytes().strip()
    if len(hostname) >= 6:
        assert hostname not in raw
    root = PdfReader(BytesIO(data)).trailer["/Root"]
    assert "/EmbeddedFiles" not in root.get("/Names", {})

    # a real CJK font, embedded: not just text that pdftotext can read from empty boxes
    fonts = pdffonts(tmp_path, data)
    assert fonts and all(row["emb"] == "yes" and row["uni"] == "yes" for row in fonts), fonts
    assert not any("DejaVu" in row["name"] for row in fonts)
    programs = embedded_programs(data)
    assert programs and all(name.startswith("NotoSansCJKsc-") for name in programs), programs

    assert "archives.form.printed" in arch.audit_actions()
    print(f"\narchive form PDF: {len(data)} bytes in {elapsed:.2f} s")
    assert elapsed < 20


def test_archive_form_pdf_runs_to_several_pages(arch, app, tmp_path):
    cid = arch.customer(owner="sales1", name="多页客户")
    for i in range(60):
        arch.document(cid, doc_type="order", title=f"第{i}号订单", amount=str(i))
    data = arch.client("sales1").get(f"/archives/{cid}/form.pdf").data
    reader = PdfReader(BytesIO(data))
    assert len(reader.pages) >= 2
    last = len(reader.pages)
    for number, page in enumerate(reader.pages, start=1):
        page_text = page.extract_text()
        assert f"第 {number} 页" in page_text and f"共 {last} 页" in page_text
        if "号订单" in page_text:
            assert "档案编号" in page_text  # the register's header repeats on each of its pages


def test_no_pdf_outside_the_remit(arch, app, customer_with_archive):
    cid = customer_with_archive
    for name in ("sales1b", "head2", "sales2", "sales3"):
        response = arch.client(name).get(f"/archives/{cid}/form.pdf")
        assert response.status_code == 404, name
        assert not response.data.startswith(b"%PDF")
    assert arch.client("head1").get(f"/archives/{cid}/form.pdf").status_code == 200
    assert arch.audit_actions().count("archives.form.printed") == 1


def layout_text(tmp_path, data):
    return subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", str(write(tmp_path, data)), "-"],
                          capture_output=True, text=True, check=True).stdout


def test_archive_form_has_contacts_grade_consents_and_signature_lines(arch, app, enable_module, tmp_path):
    """An organisation with a contact, a consent and a grade: all on the form, the phone as people
    write it, document numbers, types and amounts never broken inside their cells, and no
    masked-data note when nothing is masked."""
    from modules.customers import Customer, services
    enable_module("D1", "grading")
    cid = arch.customer(owner="sales1", kind="org", company="华北示例贸易有限公司")
    with app.app_context():
        customer = db.session.get(Customer, cid)
        actor = arch.user("sales1")
        services.add_contact(actor, customer, {"name": "赵敏", "title": "采购经理", "phone": "010-88886666",
                                               "email": "zhaomin@example.com"})
        services.record_consent(actor, customer, ["service", "contract", "analysis"], "联系人信息", "paper")
        services.add_transaction(actor, customer, {"kind": "transaction", "occurred_on": "2026-11-01",
                                                   "amount": "1234567.89", "product": "设备"})
        db.session.commit()
    _id, number = arch.document(cid, doc_type="payment", title="第一期付款", amount="1234567.89")
    arch.document(cid, doc_type="after_sales", title="上门维修记录")
    data = arch.client("sales1").get(f"/archives/{cid}/form.pdf").data
    flat = squeeze(pdftotext(tmp_path, data))
    for word in ("赵敏", "采购经理", "010-88886666", "zhaomin@example.com", "客户分级", "一般",
                 "同意记录", "提供产品与服务、订立和履行合同", "纸质签字", "有效",
                 "客户签字", "经办人签字", "审核人签字"):
        assert squeeze(word) in flat, word
    assert "脱敏" not in flat  # nothing masked on this form: no note
    layout = layout_text(tmp_path, data)
    register = [line for line in layout.splitlines() if "第一期付款" in line]
    assert register, layout
    assert number in register[0] and "1,234,567.89" in register[0] and "付款凭证" in register[0]
    assert any("售后记录" in line for line in layout.splitlines())
    if os.environ.get("KEHU_PDF_SAMPLE"):
        Path(os.environ["KEHU_PDF_SAMPLE"]).write_bytes(data)


def test_masked_note_only_when_something_is_masked(arch, app, customer_with_archive, tmp_path):
    data = arch.client("sales1").get(f"/archives/{customer_with_archive}/form.pdf").data
    assert "脱敏" in squeeze(pdftotext(tmp_path, data))
