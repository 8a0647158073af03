"""Affected customers matched from a pasted list through the blind indexes: good lines are
added, malformed and unknown ones reported per line and kept in the box; nothing decrypted while
matching; names masked for a viewer who may not see the customer."""
import pytest
from sqlalchemy import select

from core.db import db

ID_A = "110101199003074514"


def test_pasted_list_with_malformed_and_unknown_lines(inc, make_customer, monkeypatch):
    a = make_customer("sales1", name="赵一", phone="13800138021", id_number=ID_A)
    b = make_customer("sales1", name="钱二", phone="13800138022")
    with inc.app.app_context():
        from modules.customers import Customer
        number_b = db.session.get(Customer, b).number
    incident_id = inc.report()
    sec = inc.security()
    from core import crypto
    real = crypto.decrypt
    calls = []
    monkeypatch.setattr(crypto, "decrypt", lambda *args: calls.append(args[2]) or real(*args))
    lines = "\n".join(["138 0013 8021", "", "not a phone", ID_A, number_b, "13900000000", "110101199003074515",
                       "+86 138-0013-8022"])
    page = sec.post(f"/incidents/{incident_id}/affected", data={"lines": lines}).get_data(as_text=True)
    assert not [aad for aad in calls if aad.startswith("customers_")]  # the register was not decrypted
    assert 'id="line-1"' in page and "line-added" in page
    assert page.count("line-malformed") == 2 and page.count("line-unknown") == 1
    assert page.count("line-listed") == 2  # the ID number and the second phone of known customers
    # the box keeps only what failed, to be corrected
    box = page.split('name="lines"')[1].split("</textarea>")[0]
    assert "not a phone" in box and "13900000000" in box and "110101199003074515" in box and "13800138021" not in box
    with inc.app.app_context():
        from modules.incidents.models import Affected
        rows = db.session.scalars(select(Affected).where(Affected.incident_id == incident_id)).all()
        assert sorted((r.customer_id, r.matched_by) for r in rows) == sorted([(a, "phone"), (b, "number")])
        from core.audit import AuditEntry
        details = db.session.scalars(select(AuditEntry.details).where(AuditEntry.action == "incidents.affected.added")).one()
        assert '"customers": 2' in details and '"lines_malformed": 2' in details and "13800138021" not in details


def test_customer_names_masked_unless_the_viewer_may_see_the_customer(inc, make_customer):
    make_customer("sales1", name="孙小三", phone="13800138031")
    incident_id = inc.report("sales1", "sales", "D1")
    sec = inc.security()
    sec.post(f"/incidents/{incident_id}/affected", data={"lines": "13800138031"})
    sec.post(f"/incidents/{incident_id}/assess", data={"severity": "general", "data_classes": ["l1"], "triage_note": "x"})
    page = sec.get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert "孙**" in page and "孙小三" not in page and "13800138031" not in page


@pytest.mark.parametrize("status", ["closed"])
def test_no_changes_on_a_closed_ticket(inc, make_customer, status):
    incident_id = inc.report()
    with inc.app.app_context():
        from modules.incidents.models import Incident
        db.session.get(Incident, incident_id).status = status
        db.session.commit()
    sec = inc.security()
    page = sec.post(f"/incidents/{incident_id}/affected", data={"lines": "13800138031"}).get_data(as_text=True)
    assert "已关闭的事件不能修改" in page
