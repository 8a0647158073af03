"""The weekly review (客户信息梳理): per department, for one ISO week (Monday to Sunday in the
company's zone) — new customers, status changes, incomplete records, open and overdue data-subject
requests, customers due for destruction and those held. Other modules add their own figures
(overdue complaints and follow-ups, grade changes, pending approvals, incomplete archives) through
the hook ``lifecycle.review``."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select

from core.api import Department, db, hooks, local_now, local_today
from modules.customers import Customer

from . import services
from .models import SubjectRequest, Tombstone

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class ReviewError(ValueError):
    pass


@dataclass
class Figure:
    """One line of a department's review: a label (plain text, already translated) and a number."""

    key: str
    label: str
    value: int


@dataclass
class DepartmentReview:
    code: str
    name: str
    figures: list = field(default_factory=list)

    def value(self, key):
        return next((f.value for f in self.figures if f.key == key), None)


def parse_week(text: str | None) -> tuple[date, date]:
    """(Monday, Sunday) of "2026-W49"; without a week, the last complete week."""
    if not text:
        monday = local_today() - timedelta(days=local_today().weekday() + 7)
        return monday, monday + timedelta(days=6)
    match = WEEK.match(text.strip())
    if not match:
        raise ReviewError(f"week {text!r} is not of the form YYYY-Www, e.g. 2026-W49")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise ReviewError(f"week {text!r} does not exist") from None
    return monday, monday + timedelta(days=6)


def week_label(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def _utc_bounds(monday, sunday):
    zone = local_now().tzinfo
    start = datetime.combine(monday, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(sunday + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    return start, end


def _count(stmt):
    return db.session.scalar(stmt) or 0


def report(monday, sunday, departments=None) -> list[DepartmentReview]:
    from flask_babel import gettext as _
    start, end = _utc_bounds(monday, sunday)
    if departments is None:
        departments = db.session.scalars(select(Department).order_by(Department.code)).all()
    destroyed = select(Tombstone.customer_id)
    due = services.due(sunday)
    result = []
    for dept in departments:
        mine = select(func.count()).select_from(Customer).where(Customer.department_id == dept.id,
                                                                 Customer.id.not_in(destroyed))
        requests = (select(func.count()).select_from(SubjectRequest).join(Customer, Customer.id == SubjectRequest.customer_id)
                    .where(Customer.department_id == dept.id))
        review = DepartmentReview(dept.code, dept.name, [
            Figure("customers", _("Customers"), _count(mine)),
            Figure("new", _("New customers"), _count(mine.where(Customer.created_at >= start, Customer.created_at < end))),
            Figure("status_changed", _("Status changes"),
                   _count(mine.where(Customer.status_changed_at >= start, Customer.status_changed_at < end,
                                     Customer.created_at < start))),
            Figure("incomplete", _("Incomplete customer records"), _count(mine.where(Customer.completeness < 100))),
            Figure("requests_open", _("Open data-subject requests"), _count(requests.where(SubjectRequest.status == "open"))),
            Figure("requests_overdue", _("Overdue data-subject requests"),
                   _count(requests.where(SubjectRequest.status == "open", SubjectRequest.due_on < sunday + timedelta(days=1)))),
            Figure("destroyed", _("Customers destroyed this week"),
                   _count(select(func.count()).select_from(Tombstone).where(
                       Tombstone.department_id == dept.id, Tombstone.destroyed_at >= start, Tombstone.destroyed_at < end))),
            Figure("due", _("Customers due for destruction"),
                   len([d for d in due if d.customer.department_id == dept.id and d.hold is None])),
            Figure("held", _("Kept under a legal hold"),
                   len([d for d in due if d.customer.department_id == dept.id and d.hold is not None])),
        ])
        for module, figures in hooks.call("lifecycle.review", dept, start, end, department_id=dept.id):
            for key, label, value in figures or []:
                review.figures.append(Figure(f"{module}.{key}", label, int(value)))
        result.append(review)
    return result


def pdf_context(monday, sunday, reviews, printed_by) -> dict:
    from core.api import to_local, utcnow
    labels = [f.label for f in reviews[0].figures] if reviews else []
    rows = [[f"{r.code} {r.name}", *[str(f.value) for f in r.figures]] for r in reviews]
    return {"week": week_label(monday), "start": monday.isoformat(), "end": sunday.isoformat(),
            "labels": labels, "rows": rows, "printed_by": printed_by,
            "printed_at": to_local(utcnow()).strftime("%Y-%m-%d %H:%M")}
