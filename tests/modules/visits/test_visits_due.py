"""待联系: the owner's next contacts (overdue, today, next 7 days), the department's for a head with
an owner column; a later visit supersedes a next contact; handover moves them to the colleague."""
import re

from sqlalchemy import select

from core.db import db


def section(html, ident):
    start = html.index(f'id="{ident}"')
    return html[start:html.index("</table>", start)]


def test_due_list_for_the_owner(vw, days):
    today = vw.today()
    overdue = vw.visit(vw.c1, on=today - days(9), purpose="逾期的", next_contact_on=today - days(2), next_step="补打电话")
    due_today = vw.visit(vw.customer2, on=today - days(1), purpose="今天的", next_contact_on=today, next_step="今日致电")
    soon = vw.visit(vw.customer3, purpose="本周的", next_contact_on=today + days(6), next_step="周内联系")
    vw.visit(vw.customer4, purpose="太远的", next_contact_on=today + days(8), next_step="下月联系")
    client = vw.client("sales1")
    html = client.get("/visits/due").get_data(as_text=True)
    assert "待联系" in html and "您待联系的客户。" in html
    assert "补打电话" in section(html, "visits-due-overdue") and "table-danger" in section(html, "visits-due-overdue")
    assert "今日致电" in section(html, "visits-due-today")
    assert "周内联系" in section(html, "visits-due-soon")
    assert "下月联系" not in html
    assert "跟进人" not in html  # no owner column for staff
    assert [re.findall(r'data-visit="(\d+)"', section(html, s)) for s in
            ("visits-due-overdue", "visits-due-today", "visits-due-soon")] == [[str(overdue)], [str(due_today)], [str(soon)]]
    # logging the follow-up supersedes the overdue next contact
    vw.visit(vw.c1, purpose="已联系", next_contact_on=None)
    html = client.get("/visits/due").get_data(as_text=True)
    assert "补打电话" not in html and "今日致电" in html
    # a colleague's list does not show them
    assert "今日致电" not in vw.client("sales1b").get("/visits/due").get_data(as_text=True)


def test_due_list_of_the_department_for_the_head(vw, days, make_customer, app):
    today = vw.today()
    theirs = make_customer("sales1b", name="李四")
    vw.visit(vw.c1, purpose="甲", next_contact_on=today, next_step="销售一的联系")
    vw.visit(theirs, actor="sales1b", purpose="乙", next_contact_on=today + days(1), next_step="销售一乙的联系")
    vw.visit(vw.c2, actor="sales2", purpose="丙", next_contact_on=today, next_step="二部的联系")
    html = vw.client("head1").get("/visits/due").get_data(as_text=True)
    assert "本部门待联系的客户。" in html and "跟进人" in html
    today_rows = section(html, "visits-due-today")
    assert "销售一的联系" in today_rows and 'class="visits-owner"><bdi>sales1<' in today_rows
    assert "销售一乙的联系" in section(html, "visits-due-soon") and "二部的联系" not in html


def test_handover_moves_the_leavers_next_contacts(vw, days, app):
    from modules.visits.models import Visit
    today = vw.today()
    pending = vw.visit(vw.c1, purpose="待跟进", next_contact_on=today + days(2))
    done = vw.visit(vw.customer2, on=today - days(3), purpose="已被取代", next_contact_on=today + days(1))
    vw.visit(vw.customer2, purpose="后续", next_contact_on=None)
    other = vw.visit(vw.c2, actor="sales2", purpose="二部", next_contact_on=today + days(2))
    head = vw.client("head1")
    response = head.post("/customers/handover", data={"from_user": vw.ids["sales1"], "to_user": vw.ids["sales1b"]})
    assert response.status_code == 302
    with app.app_context():
        owners = dict(db.session.execute(select(Visit.id, Visit.owner_id)).all())
        from core.audit import AuditEntry
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "customers.handover.completed")).one()
    assert owners[pending] == vw.ids["sales1b"]
    assert owners[done] == vw.ids["sales1"]  # superseded: not a pending next contact
    assert owners[other] == vw.ids["sales2"]
    assert "visits=1" in entry.details_dict["modules"]
    html = vw.client("sales1b").get("/visits/due").get_data(as_text=True)
    assert f'data-visit="{pending}"' in html


def test_the_home_page_work_queue_shows_overdue_and_todays_contacts(vw, days):
    today = vw.today()
    vw.visit(vw.c1, on=today - days(9), next_contact_on=today - days(2))
    vw.visit(vw.customer2, on=today - days(1), next_contact_on=today)
    vw.visit(vw.customer3, next_contact_on=today + days(3))
    page = vw.client("sales1").get("/").get_data(as_text=True)
    queue = dict(re.findall(r"<span>([^<]+)</span>\s*<span class=\"badge[^\"]*\">(\d+)</span>", page))
    assert queue.get("逾期未联系的客户") == "1" and queue.get("今天要联系的客户") == "1"
