"""What grading contributes to the customer register's pages, through the customers hooks.

The hooks only run for departments that enabled grading (core.hooks filters them)."""
from decimal import Decimal

from flask import has_request_context, request, url_for
from flask_babel import gettext as _
from sqlalchemy import case, func, select

from core.api import can, db, pick
from modules.customers import Customer, ListColumn, ListFilter, Panel, TimelineEvent

from . import rules as R
from . import services
from .models import Grade

UNGRADED = "none"  # list filter value for customers not graded yet
FILTER_PARAM = "grading"
COLUMN_KEY = "grading"


def money(value):
    return f"¥{Decimal(value or 0):,.2f}"


def grade_label(grade):
    return pick(R.GRADES[grade]) if grade in R.GRADES else _("Not graded")


def panel_context(customer, actor, form=None):
    """What templates/grading/panel.html needs (also used by the module's own customer page)."""
    from .forms import OverrideForm
    can_override = can(actor, "grading.override") and actor.department_id == customer.department_id
    row = services.grade_row(customer.id)
    here = request.path if has_request_context() else ""
    if can_override and form is None:
        form = OverrideForm(prefix="grading", formdata=None)
        form.grade.data = (R.ORDINARY if row is not None and row.grade == R.IMPORTANT else R.IMPORTANT)
        form.next.data = here
    return {"grading": {
        "row": row, "basis": row.basis_dict if row is not None else None,
        "rules": services.department_rules(customer.department_id),
        "history": services.history(customer.id, limit=20), "can_override": can_override,
        "form": form, "label": grade_label, "money": money, "next": here,
    }}


def customer_panels(customer, actor):
    """customers.panels: the grade box (grade, basis, override form for heads, history)."""
    if not can(actor, "grading.view"):
        return []
    return [Panel(title=_("Customer grade"), template="grading/panel.html",
                  context=panel_context(customer, actor), module="grading")]


def _event_detail(entry):
    who = str(entry.user) if entry.user is not None else ""
    if entry.source == "override":
        return _("Overridden by %(who)s: %(reason)s", who=who, reason=entry.reason or "")
    if entry.source == "override_removed":
        return _("Override removed by %(who)s; graded by the rules", who=who)
    if entry.rule_version:
        return _("By the department's rules, version %(v)d", v=entry.rule_version)
    return _("By the default rules")


def customer_timeline(customer, actor):
    """customers.timeline: one event per grade change or override, linked to the grade page."""
    if actor is not None and not can(actor, "grading.view"):
        return []
    url = url_for("grading.customer", customer_id=customer.id) if has_request_context() else None
    events = []
    for entry in services.history(customer.id):
        if entry.from_grade is None:
            title = _("Graded %(grade)s", grade=grade_label(entry.to_grade))
        else:
            title = _("Grade %(old)s → %(new)s", old=grade_label(entry.from_grade), new=grade_label(entry.to_grade))
        events.append(TimelineEvent(at=entry.at, title=title, module="grading", detail=_event_detail(entry), url=url,
                                    extra={"source": entry.source, "from": entry.from_grade,
                                           "to": entry.to_grade}))
    return events


def _grade_rank():
    """2 important, 1 ordinary, 0 not graded: a correlated subquery, so no join changes the rows."""
    rank = (select(case((Grade.grade == R.IMPORTANT, 2), else_=1))
            .where(Grade.customer_id == Customer.id).correlate(Customer).scalar_subquery())
    return func.coalesce(rank, 0)


def _column_values(rows):
    ids = [row.id for row in rows]
    if not ids:
        return {}
    grades = dict(db.session.execute(
        select(Grade.customer_id, Grade.grade).where(Grade.customer_id.in_(ids))).all())
    return {cid: grade_label(grades.get(cid)) for cid in ids}


def _column_sort(stmt, descending=False):
    rank = _grade_rank()
    return stmt.order_by(rank.desc() if descending else rank.asc())


def list_columns(actor):
    """customers.list_columns: the grade, sortable (descending puts 重要 first)."""
    if not can(actor, "grading.view"):
        return []
    return [ListColumn(key=COLUMN_KEY, label=_("Grade"), values=_column_values, sort=_column_sort)]


def _filter_apply(stmt, value):
    if value in R.GRADES:
        return stmt.where(Customer.id.in_(select(Grade.customer_id).where(Grade.grade == value)))
    if value == UNGRADED:
        return stmt.where(Customer.id.not_in(select(Grade.customer_id)))
    return stmt  # anything else: no filter


def list_filters(actor):
    """customers.list_filters: ?grading=important|ordinary|none."""
    if not can(actor, "grading.view"):
        return []
    choices = [(key, pick(label)) for key, label in R.GRADES.items()] + [(UNGRADED, _("Not graded"))]
    return [ListFilter(param=FILTER_PARAM, label=_("Grade"), choices=choices, apply=_filter_apply)]



def demo_grades(departments, users):
    """core.demo: grade the demo customers once, so lists and charts have grades to show."""
    graded = sum(services.recompute("cli:demo", department).graded for department in departments)
    important = sum(services.distribution(d)["counts"]["important"]["count"] for d in departments)
    return f"graded {graded} customers, {important} important"


def customer_changed(customer, actor, what):
    """customers.changed: a new or edited customer, or a record added, corrected or voided, is
    graded again at once (no manual recompute needed)."""
    services.regrade(actor, customer)


def form_facts(customer):
    """customers.form_facts: the grade on printed forms (Chinese), with an override marked."""
    row = services.grade_row(customer.id)
    if row is None:
        return [("客户分级", "未分级")]
    text = R.GRADES[row.grade]["zh_CN"] if row.grade in R.GRADES else row.grade
    if row.override is not None:
        text += "（负责人人工调整）"
    elif row.rule_version:
        text += f"（按部门规则第 {row.rule_version} 版）"
    return [("客户分级", text)]
