"""The archives' part of the home page's work queue: approvals to give, originals to return."""
from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from core.api import WorkItem, can, db

from .models import AccessRequest
from .services import decides_requests, department_requests, overdue_borrowings, today


def work_items(user):
    items = []
    if decides_requests(user):
        pending, _decided = department_requests(user, limit=1)
        items.append(WorkItem(_("View and borrow requests to decide"), len(pending),
                              url_for("archives.requests"), "warning"))
    if can(user, "archives.view"):
        items.append(WorkItem(_("Borrowed originals overdue"), len(overdue_borrowings(user)),
                              url_for("archives.overdue"), "danger"))
        mine = db.session.scalar(select(func.count()).select_from(AccessRequest).where(
            AccessRequest.requester_id == user.id, AccessRequest.kind == "borrow",
            AccessRequest.status == "approved", AccessRequest.returned_at.is_(None),
            AccessRequest.until >= today()))
        items.append(WorkItem(_("Originals I have borrowed"), mine, url_for("archives.requests"), "info"))
    return items
