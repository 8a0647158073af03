"""The domain logic of the visits module: plain functions taking the acting user explicitly.

Access: a visit is visible to whoever may see its customer (the customer register's record rule,
through ``scoped_customers``); a user changes the visits they logged or follow up, a department
head (``visits.manage_department``) every visit of the department. Every change is audited with
field names only, never values.

A customer's *next contact* is the next-contact date of its latest visit: logging a new visit
or call supersedes the previous one, so the 待联系 list never shows a contact already made.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from flask_babel import gettext as _
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from core.api import audit, can, crypto, db, local_today, scoped, validation
from modules.customers import Customer, scoped_customers

from .models import CHANNELS, NEXT_STEP_MAX, NOTES_MAX, PURPOSE_MAX, Visit
from .permissions import LOG, MANAGE_DEPARTMENT

DUE_DAYS = 7  # the 待联系 list looks this many days ahead
FIELDS = ("visited_on", "channel", "purpose", "notes", "next_step", "next_contact_on")


class VisitError(ValueError):
    """Bad input for a visit; ``str(exc)`` is shown to the user, next to ``field`` when it names a
    form field."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def today() -> date:
    """The company's calendar date (KEHU_TIMEZONE, Asia/Shanghai by default): a visit's date and
    the next-contact dates are calendar dates there."""
    return local_today()


# --- access ------------------------------------------------------------------------------------


def visit_rule(actor):
    """Record rule (reg.record_rule): the visits of the customers the actor may see."""
    return Visit.customer_id.in_(scoped_customers(actor).with_only_columns(Customer.id))


def manages_department(actor, department_id):
    return (getattr(actor, "role", None) == "head" and actor.department_id is not None
            and actor.department_id == department_id and can(actor, MANAGE_DEPARTMENT))


def can_change(actor, visit) -> bool:
    """May the actor edit or delete this visit (which the record rule already lets them see)?"""
    if manages_department(actor, visit.customer.department_id):
        return True
    return can(actor, LOG) and actor.id in (visit.author_id, visit.owner_id)


def customer_name(customer) -> str:
    """The customer's display name, or "" when its data key has been destroyed."""
    try:
        return customer.display_name or ""
    except crypto.DecryptionError:
        return ""


def notes_of(visit):
    """The notes in clear, or None when there are none or the customer's key is destroyed."""
    try:
        return visit.notes
    except crypto.DecryptionError:
        return None


# --- validation --------------------------------------------------------------------------------


def _text(data, name, kind, limit, required=False):
    value = data.get(name) or ""
    try:
        value = validation.clean_text(value, field_kind=kind) if value else ""
    except validation.ValidationError as exc:
        raise VisitError(str(exc), name) from exc
    if required and not value:
        raise VisitError(_("This field is required."), name)
    if len(value) > limit:
        raise VisitError(_("At most %(n)d characters.", n=limit), name)
    return value or None


def clean(data, previous=None, on=None) -> dict:
    """Checked values of a visit, or VisitError naming the field. ``previous`` is the visit being
    edited: its next-contact date may stay as it is even once it has passed."""
    on = on or today()
    out = {
        "purpose": _text(data, "purpose", "name", PURPOSE_MAX, required=True),
        "notes": _text(data, "notes", "text", NOTES_MAX),
        "next_step": _text(data, "next_step", "name", NEXT_STEP_MAX),
    }
    visited_on = data.get("visited_on")
    if not isinstance(visited_on, date):
        raise VisitError(_("Enter a date like 2026-03-31."), "visited_on")
    if visited_on > on:
        raise VisitError(_("The date of the contact cannot be in the future."), "visited_on")
    if data.get("channel") not in CHANNELS:
        raise VisitError(_("Choose the way of contact."), "channel")
    next_on = data.get("next_contact_on")
    if next_on is not None and not isinstance(next_on, date):
        raise VisitError(_("Enter a date like 2026-03-31."), "next_contact_on")
    kept = previous is not None and next_on == previous.next_contact_on
    if next_on is not None and next_on < on and not kept:
        raise VisitError(_("The next-contact date cannot be in the past."), "next_contact_on")
    out.update(visited_on=visited_on, channel=data["channel"], next_contact_on=next_on)
    return out


# --- changes -----------------------------------------------------------------------------------


def log_visit(actor, customer, data, on=None) -> Visit:
    """Log a visit or call to ``customer`` (the caller checked the permission and that the
    customer is in the actor's remit). ``on`` is the day it is logged (default today)."""
    values = clean(data, None, on)
    visit = Visit(customer=customer, author_id=actor.id, owner_id=actor.id)
    for name in FIELDS:
        setattr(visit, name, values[name])  # the customer first: notes need its data key
    db.session.add(visit)
    db.session.flush()
    audit.record("visits.visit.created", target=visit, actor=actor, customer_id=customer.id,
                 fields=[name for name in FIELDS if values[name] is not None])
    return visit


def update_visit(actor, visit, data, version=None, on=None) -> list[str]:
    """Change a visit; returns the names of the fields that changed (audited, never values)."""
    if not can_change(actor, visit):
        raise VisitError(_("You may change only your own visits."))
    if version is not None and str(version) != str(visit.version):
        raise VisitError(stale_message())
    values = clean(data, visit, on)
    old = {name: notes_of(visit) if name == "notes" else getattr(visit, name) for name in FIELDS}
    changed = [name for name in FIELDS if old[name] != values[name]]
    with db.session.no_autoflush:  # encrypting may load the customer's key: one flush, one version
        for name in changed:
            setattr(visit, name, values[name])
    if changed:
        db.session.flush()
        audit.record("visits.visit.updated", target=visit, actor=actor, customer_id=visit.customer_id,
                     fields=changed)
    return changed


