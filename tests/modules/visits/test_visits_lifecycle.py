"""Visits in the data lifecycle: a destroyed customer's visit notes, purposes and next steps are
gone, a copy request lists them, the weekly review counts visits and overdue follow-ups."""
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.db import db


def test_destroying_the_customer_empties_its_visits_and_the_copy_lists_them(vw, app):
    from modules.customers import Customer
    from modules.lifecycle import requests, services
    from modules.visits.models import Visit
    visit_id = vw.visit(vw.c1, purpose="续约洽谈", notes="客户家中有两个孩子", next_step="下周报价",
                        next_contact_on=vw.today() + timedelta(days=3))
    with app.test_request_context():
        customer = db.session.get(Customer, vw.c1)
        copy = {s.title: s.rows for s in requests.subject_data(customer)}
        [(_label, text)] = copy["拜访与电话记录"]
        assert "客户家中有两个孩子" in text and "续约洽谈" in text and "下周报价" in text
        services.destroy_customer("test", customer, "manual")
        db.session.commit()
        row = db.session.get(Visit, visit_id)
        assert (row.notes_ct, row.purpose, row.next_step, row.next_contact_on) == (None, "", None, None)


def test_the_weekly_review_counts_visits_and_overdue_follow_ups(vw, app, days):
    from core.models import Department
    from modules.lifecycle import review
    vw.visit(vw.c1, on=vw.today() - days(3), next_contact_on=vw.today() - days(1))
    vw.visit(vw.customer2, next_contact_on=vw.today() + days(2))
    with app.app_context():
        dept = db.session.execute(select(Department).where(Department.code == "D1")).scalar_one()
        today = datetime.now(UTC).date()
        monday = today - timedelta(days=today.weekday())
        [report] = review.report(monday, monday + timedelta(days=6), departments=[dept])
    assert report.value("visits.visits_logged") == 2 and report.value("visits.visits_overdue") == 1
