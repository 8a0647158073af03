"""The customer register's part of the home page's work queue."""
from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from core.api import WorkItem, can, db

from .api import scoped_customers
from .models import Customer


def work_items(user):
    if not can(user, "customers.view"):
        return []
    stmt = scoped_customers(user).where(Customer.completeness < 100)
    if user.role != "head":
        stmt = stmt.where(Customer.owner_id == user.id)
    count = db.session.scalar(select(func.count()).select_from(stmt.with_only_columns(Customer.id).subquery()))
    label = _("Customer records to complete") if user.role != "head" else _("Incomplete customer records in the department")
    return [WorkItem(label, count, url_for("customers.incomplete"), "info")]
