"""Complaints in the data lifecycle (when the lifecycle module is installed): destroyed with the
customer, copied for a data-subject request, counted in the weekly review."""
from flask_babel import gettext as _
from sqlalchemy import func, select

from core.api import crypto, db, pick, utcnow

from .models import STATUSES, Complaint
from .services import attachment_path, overdue_clause


def _text(getter):
    try:
        return getter() or ""
    except crypto.DecryptionError:
        return "?"


def destroy(customer, actor):
    """Every text of the customer's complaints nulled, their attachments deleted (files after the
    commit); numbers, dates and workflow states stay for the statistics."""
    touched = 0
    for c in db.session.execute(select(Complaint).where(Complaint.customer_id == customer.id)).scalars():
        for field in ("description", "customer_request", "cause", "measures", "result", "compensation",
                      "visit_comment"):
            setattr(c, f"{field}_ct", None)
        for step in c.steps:
            step.comment_ct = None
        for att in list(c.attachments):
            db.session.info.setdefault("lifecycle_files_to_remove", []).append(attachment_path(att))
            db.session.delete(att)
        touched += 1
    db.session.flush()
    return touched


def subject_data(customer):
    from modules.lifecycle import Section
    rows = []
    for c in db.session.execute(select(Complaint).where(Complaint.customer_id == customer.id)
                                .order_by(Complaint.id)).scalars():
        parts = [_text(lambda c=c: c.description), _text(lambda c=c: c.customer_request),
                 _text(lambda c=c: c.cause), _text(lambda c=c: c.measures), _text(lambda c=c: c.result),
                 _text(lambda c=c: c.compensation), _text(lambda c=c: c.visit_comment)]
        rows.append((f"{c.number} {pick(STATUSES[c.status])}", "；".join(p for p in parts if p)))
    return [Section(_("Complaints"), rows)] if rows else []


def review(department, start, end):
    opened = db.session.scalar(select(func.count()).select_from(Complaint).where(
        Complaint.department_id == department.id, Complaint.created_at >= start, Complaint.created_at < end))
    late = db.session.scalar(select(func.count()).select_from(Complaint).where(
        Complaint.department_id == department.id, overdue_clause(utcnow())))
    return [("complaints_new", _("Complaints received"), opened), ("complaints_overdue", _("Complaints overdue"), late)]
