"""The workflow 已报告 → 已研判 → 已控制 → 已调查 → 已通知 → 已关闭: each step allowed in order for
the security role, with who, when and what; skipped, repeated or premature steps refused and
audited; closing needs the summary."""
from sqlalchemy import select

from core.audit import AuditEntry
from core.db import db

ASSESS = {"severity": "larger", "data_classes": ["l1", "l2"], "estimated_count": "120", "triage_note": "研判：涉及手机号"}
NOTICE = {"notice_what": "员工误发邮件", "notice_harm": "可能收到骚扰电话", "notice_measures": "已要求删除",
          "notice_advice": "警惕陌生来电", "notice_contact": "400-000-0000"}
SUMMARY = {"root_cause": "未加密发送", "measures": "撤回邮件", "improvements": "启用外发审批", "responsible": "张经理"}


def _post(client, incident_id, path, data):
    return client.post(f"/incidents/{incident_id}/{path}", data=data)


def _flash(client, incident_id):
    return client.get(f"/incidents/{incident_id}").get_data(as_text=True)


def test_each_transition_in_order_with_who_when_and_what(inc, make_customer):
    customer = make_customer("sales1", name="王五", phone="13800138011")
    incident_id = inc.report()
    sec = inc.security()
    # skipping triage is refused
    assert _post(sec, incident_id, "advance", {"to_status": "contained", "note": "x"}).status_code == 302
    assert inc.incident(incident_id).status == "reported"
    assert _post(sec, incident_id, "assess", ASSESS).status_code == 302
    row = inc.incident(incident_id)
    assert (row.status, row.severity, row.data_classes, row.estimated_count) == ("triaged", "larger", "l1,l2", 120)
    # triage cannot be repeated as a transition, and notifying before containing is refused
    assert _post(sec, incident_id, "advance", {"to_status": "notified", "note": "x"}).status_code == 302
    assert inc.incident(incident_id).status == "triaged"
    for to_status in ("contained", "investigated"):
        assert _post(sec, incident_id, "advance", {"to_status": to_status, "note": f"已{to_status}"}).status_code == 302
        assert inc.incident(incident_id).status == to_status
    # notifying: pending customers, missing notice text and the missing regulator report refuse it
    sec.post(f"/incidents/{incident_id}/affected", data={"lines": "13800138011"})
    assert _post(sec, incident_id, "advance", {"to_status": "notified", "note": "已通知"}).status_code == 302
    assert "1 名受影响客户尚未通知" in _flash(sec, incident_id)
    with inc.app.app_context():
        from modules.incidents.models import Affected
        affected_id = db.session.scalar(select(Affected.id).where(Affected.customer_id == customer))
    sec.post(f"/incidents/{incident_id}/affected/{affected_id}", data={f"a{affected_id}-channel": "sms",
                                                                         f"a{affected_id}-status": "sent"})
    assert _post(sec, incident_id, "advance", {"to_status": "notified", "note": "已通知"}).status_code == 302
    assert "请先填写告知书内容" in _flash(sec, incident_id)
    _post(sec, incident_id, "notice-text", NOTICE)
    assert _post(sec, incident_id, "advance", {"to_status": "notified", "note": "已通知"}).status_code == 302
    assert "请先记录向监管部门的报告" in _flash(sec, incident_id)
    _post(sec, incident_id, "regulator", {"reported_at": "2026-01-05T12:00", "regulator_note": "报省网信办"})
    assert _post(sec, incident_id, "advance", {"to_status": "notified", "note": "已通知"}).status_code == 302
    assert inc.incident(incident_id).status == "notified"
    # closing needs the whole summary
    assert _post(sec, incident_id, "close", {**SUMMARY, "responsible": ""}).status_code == 400
    assert inc.incident(incident_id).status == "notified"
    assert _post(sec, incident_id, "close", SUMMARY).status_code == 302
    row = inc.incident(incident_id)
    assert row.status == "closed" and row.closed_at is not None
    # nothing moves after closing
    assert _post(sec, incident_id, "assess", ASSESS).status_code == 302
    assert _post(sec, incident_id, "close", SUMMARY).status_code == 302
    page = _flash(sec, incident_id)
    for text in ("已研判", "已控制", "已调查", "已通知", "已关闭", "研判：涉及手机号", "未加密发送", "sec"):
        assert text in page
    with inc.app.app_context():
        from modules.incidents.models import Step
        steps = db.session.scalars(select(Step).where(Step.incident_id == incident_id).order_by(Step.id)).all()
        assert [s.to_status for s in steps] == ["reported", "triaged", "contained", "investigated", "notified", "closed"]
        assert all(s.at is not None and s.actor_id for s in steps)
        actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "incidents_incident",
                                                                     AuditEntry.target_id == str(incident_id))).all()
        assert actions.count("incidents.incident.refused") >= 5
        assert {"incidents.incident.triaged", "incidents.incident.advanced", "incidents.incident.closed",
                "incidents.regulator.reported", "incidents.affected.updated"} <= set(actions)
        details = db.session.scalars(select(AuditEntry.details).where(AuditEntry.target_id == str(incident_id))).all()
        assert not any("未加密发送" in d or "员工误发邮件" in d for d in details)


def test_a_general_incident_needs_no_regulator_report(inc):
    incident_id = inc.report()
    sec = inc.security()
    _post(sec, incident_id, "assess", {**ASSESS, "severity": "general"})
    for to_status in ("contained", "investigated", "notified"):
        _post(sec, incident_id, "advance", {"to_status": to_status, "note": "ok"})
    assert inc.incident(incident_id).status == "notified"


def test_triage_needs_severity_classes_and_a_note(inc):
    incident_id = inc.report()
    sec = inc.security()
    assert _post(sec, incident_id, "assess", {**ASSESS, "data_classes": []}).status_code == 400
    assert _post(sec, incident_id, "assess", {**ASSESS, "severity": "huge"}).status_code == 400
    assert _post(sec, incident_id, "assess", {**ASSESS, "triage_note": ""}).status_code == 302
    assert inc.incident(incident_id).status == "reported"


def test_heads_and_reporters_cannot_move_a_ticket(inc):
    incident_id = inc.report()
    head = inc.as_("head1", "head", "D1")
    assert _post(head, incident_id, "assess", ASSESS).status_code == 403
    assert _post(head, incident_id, "close", SUMMARY).status_code == 403
    assert inc.incident(incident_id).status == "reported"
