"""Who sees a ticket: the reporter, the reporter's department head and the security officer;
everyone else gets 404 (audited). The reporter comments but cannot edit or handle."""
from sqlalchemy import select

from core import crypto
from core.audit import AuditEntry
from core.db import db


def test_visibility_per_role(inc):
    incident_id = inc.report("reporter", "sales", "D1")
    url = f"/incidents/{incident_id}"
    for username, role, dept, status in (
            ("reporter", "sales", "D1", 200), ("head1", "head", "D1", 200), ("sec", "security", None, 200),
            ("colleague", "sales", "D1", 404), ("service1", "service", "D1", 404), ("head2", "head", "D2", 404)):
        client = inc.as_(username, role, dept)
        assert client.get(url).status_code == status, username
        listed = f'id="incident-{incident_id}"' in client.get("/incidents/").get_data(as_text=True)
        assert listed == (status == 200), username
    with inc.app.app_context():
        denied = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "core.access.row_denied",
                                                             AuditEntry.target_type == "incidents_incident")).all()
        assert {e.actor for e in denied} == {"colleague", "service1", "head2"}


def test_reporter_comments_but_cannot_edit_or_handle(inc):
    incident_id = inc.report()
    client = inc.as_("reporter")
    assert client.post(f"/incidents/{incident_id}/comment", data={"body": "补充：已要求对方删除"}).status_code == 302
    page = client.get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert "补充：已要求对方删除" in page and 'id="assess-form"' not in page
    for path, data in (("assess", {"severity": "major", "data_classes": ["l1"], "triage_note": "x"}),
                       ("advance", {"to_status": "contained", "note": "x"}),
                       ("regulator", {"reported_at": "2026-01-05T10:00", "regulator_note": "x"}),
                       ("affected", {"lines": "13800138000"})):
        assert client.post(f"/incidents/{incident_id}/{path}", data=data).status_code == 403
    assert client.get(f"/incidents/{incident_id}/report.pdf").status_code == 403
    assert inc.incident(incident_id).status == "reported"
    # a colleague cannot comment on a ticket they cannot see
    assert inc.as_("colleague").post(f"/incidents/{incident_id}/comment", data={"body": "x"}).status_code == 404


def test_security_reaches_the_module_without_a_department_and_others_need_enablement(inc, client):
    inc.report()
    assert inc.security().get("/incidents/").status_code == 200
    assert 'id="menu-incidents-index"' in client.get("/").get_data(as_text=True)
    assert inc.as_("outsider", "sales", "D3").get("/incidents/").status_code == 404


def test_description_is_encrypted_at_rest_and_markup_is_inert(inc):
    incident_id = inc.report(title="<script>alert(1)</script>标题", description="<img src=x onerror=alert(1)>秘密描述")
    with inc.app.app_context():
        raw = db.session.execute(db.text("SELECT title_ct, description_ct FROM incidents_incident WHERE id = :i"),
                                 {"i": incident_id}).one()
        assert "秘密描述" not in raw.description_ct and raw.description_ct.startswith(crypto.suite().prefix)
        assert "标题" not in raw.title_ct
        entries = db.session.scalars(select(AuditEntry.details).where(AuditEntry.action == "incidents.incident.reported")).all()
        assert entries and all("秘密描述" not in d for d in entries)
    page = inc.security().get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;标题" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;秘密描述" in page
