"""Grading in the data lifecycle (when the lifecycle module is installed): the free-text reasons
of overrides go with a destroyed customer; a copy request lists the grade and its history."""
from flask_babel import gettext as _
from sqlalchemy import select

from core.api import db, pick, to_local
from modules.customers import Customer

from .models import Grade, History
from .rules import GRADES


def destroy(customer, actor):
    """Override reasons (typed by heads, they may describe the customer) are emptied; the grades
    themselves stay for the statistics, as the customer's tombstone does."""
    touched = 0
    for row in db.session.execute(select(Grade).where(Grade.customer_id == customer.id)).scalars():
        row.override_reason, touched = None, touched + 1
    for row in db.session.execute(select(History).where(History.customer_id == customer.id)).scalars():
        row.reason, touched = None, touched + 1
    db.session.flush()
    return touched


def subject_data(customer):
    from modules.lifecycle import Section

    def label(grade):
        return pick(GRADES[grade]) if grade in GRADES else (grade or "")

    rows = [(to_local(h.at).strftime("%Y-%m-%d %H:%M"),
             " → ".join(x for x in (label(h.from_grade), label(h.to_grade)) if x) + (f"；{h.reason}" if h.reason else ""))
            for h in db.session.execute(select(History).where(History.customer_id == customer.id)
                                        .order_by(History.at, History.id)).scalars()]
    return [Section(_("Customer grade"), rows)] if rows else []


def review(department, start, end):
    """Grade changes of the department's customers in the week (recomputed or overridden)."""
    from sqlalchemy import func
    changed = db.session.scalar(select(func.count()).select_from(History).join(Customer, Customer.id == History.customer_id)
                                .where(Customer.department_id == department.id, History.at >= start, History.at < end,
                                       History.from_grade.is_not(None), History.from_grade != History.to_grade))
    return [("grade_changes", _("Grade changes"), changed)]
