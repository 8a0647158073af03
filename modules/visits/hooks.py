"""What the visits module contributes through hooks: the customer page's timeline and panel
(customers.timeline, customers.panels), the handover of a leaver (customers.handover) and the
demo data of `kehu init --demo` (core.demo).

core.hooks runs the customer-page hooks only for a department that enabled visits."""
from datetime import timedelta

from flask import has_request_context, url_for
from flask_babel import gettext as _

from core.api import can, db, pick
from modules.customers import Customer, Panel, TimelineEvent, scoped_customers

from . import services
from .permissions import LOG, VIEW

TIMELINE_LIMIT = 50
PANEL_VISITS = 3


def timeline(customer, actor):
    """customers.timeline: one event per visit or call, linked to the visit."""
    if actor is not None and not can(actor, VIEW):
        return []
    events = []
    for visit in services.visits_of(customer.id, limit=TIMELINE_LIMIT):
        detail = visit.next_step or ""
        if visit.next_contact_on and detail:
            detail = _("Next contact %(date)s: %(step)s", date=visit.next_contact_on.isoformat(), step=detail)
        elif visit.next_contact_on:
            detail = _("Next contact %(date)s", date=visit.next_contact_on.isoformat())
        events.append(TimelineEvent(
            at=visit.visited_on, module="visits", detail=detail,
            title=_("%(channel)s: %(purpose)s", channel=pick(visit.channel_label), purpose=visit.purpose),
            url=url_for("visits.detail", visit_id=visit.id) if has_request_context() else None,
            extra={"visit_id": visit.id, "channel": visit.channel}))
    return events


def panels(customer, actor):
    """customers.panels: the last visits, the pending next contact and a 记录拜访 link."""
    if actor is None or not actor.is_authenticated or not can(actor, VIEW):
        return []
    pending = services.next_contact(customer.id)
    today = services.today()
    context = {
        "visits": services.visits_of(customer.id, limit=PANEL_VISITS),
        "next_contact_on": pending.next_contact_on if pending else None,
        "next_step": pending.next_step if pending else None,
        "overdue": pending is not None and pending.next_contact_on < today,
        "due_today": pending is not None and pending.next_contact_on == today,
        "new_url": url_for("visits.new", customer_id=customer.id) if can(actor, LOG) else None,
        "list_url": url_for("visits.customer", customer_id=customer.id),
    }
    return [Panel(title=_("Customer visits"), template="visits/panel.html", context=context, module="visits")]


def handover(from_user, to_user, actor):
    """customers.handover: the leaver's pending next contacts go to the colleague."""
    return services.hand_over(getattr(from_user, "id", from_user), getattr(to_user, "id", to_user), actor)


DEMO_VISITS = (
    # (days ago, channel, purpose, notes, next step, next contact in days from the visit)
    (20, "onsite", "年度合作回顾", "客户对上季度服务满意，希望增加培训名额。", "发送培训方案", 14),
    (9, "phone", "续约意向沟通", "客户表示预算在审批中，月底前答复。", "电话确认预算结果", 8),
    (3, "wechat", "产品资料发送", "已通过微信发送新版产品手册。", "约上门演示", 6),
)


def demo(departments, users):
    """core.demo: a few visits and calls for the first customers of each salesperson, with next
    contacts overdue, due today and in the coming days."""
    today = services.today()
    count = 0
    for user in users:
        if user.role not in ("sales", "service"):
            continue
        customers = db.session.execute(scoped_customers(user).where(Customer.owner_id == user.id)
                                       .order_by(Customer.id).limit(len(DEMO_VISITS))).scalars().all()
        for customer, (ago, channel, purpose, notes, step, after) in zip(customers, DEMO_VISITS, strict=False):
            visited_on = today - timedelta(days=ago)
            services.log_visit(user, customer, {
                "visited_on": visited_on, "channel": channel, "purpose": purpose, "notes": notes,
                "next_step": step, "next_contact_on": visited_on + timedelta(days=after)}, on=visited_on)
            count += 1
    if not count:
        return None
    return f"{count} visits logged"

