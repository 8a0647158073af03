"""The visit report (拜访记录表) through core.pdf: read back with pdftotext and pdffonts."""
import re
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.pdf

ID_NUMBER = "11010519491231002X"


@pytest.fixture
def config_overrides():
    return {"COMPANY_NAME": "华信客户服务有限公司"}


def _file(tmp_path, data):
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(data)
    return str(path)


def pdftotext(tmp_path, data):
    return subprocess.run(["pdftotext", "-enc", "UTF-8", _file(tmp_path, data), "-"], capture_output=True,
                          text=True, check=True).stdout


def pdffonts(tmp_path, data):
    lines = subprocess.run(["pdffonts", _file(tmp_path, data)], capture_output=True, text=True,
                           check=True).stdout.splitlines()[2:]
    rows = []
    for line in lines:
        match = re.match(r"(\S+)\s+(.+?)\s+(\S+)\s+(yes|no)\s+(yes|no)\s+(yes|no)\s+\d+\s+\d+$", line)
        assert match, line
        rows.append({"name": match[1], "emb": match[4]})
    return rows


def squeeze(text):
    return re.sub(r"\s+", "", text)


def test_the_visit_report_pdf(vw, make_customer, tmp_path, days):
    customer = make_customer("sales1", name="孙丽", id_number=ID_NUMBER)
    visit_id = vw.visit(customer, channel="video", purpose="季度经营分析会", notes="客户计划扩大采购<b>规模</b>",
                        next_step="提交报价单", next_contact_on=vw.today() + days(5))
    response = vw.client("sales1").get(f"/visits/{visit_id}/report.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert "filename*=UTF-8''" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    data = response.data
    text = squeeze(pdftotext(tmp_path, data))
    assert "拜访记录表" in text and "季度经营分析会" in text and "华信客户服务有限公司" in text
    assert "视频会议" in text and "提交报价单" in text and "孙丽" in text
    assert "客户计划扩大采购<b>规模</b>" in text  # user text printed literally
    assert ID_NUMBER not in text and "1101" in text  # the ID number masked
    fonts = pdffonts(tmp_path, data)
    assert fonts and all(f["emb"] == "yes" for f in fonts)
    assert {f["name"].split("+")[-1] for f in fonts} >= {"KehuCJK"}, fonts  # the CJK face of pdf.css
    (entry,) = vw.audit("visits.report.printed")
    assert entry.target_id == str(visit_id) and entry.details_dict["customer_id"] == customer
    assert "季度经营分析会" not in entry.details


def test_the_report_of_an_organisation_without_personal_fields(vw, tmp_path):
    visit_id = vw.visit(vw.customer3, purpose="设备巡检")
    data = vw.client("head1").get(f"/visits/{visit_id}/report.pdf").data
    text = squeeze(pdftotext(tmp_path, data))
    assert "丙方制造有限公司" in text and "设备巡检" in text and "拜访情况" in text
