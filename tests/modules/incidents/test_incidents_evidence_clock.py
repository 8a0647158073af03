"""Evidence from the audit trail (reveals, exports, PDFs of one account in a window), and the
regulator-report clock: deadline per severity, countdown, overdue highlight and the badge."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core import audit
from core.db import db
from core.models import User, utcnow


def _local(dt):
    return (dt + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M")


def test_evidence_found_from_the_ticket_and_linked(inc, make_user):
    incident_id = inc.report()
    leaker = make_user("leaker", "sales", "D1")
    with inc.app.test_request_context():
        who = db.session.get(User, leaker)
        audit.record("customers.field.revealed", actor=who, target_type="customers_customer", target_id=7, field="id_number")
        audit.record("customers.export.completed", actor=who, rows=500)
        audit.record("archives.form.printed", actor=who, target_type="customers_customer", target_id=7)
        audit.record("customers.customer.viewed", actor=who, target_type="customers_customer", target_id=7)
        db.session.commit()
    now = utcnow()
    sec = inc.security()
    query = {"username": "leaker", "since": _local(now - timedelta(hours=1)), "until": _local(now + timedelta(hours=1))}
    page = sec.get(f"/incidents/{incident_id}/evidence", query_string=query).get_data(as_text=True)
    for action in ("customers.field.revealed", "customers.export.completed", "archives.form.printed"):
        assert action in page
    assert "customers.customer.viewed" not in page
    only_reveals = sec.get(f"/incidents/{incident_id}/evidence", query_string={**query, "kinds": "reveals"}).get_data(as_text=True)
    assert "customers.field.revealed" in only_reveals and "archives.form.printed" not in only_reveals
    earlier = {**query, "until": _local(now - timedelta(minutes=30))}
    assert "customers.field.revealed" not in sec.get(f"/incidents/{incident_id}/evidence", query_string=earlier).get_data(as_text=True)
    with inc.app.app_context():
        from core.audit import AuditEntry
        ids = db.session.scalars(select(AuditEntry.id).where(AuditEntry.actor == "leaker")).all()
    response = sec.post(f"/incidents/{incident_id}/evidence/link", data={**query, "entry": [str(i) for i in ids]})
    assert response.status_code == 302
    page = sec.get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert page.split('id="evidence-list"')[1].count("<tr>") == 1 + 3  # header + the three found
    with inc.app.app_context():
        from core.audit import AuditEntry
        actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("incidents.evidence.%"))).all()
        assert "incidents.evidence.searched" in actions and "incidents.evidence.linked" in actions
    # not for the reporter
    assert inc.as_("reporter").get(f"/incidents/{incident_id}/evidence", query_string=query).status_code == 403


def _incident(severity, noticed_hours_ago, **kw):
    from modules.incidents.models import Incident
    return Incident(severity=severity, noticed_at=utcnow() - timedelta(hours=noticed_hours_ago), status="triaged", **kw)


def test_deadline_per_severity_with_configured_hours(app, ctx):
    from modules.incidents import services
    noticed = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)
    from modules.incidents.models import Incident
    assert services.report_deadline(Incident(severity="larger", noticed_at=noticed)) == noticed + timedelta(hours=4)
    assert services.report_deadline(Incident(severity="especially_major", noticed_at=noticed)) == noticed + timedelta(hours=4)
    assert services.report_deadline(Incident(severity="general", noticed_at=noticed)) is None
    assert services.report_deadline(Incident(severity=None, noticed_at=noticed)) == noticed + timedelta(hours=4)
    app.config["INCIDENTS_REPORT_HOURS"] = {"especially_major": 1, "general": 24}
    assert services.report_deadline(Incident(severity="especially_major", noticed_at=noticed)) == noticed + timedelta(hours=1)
    assert services.report_deadline(Incident(severity="general", noticed_at=noticed)) == noticed + timedelta(hours=24)
    assert services.report_deadline(Incident(severity=None, noticed_at=noticed)) == noticed + timedelta(hours=1)


def test_countdown_and_overdue(app, ctx):
    from modules.incidents import services
    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    from modules.incidents.models import Incident
    running = services.clock(Incident(severity="major", status="triaged", noticed_at=now - timedelta(minutes=90)), now)
    assert (running.state, running.minutes) == ("running", 150)
    overdue = services.clock(Incident(severity="major", status="triaged", noticed_at=now - timedelta(hours=5)), now)
    assert (overdue.state, overdue.minutes) == ("overdue", 60)
    done = Incident(severity="major", status="triaged", noticed_at=now - timedelta(hours=5), regulator_reported_at=now)
    assert services.clock(done, now).state == "done"
    assert services.clock(Incident(severity="general", status="triaged", noticed_at=now), now).state == "none"


@pytest.mark.parametrize("severity,hours,overdue", [("major", 5, True), ("major", 3, False), ("general", 50, False),
                                                     (None, 5, True)])
def test_overdue_tickets_highlighted_and_counted_in_the_security_badge(inc, severity, hours, overdue):
    incident_id = inc.report(noticed_at=_local(utcnow() - timedelta(hours=hours)))
    with inc.app.app_context():
        from modules.incidents.models import Incident
        db.session.get(Incident, incident_id).severity = severity
        db.session.commit()
    sec = inc.security()
    home = sec.get("/").get_data(as_text=True)
    assert ('id="badge-incidents-index">1<' in home) == overdue
    row = sec.get("/incidents/").get_data(as_text=True).split(f'id="incident-{incident_id}"')[1][:40]
    assert ("table-danger" in row) == overdue
    assert (f'id="incident-{incident_id}"' in sec.get("/incidents/?overdue=1").get_data(as_text=True)) == overdue
    # the reporter sees no badge
    assert 'id="badge-incidents-index"' not in inc.as_("reporter").get("/").get_data(as_text=True)
