"""Blueprint "grading": the department's distribution chart, rules and recomputation, and the
override of a customer's grade. Thin: parse the form, call a service, render."""
from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core.api import can, db, hooks, pick, require, safe_local_url, to_local
from modules.customers import get_customer

from . import rules as R
from . import services
from .forms import OverrideForm, RulesForm
from .hooks import UNGRADED, money, panel_context

bp = Blueprint("grading", __name__, url_prefix="/grading")


def _department():
    department = current_user.department
    if department is None:  # the enablement guard already refuses users without a department
        abort(404)
    return department


def chart_data(department):
    """The department's grade distribution as bars (also served as JSON)."""
    dist = services.distribution(department)
    rules = services.department_rules(department)
    total = dist["total"]
    bars = [{"grade": grade, "label": pick(label), "count": dist["counts"][grade]["count"],
             "overridden": dist["counts"][grade]["overridden"]} for grade, label in R.GRADES.items()]
    bars.append({"grade": UNGRADED, "label": _("Not graded"), "count": dist["ungraded"], "overridden": 0})
    for bar in bars:
        bar["percent"] = round(100.0 * bar["count"] / total, 1) if total else 0.0
    last = dist["last_computed_at"]
    return {"department": {"code": department.code, "name": department.name}, "total": total,
            "graded": dist["graded"], "rule_version": rules.version, "rules": rules.thresholds(),
            "last_computed_at": last.isoformat() if last else None,
            "last_computed_local": to_local(last).strftime("%Y-%m-%d %H:%M") if last else None, "bars": bars}


def _complaints_counted(department):
    return bool(hooks.contributions("complaints.open_counts", department.id))


@bp.route("/")
@require("grading.view")
def index():
    department = _department()
    return render_template("grading/index.html", department=department, chart=chart_data(department),
                           rules=services.department_rules(department), money=money,
                           complaints_counted=_complaints_counted(department),
                           can_recompute=can(current_user, "grading.recompute"),
                           can_configure=can(current_user, "grading.configure"))


@bp.route("/chart.json")
@require("grading.view")
def chart_json():
    return jsonify(chart_data(_department()))


def _render_rules(department, form, status=200):
    return render_template("grading/rules.html", department=department, form=form, money=money,
                           rules=services.department_rules(department),
                           versions=services.rule_versions(department),
                           complaints_counted=_complaints_counted(department),
                           can_configure=can(current_user, "grading.configure")), status


@bp.route("/rules")
@require("grading.view")
def rules():
    department = _department()
    form = None
    if can(current_user, "grading.configure"):
        current = services.department_rules(department)
        form = RulesForm(formdata=None, data={
            "min_amount": current.min_amount, "min_count": current.min_count,
            "min_tenure_months": current.min_tenure_months,
            "escalate_open_complaints": current.escalate_open_complaints})
    return _render_rules(department, form)


@bp.route("/rules", methods=["POST"])
@require("grading.configure", kind="action")
def save_rules():
    department = _department()
    form = RulesForm()
    if not form.validate_on_submit():
        return _render_rules(department, form, 400)
    try:
        saved, changed = services.save_rules(current_user, department, form.data_dict())
        db.session.commit()
    except services.GradingError as exc:
        db.session.rollback()
        target = getattr(form, exc.field, None) if exc.field else None
        if target is not None:
            target.errors = [*target.errors, str(exc)]
        else:
            flash(str(exc), "danger")
        return _render_rules(department, form, 400)
    if changed:  # the new rules apply at once: every customer of the department is graded again
        summary = services.recompute(current_user, department)
        db.session.commit()
        flash(_("Rules saved as version %(v)d: %(graded)d customers graded, %(changed)d changed.",
                v=saved.version, graded=summary.graded, changed=summary.changed), "success")
    else:
        flash(_("The rules are unchanged."), "info")
    return redirect(url_for("grading.rules"))


@bp.route("/recompute", methods=["POST"])
@require("grading.recompute", kind="action")
def recompute():
    department = _department()
    summary = services.recompute(current_user, department)
    db.session.commit()
    flash(_("%(graded)d customers graded: %(changed)d changed, %(kept)d overrides kept.",
            graded=summary.graded, changed=summary.changed, kept=summary.overridden_kept), "success")
    if summary.no_consent:
        flash(_("%(n)d customers not graded: no analysis consent.", n=summary.no_consent), "warning")
    if summary.removed:
        flash(_("%(n)d grades removed: the customers withdrew their analysis consent.", n=summary.removed), "warning")
    return redirect(url_for("grading.index"))


def _customer_page(customer, form=None, status=200):
    return render_template("grading/customer.html", customer=customer,
                           **panel_context(customer, current_user, form)), status


@bp.route("/customers/<int:customer_id>")
@require("grading.view")
def customer(customer_id):
    return _customer_page(get_customer(customer_id, current_user))


def _back(customer):
    """Where to go after an override: the page the form was on (a local path), else ours."""
    target = request.form.get("grading-next") or request.form.get("next")
    return redirect(safe_local_url(target, url_for("grading.customer", customer_id=customer.id)))


@bp.route("/customers/<int:customer_id>/override", methods=["POST"])
@require("grading.override", kind="action")
def override(customer_id):
    customer = get_customer(customer_id, current_user)
    form = OverrideForm(prefix="grading")
    if not form.validate_on_submit():
        return _customer_page(customer, form, 400)
    try:
        services.set_override(current_user, customer, form.grade.data, form.reason.data)
        db.session.commit()
    except services.GradingError as exc:
        db.session.rollback()
        form.reason.errors = [*form.reason.errors, str(exc)]
        return _customer_page(customer, form, 400)
    flash(_("The grade has been overridden."), "success")
    return _back(customer)


@bp.route("/customers/<int:customer_id>/override/remove", methods=["POST"])
@require("grading.override", kind="action")
def remove_override(customer_id):
    customer = get_customer(customer_id, current_user)
    try:
        row = services.remove_override(current_user, customer)
        db.session.commit()
    except services.GradingError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
    else:
        flash(_("Override removed; the rules grade this customer %(grade)s.", grade=pick(R.GRADES[row.grade])),
              "success")
    return _back(customer)
