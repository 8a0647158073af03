"""What the feedback module contributes to hooks: the customer page's timeline and panel, the
handover of a leaver's rows and the home page's work queue. Hooks run only for departments that
enabled feedback (core.hooks filters them)."""
from flask import has_request_context, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from core.api import WorkItem, can, db
from modules.customers import Panel, TimelineEvent

from . import services
from .models import Response, TemplateVersion
from .permissions import FILL, LINK, PLAN, VIEW


def response_counts(customer_ids):
    """{customer_id: filled feedback forms} (no scope check)."""
    rows = db.session.execute(select(Response.customer_id, func.count(Response.id))
                              .where(Response.customer_id.in_(list(customer_ids))).group_by(Response.customer_id))
    return dict(rows.all())


def timeline(customer, actor):
    """customers.timeline: one event per filled form, marked when the customer filled it."""
    if actor is not None and not can(actor, VIEW):
        return []
    rows = db.session.execute(select(Response, TemplateVersion).join(TemplateVersion)
                              .where(Response.customer_id == customer.id)).all()
    return [TimelineEvent(at=r.created_at, module="feedback",
                          title=_("Feedback form %(title)s (v%(n)s)", title=v.title, n=v.number),
                          detail=_("filled by the customer") if r.by_customer else _("filled by staff"),
                          url=url_for("feedback.response_detail", response_id=r.id) if has_request_context() else None)
            for r, v in rows]


def panels(customer, actor):
    """customers.panels: the customer's filled forms and the fill and link buttons."""
    if actor is None or not actor.is_authenticated or not can(actor, VIEW):
        return []
    rows = services.responses(actor, customer_id=customer.id, limit=20)
    context = {
        "rows": [{"url": url_for("feedback.response_detail", response_id=r.id), "title": r.version.title,
                  "version": r.version.number, "created": services.local_text(r.created_at),
                  "by_customer": r.by_customer} for r in rows],
        "fill_url": url_for("feedback.fill", customer_id=customer.id) if can(actor, FILL) else None,
        "link_url": url_for("feedback.link_new", customer_id=customer.id) if can(actor, LINK) else None,
    }
    return [Panel(title=_("Customer feedback"), template="feedback/panel.html", context=context, module="feedback")]


def handover(from_user, to_user, actor):
    return services.hand_over(getattr(from_user, "id", from_user), getattr(to_user, "id", to_user), actor)


def rekey(customer, old_key, new_key):
    """customers.rekey: the module's encrypted values follow the customer's new data key."""
    return services.rekey(customer, old_key, new_key)


def work_items(user):
    items = []
    if can(user, VIEW):
        items.append(WorkItem(_("Feedback forms filled by customers, not yet read"), services.unseen_count(user),
                              url_for("feedback.index", unseen=1), "warning"))
    if can(user, PLAN):
        rows = services.open_actions(user)
        overdue = sum(1 for _a, s in rows if s == "overdue")
        due = sum(1 for _a, s in rows if s == "due")
        items.append(WorkItem(_("Overdue follow-up actions"), overdue, url_for("feedback.actions"), "danger"))
        items.append(WorkItem(_("Follow-up actions due soon"), due, url_for("feedback.actions"), "warning"))
    return items
