"""Blueprint "lifecycle": what is due for destruction, the run, legal holds, retention periods and
the destruction certificates. Thin: parse the form, call a service, render."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from core.api import can, db, deny_row, local_today, pdf, pick, require
from modules.customers import STATUSES, Customer, scoped_customers

from . import requests, services
from .forms import CloseForm, HoldForm, PolicyForm, RequestForm
from .models import Hold, Run, SubjectRequest

bp = Blueprint("lifecycle", __name__, url_prefix="/lifecycle")


def _index(hold_form=None, status=200):
    return render_template(
        "lifecycle/index.html", due=services.due(), runs=services.runs(), holds=services.open_holds(),
        policies=services.policies(), statuses={k: pick(v) for k, v in STATUSES.items()},
        hold_form=hold_form or HoldForm(formdata=None), can_destroy=can(current_user, "lifecycle.destroy"),
        can_hold=can(current_user, "lifecycle.hold"), can_configure=can(current_user, "lifecycle.configure")), status


@bp.route("/")
@require("lifecycle.view")
def index():
    return _index()


@bp.route("/run", methods=["POST"])
@require("lifecycle.destroy", kind="action")
def run():
    outcome = services.run_retention(current_user)
    db.session.commit()
    services.finish()
    flash(_("%(destroyed)s customers destroyed, %(held)s kept under a legal hold.",
            destroyed=len(outcome.destroyed), held=len(outcome.held)), "success")
    return redirect(url_for("lifecycle.index"))


@bp.route("/holds", methods=["POST"])
@require("lifecycle.hold", kind="action")
def hold():
    form = HoldForm()
    if not form.validate_on_submit():
        return _index(form, 400)
    try:
        customer = services.customer_by_number(form.number.data)
        services.set_hold(current_user, customer, form.reason.data)
    except services.LifecycleError:
        db.session.rollback()
        form.number.errors.append(_("No customer with this number."))
        return _index(form, 400)
    db.session.commit()
    flash(_("Legal hold set: the customer will not be destroyed until it is released."), "success")
    return redirect(url_for("lifecycle.index"))


@bp.route("/holds/<int:hold_id>/release", methods=["POST"])
@require("lifecycle.hold", kind="action")
def release(hold_id):
    item = db.session.get(Hold, hold_id)
    if item is None or item.released_at is not None:
        abort(404)
    services.release_hold(current_user, item)
    db.session.commit()
    flash(_("Legal hold released."), "success")
    return redirect(url_for("lifecycle.index"))


@bp.route("/policies", methods=["GET", "POST"])
@require("lifecycle.configure", kind="form")
def policies():
    current = services.policies()
    form = PolicyForm(data=current)
    documents = services.document_policies()
    labels = {t: pick(label) for t, label in services.document_types().items()}
    values = {t: ("" if y is None else str(y)) for t, y in documents.items()}
    errors = {}
    if request.method == "POST":
        values = {t: (request.form.get(f"doc_{t}") or "").strip() for t in documents}
        errors = {t: _("Enter whole years from 0 to 100, or leave it blank to keep them.")
                  for t, v in values.items() if v and not (v.isdigit() and int(v) <= 100)}
    if form.validate_on_submit() and not errors:
        services.set_policies(current_user, {s: getattr(form, s).data for s in current})
        services.set_document_policies(current_user, {t: int(v) if v else None for t, v in values.items()})
        db.session.commit()
        flash(_("Retention periods saved."), "success")
        return redirect(url_for("lifecycle.index"))
    return render_template("lifecycle/policies.html", form=form, doc_labels=labels, doc_values=values,
                           doc_errors=errors), 400 if (form.errors or errors) else 200


@bp.route("/runs/<int:run_id>/certificate.pdf")
@require("lifecycle.view", kind="download")
def certificate(run_id):
    item = db.session.get(Run, run_id)
    if item is None:
        abort(404)
    return pdf.response("lifecycle/certificate_pdf.html", filename=f"销毁证明-{item.number}.pdf",
                        action="lifecycle.certificate.printed", target=item,
                        fallback=url_for("lifecycle.index"), **services.certificate_context(item))


# --- data-subject requests -------------------------------------------------------------------------


def _request_in_remit(request_id):
    req = db.session.get(SubjectRequest, request_id)
    if req is None:
        abort(404)
    if db.session.scalar(scoped_customers(current_user).where(Customer.id == req.customer_id)
                         .with_only_columns(Customer.id)) is None:
        deny_row(SubjectRequest, request_id)
    return req


def _requests_page(form=None, status=200):
    ids = scoped_customers(current_user).with_only_columns(Customer.id)
    items = requests.open_requests(ids)
    numbers = dict(db.session.execute(select(Customer.id, Customer.number)
                                      .where(Customer.id.in_({r.customer_id for r in items}))).all())
    return render_template("lifecycle/requests.html", items=items, numbers=numbers, form=form or RequestForm(formdata=None),
                           kinds={k: pick(v) for k, v in requests.KINDS.items()},
                           states={k: pick(v) for k, v in requests.STATES.items()}, today=local_today()), status


@bp.route("/requests/", methods=["GET", "POST"])
@require("lifecycle.requests", kind="form")
def requests_index():
    form = RequestForm()
    if not form.validate_on_submit():
        return _requests_page(form if form.is_submitted() else None, 400 if form.is_submitted() else 200)
    number = form.number.data.strip().upper()
    customer = db.session.scalar(scoped_customers(current_user).where(Customer.number == number))
    if customer is None:
        form.number.errors.append(_("No customer with this number."))
        return _requests_page(form, 400)
    try:
        req = requests.create(current_user, customer, form.kind.data, received_on=form.received_on.data,
                              channel=form.channel.data)
    except services.LifecycleError:
        db.session.rollback()
        form.number.errors.append(_("No customer with this number."))
        return _requests_page(form, 400)
    db.session.commit()
    flash(_("Request %(number)s recorded; the answer is due on %(due)s.", number=req.number,
            due=req.due_on.isoformat()), "success")
    return redirect(url_for("lifecycle.request_detail", request_id=req.id))


@bp.route("/requests/<int:request_id>")
@require("lifecycle.requests")
def request_detail(request_id):
    req = _request_in_remit(request_id)
    customer = db.session.get(Customer, req.customer_id)
    return render_template("lifecycle/request.html", req=req, customer=customer, form=CloseForm(formdata=None),
                           kinds={k: pick(v) for k, v in requests.KINDS.items()},
                           states={k: pick(v) for k, v in requests.STATES.items()},
                           hold=services.active_hold(customer.id), today=local_today(),
                           can_approve=can(current_user, "lifecycle.approve"))


@bp.route("/requests/<int:request_id>/close", methods=["POST"])
@require("lifecycle.requests", kind="action")
def request_close(request_id):
    req = _request_in_remit(request_id)
    form = CloseForm()
    try:
        if not form.validate_on_submit():
            raise services.LifecycleError("bad form")
        requests.close(current_user, req, form.status.data, form.outcome.data)
    except services.LifecycleError:
        db.session.rollback()
        flash(_("The request could not be closed: a refusal needs its reason, and a closed request stays closed."),
              "danger")
        return redirect(url_for("lifecycle.request_detail", request_id=request_id))
    db.session.commit()
    flash(_("Request closed."), "success")
    return redirect(url_for("lifecycle.request_detail", request_id=request_id))


@bp.route("/requests/<int:request_id>/approve", methods=["POST"])
@require("lifecycle.approve", kind="action")
def request_approve(request_id):
    req = _request_in_remit(request_id)
    customer = db.session.get(Customer, req.customer_id)
    try:
        requests.approve_deletion(current_user, req, customer)
    except services.LifecycleError:
        db.session.rollback()
        flash(_("The deletion was not carried out: the customer is under a legal hold, or the request is "
                "not an open deletion request."), "danger")
        return redirect(url_for("lifecycle.request_detail", request_id=request_id))
    db.session.commit()
    services.finish()
    flash(_("The customer's personal data was destroyed."), "success")
    return redirect(url_for("lifecycle.request_detail", request_id=request_id))


@bp.route("/requests/<int:request_id>/copy.pdf")
@require("lifecycle.requests", kind="download")
def request_copy(request_id):
    req = _request_in_remit(request_id)
    customer = db.session.get(Customer, req.customer_id)
    if req.kind != "copy" or services.is_destroyed(customer.id):
        abort(404)
    return pdf.response("lifecycle/copy_pdf.html", filename=f"个人信息副本-{req.number}.pdf",
                        action="lifecycle.request.copy_printed", target=req,
                        fallback=url_for("lifecycle.request_detail", request_id=request_id),
                        **requests.copy_context(req, customer, current_user))


# --- the weekly review ----------------------------------------------------------------------------


def _review_args():
    from flask import request

    from . import review
    try:
        monday, sunday = review.parse_week(request.args.get("week"))
    except review.ReviewError:
        abort(400)
    # a department head sees the own department; the security officer every department
    departments = None if current_user.role == "security" else [current_user.department]
    return monday, sunday, review.report(monday, sunday, departments)


@bp.route("/review")
@require("lifecycle.view")
def review():
    from . import review as R
    monday, sunday, reviews = _review_args()
    return render_template("lifecycle/review.html", week=R.week_label(monday), monday=monday, sunday=sunday,
                           reviews=reviews, labels=[f.label for f in reviews[0].figures] if reviews else [])


@bp.route("/review.pdf")
@require("lifecycle.view", kind="download")
def review_pdf():
    from . import review as R
    monday, sunday, reviews = _review_args()
    return pdf.response("lifecycle/review_pdf.html", filename=f"客户信息梳理-{R.week_label(monday)}.pdf",
                        action="lifecycle.review.printed", fallback=url_for("lifecycle.review"),
                        audit_details={"week": R.week_label(monday)},
                        **R.pdf_context(monday, sunday, reviews, current_user.username))
