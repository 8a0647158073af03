"""The archives' demo data (hook core.demo): documents for the first customers of each department
and view/borrow requests in every state, so every archives page has something to show."""
from sqlalchemy import func, select

from core.db import db
from core.models import Department, User


def test_demo_fills_archives_and_requests_in_every_state(arch, app):
    from modules.archives import demo as archives_demo
    from modules.archives import services
    from modules.archives.models import AccessRequest, Document
    from modules.customers import demo as customers_demo
    with app.app_context():
        departments = db.session.execute(select(Department).where(Department.code.in_(("D1", "D2")))
                                         .order_by(Department.code)).scalars().all()
        users = db.session.execute(select(User)).scalars().all()
        customers_demo.create(departments, users, count=30, seed=5)
        db.session.commit()
        summary = archives_demo.demo(departments, users)
        db.session.commit()
        assert summary and "archive documents" in summary
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Document)) >= 12
        types = set(db.session.scalars(select(Document.doc_type)))
        assert {"basic_info", "contract", "invoice", "payment"} <= types
        states = {services.request_state(r) for r in db.session.scalars(select(AccessRequest))}
        assert {"pending", "active", "overdue", "returned"} <= states
    # the pages show them: the head of D1 has a request to decide and a borrowing to take back
    head = arch.client("head1")
    requests_page = head.get("/archives/requests").get_data(as_text=True)
    assert "/approve" in requests_page  # a request waiting for the head's decision
    overdue = head.get("/archives/overdue").get_data(as_text=True)
    assert "/returned" in overdue  # a borrowing overdue, with its "returned" button
