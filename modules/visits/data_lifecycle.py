"""Visits in the data lifecycle (when the lifecycle module is installed): destroyed with the
customer, copied for a data-subject request, counted in the weekly review."""
from flask_babel import gettext as _
from sqlalchemy import func, select

from core.api import crypto, db, local_today
from modules.customers import Customer

from .models import CHANNELS, Visit
from .services import open_next_contact


def destroy(customer, actor):
    """The notes (encrypted), purpose and next step of the customer's visits are emptied; dates
    and ways of contact stay for the statistics."""
    touched = 0
    for visit in db.session.execute(select(Visit).where(Visit.customer_id == customer.id)).scalars():
        visit.notes_ct, visit.purpose, visit.next_step, visit.next_contact_on = None, "", None, None
        touched += 1
    db.session.flush()
    return touched


def subject_data(customer):
    from core.api import pick
    from modules.lifecycle import Section
    rows = []
    for v in db.session.execute(select(Visit).where(Visit.customer_id == customer.id)
                                .order_by(Visit.visited_on, Visit.id)).scalars():
        try:
            notes = v.notes or ""
        except crypto.DecryptionError:
            notes = "?"
        label = f"{v.visited_on.isoformat()} {pick(CHANNELS.get(v.channel, {'zh_CN': v.channel, 'en': v.channel}))}"
        rows.append((label, "；".join(x for x in (v.purpose, notes, v.next_step or "") if x)))
    return [Section(_("Visits and calls"), rows)] if rows else []


def review(department, start, end):
    logged = db.session.scalar(select(func.count()).select_from(Visit).join(Customer, Customer.id == Visit.customer_id)
                               .where(Customer.department_id == department.id, Visit.created_at >= start,
                                      Visit.created_at < end))
    overdue = db.session.scalar(select(func.count()).select_from(Visit).join(Customer, Customer.id == Visit.customer_id)
                                .where(Customer.department_id == department.id, open_next_contact(),
                                       Visit.next_contact_on < local_today()))
    return [("visits_logged", _("Visits logged"), logged), ("visits_overdue", _("Follow-ups overdue"), overdue)]
