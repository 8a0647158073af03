"""Complaints in the data lifecycle: a destroyed customer's complaint texts and attachments are
gone (numbers and states stay), a copy request lists them, the weekly review counts them."""
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.db import db


def test_destroying_the_customer_empties_its_complaints_and_the_copy_lists_them(app, client, login_as, cdept,
                                                                              customer, file_complaint):
    from modules.complaints.models import Complaint
    from modules.customers import Customer
    from modules.lifecycle import requests, services
    login_as(client, "c_service")
    complaint_id = file_complaint(client, customer, description="机器漏油严重", customer_request="要求更换")
    with app.test_request_context():
        c = db.session.get(Customer, customer)
        copy = {s.title: s.rows for s in requests.subject_data(c)}
        [(label, text)] = copy["客户投诉"]
        assert "机器漏油严重" in text and "要求更换" in text and label.startswith("TS-")
        services.destroy_customer("test", c, "manual")
        db.session.commit()
        services.finish()
        row = db.session.get(Complaint, complaint_id)
        assert (row.description_ct, row.customer_request_ct) == (None, None) and row.number.startswith("TS-")
        assert all(step.comment_ct is None for step in row.steps)


def test_the_weekly_review_counts_new_and_overdue_complaints(app, client, login_as, cdept, customer, file_complaint):
    from core.models import Department
    from modules.complaints.models import Complaint
    from modules.lifecycle import review
    login_as(client, "c_service")
    late = file_complaint(client, customer)
    file_complaint(client, customer, category="其他")
    with app.app_context():
        db.session.get(Complaint, late).response_due = datetime.now(UTC) - timedelta(hours=1)
        db.session.commit()
        dept = db.session.execute(select(Department).where(Department.code == "D1")).scalar_one()
        today = datetime.now(UTC).date()
        monday = today - timedelta(days=today.weekday())
        [report] = review.report(monday, monday + timedelta(days=6), departments=[dept])
    assert report.value("complaints.complaints_new") == 2 and report.value("complaints.complaints_overdue") == 1
