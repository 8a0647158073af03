"""The customer page's timeline shows a customer's complaints only to a role that may view them."""
from sqlalchemy import delete

from core.db import db
from core.models import RoleGrant


def test_the_timeline_shows_complaints_only_with_complaints_view(app, client, login_as, cdept, customer,
                                                                   file_complaint, complaint_row):
    login_as(client, "c_service")
    number = complaint_row(file_complaint(client, customer)).number
    timeline = client.get(f"/customers/{customer}").get_data(as_text=True).split('id="timeline"', 1)[1]
    assert "timeline-complaints" in timeline and number in timeline
    # the administrator leaves complaints to the heads: service staff keep the customer, not its complaints
    with app.app_context():
        db.session.execute(delete(RoleGrant).where(RoleGrant.role == "service",
                                                   RoleGrant.permission == "complaints.view"))
        db.session.commit()
    page = client.get(f"/customers/{customer}").get_data(as_text=True)
    assert page.count('id="timeline"') == 1
    timeline = page.split('id="timeline"', 1)[1]
    assert "timeline-complaints" not in timeline and number not in page
