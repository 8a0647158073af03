"""Grading in the data lifecycle: a destroyed customer's override reasons are gone, the grade
stays for the statistics; a copy request lists the grade history with its reasons."""
from sqlalchemy import select

from core.db import db
from modules.grading import services
from modules.grading.models import Grade, History


def test_override_reasons_go_with_the_customer_and_the_copy_lists_the_history(app, grading_dept, make_customer,
                                                                             as_user):
    from modules.customers import Customer, get_customer
    from modules.lifecycle import requests
    from modules.lifecycle import services as lifecycle
    customer_id = make_customer(grading_dept.sales, transactions=[(3000, 5)])
    with as_user(grading_dept.head) as head:
        services.set_override(head, get_customer(customer_id, head), "important", "客户是董事长亲戚")
        db.session.commit()
        customer = db.session.get(Customer, customer_id)
        copy = {s.title: s.rows for s in requests.subject_data(customer)}
        assert any("客户是董事长亲戚" in text and "重要" in text for _when, text in copy["客户等级"])
        lifecycle.destroy_customer("test", customer, "manual")
        db.session.commit()
        assert db.session.get(Grade, customer_id).override_reason is None
        assert db.session.get(Grade, customer_id).grade == "important"
        reasons = db.session.execute(select(History.reason).where(History.customer_id == customer_id)).scalars().all()
        assert reasons and all(r is None for r in reasons)
