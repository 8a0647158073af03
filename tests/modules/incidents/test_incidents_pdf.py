"""Notice letters (per customer and as one batch) and the incident report of a closed ticket,
read back with poppler: Chinese in an embedded CJK font, masked names, markup printed literally."""
import subprocess
import uuid

import pytest
from sqlalchemy import select

from core.db import db

pytestmark = pytest.mark.pdf

NOTICE = {"notice_what": "员工误将含客户信息的表格<b>发送</b>至外部邮箱", "notice_harm": "可能收到诈骗电话",
          "notice_measures": "已要求对方删除并确认", "notice_advice": "请警惕冒充本公司的来电",
          "notice_contact": "客服热线 400-000-0000"}


def _poppler(tmp_path, tool, data):
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(data)
    args = [tool, "-enc", "UTF-8", str(path), "-"] if tool == "pdftotext" else [tool, str(path)]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def _cjk_embedded(tmp_path, data):
    """Every font embedded with a Unicode map, the CJK one among them and no DejaVu fallback."""
    rows = _poppler(tmp_path, "pdffonts", data).splitlines()[2:]
    assert rows and all(" yes yes yes " in row for row in rows), rows
    assert any("KehuCJK" in row for row in rows) and not any("DejaVu" in row for row in rows), rows
    return True


def _ticket(inc, make_customer):
    a = make_customer("sales1", name="周大福", phone="13800138041")
    b = make_customer("sales1", name="吴小二", phone="13800138042")
    incident_id = inc.report(description="<script>x</script>描述")
    sec = inc.security()
    sec.post(f"/incidents/{incident_id}/assess", data={"severity": "larger", "data_classes": ["l1", "l2"], "triage_note": "研判"})
    sec.post(f"/incidents/{incident_id}/affected", data={"lines": "13800138041\n13800138042"})
    sec.post(f"/incidents/{incident_id}/notice-text", data=NOTICE)
    return incident_id, sec, (a, b)


def test_notice_letters_per_customer_and_batch(inc, make_customer, tmp_path):
    incident_id, sec, (a, _b) = _ticket(inc, make_customer)
    with inc.app.app_context():
        from modules.incidents.models import Affected
        affected_id = db.session.scalar(select(Affected.id).where(Affected.customer_id == a))
    one = sec.get(f"/incidents/{incident_id}/affected/{affected_id}/notice.pdf")
    assert one.status_code == 200 and one.mimetype == "application/pdf"
    text = _poppler(tmp_path, "pdftotext", one.data)
    for expected in ("个人信息安全事件告知书", "周**", "一般个人信息（L1）", "敏感个人信息（L2）", "已要求对方删除并确认",
                     "请警惕冒充本公司的来电", "客服热线 400-000-0000", "<b>发送</b>", "可能收到诈骗电话"):
        assert expected in text, expected
    assert "周大福" not in text and "吴" not in text
    assert _cjk_embedded(tmp_path, one.data)
    batch = sec.get(f"/incidents/{incident_id}/notices.pdf")
    text = _poppler(tmp_path, "pdftotext", batch.data)
    assert "周**" in text and "吴**" in text and text.count("编号：SJ-") == 2
    assert "第2页/共2页" in text  # one page per letter
    with inc.app.app_context():
        from core.audit import AuditEntry
        assert len(db.session.scalars(select(AuditEntry).where(AuditEntry.action == "incidents.notice.printed")).all()) == 2


def test_incident_report_pdf_only_when_closed(inc, make_customer, tmp_path):
    incident_id, sec, _ids = _ticket(inc, make_customer)
    assert sec.get(f"/incidents/{incident_id}/report.pdf").status_code == 302
    with inc.app.app_context():
        from modules.incidents.models import Affected
        for row in db.session.scalars(select(Affected).where(Affected.incident_id == incident_id)):
            row.status = "sent"
        db.session.commit()
    sec.post(f"/incidents/{incident_id}/regulator", data={"reported_at": "2026-01-05T12:00", "regulator_note": "报省网信办"})
    for to_status in ("contained", "investigated", "notified"):
        sec.post(f"/incidents/{incident_id}/advance", data={"to_status": to_status, "note": f"步骤{to_status}"})
    sec.post(f"/incidents/{incident_id}/close", data={"root_cause": "外发未审批", "measures": "收回文件",
                                                      "improvements": "外发审批<i>上线</i>", "responsible": "李主管"})
    response = sec.get(f"/incidents/{incident_id}/report.pdf")
    assert response.status_code == 200
    text = _poppler(tmp_path, "pdftotext", response.data)
    for expected in ("信息安全事件报告", "较大", "<script>x</script>描述", "步骤contained", "外发未审批",
                     "外发审批<i>上线</i>", "李主管", "已通知", "2026-01-05 12:00"):
        assert expected in text, expected
    assert _cjk_embedded(tmp_path, response.data)
    assert inc.as_("head1", "head", "D1").get(f"/incidents/{incident_id}/report.pdf").status_code == 403