def delete_visit(actor, visit) -> None:
    if not can_change(actor, visit):
        raise VisitError(_("You may change only your own visits."))
    audit.record("visits.visit.deleted", target=visit, actor=actor, customer_id=visit.customer_id)
    db.session.delete(visit)
    db.session.flush()


def stale_message():
    return _("Someone else changed this visit meanwhile. Reload the page and make your change again.")


# --- reading -----------------------------------------------------------------------------------


def _newest_first(stmt):
    return stmt.order_by(Visit.visited_on.desc(), Visit.id.desc())


def visits_of(customer_id, limit=None):
    """A customer's visits, newest first. No scope check: callers check the customer first."""
    stmt = _newest_first(select(Visit).where(Visit.customer_id == customer_id))
    if limit:
        stmt = stmt.limit(limit)
    return db.session.execute(stmt).scalars().all()


def _superseded():
    """A later visit of the same customer exists (by date, then by id)."""
    later = aliased(Visit)
    return exists().where(later.customer_id == Visit.customer_id, or_(
        later.visited_on > Visit.visited_on, and_(later.visited_on == Visit.visited_on, later.id > Visit.id)))


def open_next_contact():
    """SQL condition: the visit carries its customer's pending next contact."""
    return and_(Visit.next_contact_on.is_not(None), ~_superseded())


def next_contact(customer_id):
    """The customer's latest visit when it names a next contact, else None."""
    latest = visits_of(customer_id, limit=1)
    return latest[0] if latest and latest[0].next_contact_on is not None else None


def last_contact(customer_id):
    """The date of the customer's latest visit or call, or None (exported)."""
    return db.session.scalar(select(func.max(Visit.visited_on)).where(Visit.customer_id == customer_id))


@dataclass
class DueList:
    overdue: list = field(default_factory=list)
    today: list = field(default_factory=list)
    soon: list = field(default_factory=list)
    department: bool = False  # a head's view of the whole department (with the owner column)

    @property
    def total(self):
        return len(self.overdue) + len(self.today) + len(self.soon)


def due(actor, on=None, days=DUE_DAYS) -> DueList:
    """The pending next contacts up to ``days`` ahead: the actor's own, or for a department head
    the department's; overdue ones first, oldest first."""
    on = on or today()
    department = manages_department(actor, actor.department_id)
    stmt = scoped(select(Visit), actor).where(open_next_contact(), Visit.next_contact_on <= on + timedelta(days=days))
    if not department:
        stmt = stmt.where(Visit.owner_id == actor.id)
    stmt = stmt.order_by(Visit.next_contact_on, Visit.id)
    result = DueList(department=department)
    for visit in db.session.execute(stmt).scalars():
        when = visit.next_contact_on
        (result.overdue if when < on else result.today if when == on else result.soon).append(visit)
    return result


def recent(actor, *, date_from=None, date_to=None, channel=None, department=False, page=1, per_page=50):
    """(visits, total) logged by the actor, or by the department when ``department`` and the actor
    manages it; newest first, optionally by date range and way of contact."""
    stmt = scoped(select(Visit), actor)
    if not (department and manages_department(actor, actor.department_id)):
        stmt = stmt.where(Visit.author_id == actor.id)
    if date_from:
        stmt = stmt.where(Visit.visited_on >= date_from)
    if date_to:
        stmt = stmt.where(Visit.visited_on <= date_to)
    if channel in CHANNELS:
        stmt = stmt.where(Visit.channel == channel)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = db.session.execute(_newest_first(stmt).limit(per_page).offset((page - 1) * per_page)).scalars().all()
    return rows, total


def due_counts(department_id, on=None):
    """{"overdue": n, "today": n, "soon": n} of a department's pending next contacts (CLI)."""
    on = on or today()
    when = Visit.next_contact_on
    stmt = (select(when, func.count()).join(Customer, Customer.id == Visit.customer_id)
            .where(Customer.department_id == department_id, open_next_contact(),
                   when <= on + timedelta(days=DUE_DAYS)).group_by(when))
    counts = {"overdue": 0, "today": 0, "soon": 0}
    for day, n in db.session.execute(stmt):
        counts["overdue" if day < on else "today" if day == on else "soon"] += n
    return counts


# --- handover ----------------------------------------------------------------------------------


def hand_over(from_user_id, to_user_id, actor) -> int:
    """A leaver's pending next contacts in the actor's department go to the colleague; returns how
    many moved. The customers' handover audits the whole handover with this count."""
    ids = db.session.execute(
        select(Visit.id).join(Customer, Customer.id == Visit.customer_id)
        .where(Visit.owner_id == from_user_id, Customer.department_id == actor.department_id,
               open_next_contact())).scalars().all()
    if not ids:
        return 0
    db.session.execute(update(Visit).where(Visit.id.in_(ids))
                       .values(owner_id=to_user_id, version=Visit.version + 1)
                       .execution_options(synchronize_session=False))
    db.session.expire_all()
    return len(ids)
