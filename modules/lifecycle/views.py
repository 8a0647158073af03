"""Blueprint "lifecycle": what is due for destruction, the run, legal holds, retention periods and
the destruction certificates. Thin: parse the form, call a service, render."""
from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core.api import can, db, pdf, pick, require
from modules.customers import STATUSES

from . import services
from .forms import HoldForm, PolicyForm
from .models import Hold, Run

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
    if form.validate_on_submit():
        services.set_policies(current_user, {s: getattr(form, s).data for s in current})
        db.session.commit()
        flash(_("Retention periods saved."), "success")
        return redirect(url_for("lifecycle.index"))
    return render_template("lifecycle/policies.html", form=form), 400 if form.errors else 200


@bp.route("/runs/<int:run_id>/certificate.pdf")
@require("lifecycle.view", kind="download")
def certificate(run_id):
    item = db.session.get(Run, run_id)
    if item is None:
        abort(404)
    return pdf.response("lifecycle/certificate_pdf.html", filename=f"销毁证明-{item.number}.pdf",
                        action="lifecycle.certificate.printed", target=item,
                        fallback=url_for("lifecycle.index"), **services.certificate_context(item))
