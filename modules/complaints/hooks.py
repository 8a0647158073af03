"""What the complaints module contributes to hooks: its own complaints.open_counts (asked by
grading) and the customer register's panels, timeline and handover. Hooks run only for
departments that enabled complaints (core.hooks filters them)."""
from flask import has_request_context, url_for
from flask_babel import gettext as _

from core.api import can, pick
from modules.customers import Panel, TimelineEvent

from . import services
from .models import STATUSES
from .permissions import CREATE, VIEW


def open_counts(customer_ids):
    """complaints.open_counts: {customer_id: open complaints} (closed ones do not count)."""
    return services.open_counts(customer_ids)


def panels(customer, actor):
    """customers.panels: the customer's complaints the viewer may see, and the intake button."""
    if actor is None or not actor.is_authenticated or not can(actor, VIEW):
        return []
    rows = services.listing(actor, customer_id=customer.id, limit=20)
    context = {
        "rows": [{"number": c.number, "url": url_for("complaints.detail", complaint_id=c.id),
                  "status": pick(STATUSES[c.status]), "category": c.category,
                  "created": services.local_text(c.created_at), "state": services.deadline_state(c)}
                 for c in rows],
        "new_url": url_for("complaints.new", customer_id=customer.id) if can(actor, CREATE) else None,
    }
    return [Panel(title=_("Complaints"), template="complaints/panel.html", context=context, module="complaints")]


def timeline(customer, actor):
    """customers.timeline: one event per complaint (registered, with its current status)."""
    if actor is not None and not can(actor, VIEW):
        return []
    from sqlalchemy import select

    from core.api import db

    from .models import Complaint
    rows = db.session.execute(select(Complaint).where(Complaint.customer_id == customer.id)).scalars().all()
    return [TimelineEvent(at=c.created_at, module="complaints",
                          title=_("Complaint %(number)s (%(category)s)", number=c.number, category=c.category),
                          detail=pick(STATUSES[c.status]),
                          url=url_for("complaints.detail", complaint_id=c.id) if has_request_context() else None)
            for c in rows]


def rekey(customer, old_key, new_key):
    """customers.rekey: complaint texts and attachments follow the customer to its new data key."""
    return services.rekey(customer, old_key, new_key)


def handover(from_user, to_user, actor):
    """customers.handover: the colleague becomes handler of the leaver's open complaints."""
    return services.hand_over(getattr(from_user, "id", from_user), getattr(to_user, "id", to_user), actor)
