"""Visits on the home page's work queue: next contacts overdue and due today."""
from flask import url_for
from flask_babel import gettext as _

from core.api import WorkItem, can

from .services import due


def work_items(user):
    if not can(user, "visits.view"):
        return []
    pending = due(user, days=0)
    return [WorkItem(_("Next contacts overdue"), len(pending.overdue), url_for("visits.due"), "danger"),
            WorkItem(_("Customers to contact today"), len(pending.today), url_for("visits.due"), "warning")]
