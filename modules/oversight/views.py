"""Pages of the oversight module (blueprint "oversight", /oversight/): parse, call a service,
render. The acknowledgement page is for every signed-in user the policy applies to; the rest is
the security officer's."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from core.api import User, db, local_today, pick, require, run_selfcheck, signed_in

from . import alerts as alert_service
from . import services
from .forms import AcknowledgeForm, AlertNoteForm, PolicyForm, ReviewForm, TrainingForm
from .models import ALERT_STATUSES, Alert
from .permissions import ALERTS, MANAGE, SELFCHECK

bp = Blueprint("oversight", __name__, url_prefix="/oversight")


@bp.app_template_global("oversight_rule")
def oversight_rule(rule):
    return pick(alert_service.RULE_LABELS.get(rule, {"zh_CN": rule, "en": rule}))


@bp.app_template_global("oversight_status")
def oversight_status(status):
    return pick(ALERT_STATUSES.get(status, {"zh_CN": status, "en": status}))


@bp.app_template_global("oversight_alert_text")
def oversight_alert_text(alert):
    return alert_service.describe(alert)


def _actor():
    return current_user._get_current_object()


def _field_error(form, exc):
    target = getattr(form, getattr(exc, "field", None) or "", None)
    if target is not None:
        target.errors = [*target.errors, str(exc)]
    else:
        flash(str(exc), "danger")


# --- every user: the policy to acknowledge -------------------------------------------------------------

@bp.route("/acknowledge", methods=["GET", "POST"])
@signed_in(kind="form")
def acknowledge():
    policy = services.current_policy()
    if policy is None or _actor().role == "admin":
        abort(404)
    form = AcknowledgeForm()
    done = services.has_acknowledged(_actor(), policy)
    if not done and form.validate_on_submit():
        services.acknowledge(_actor(), policy)
        db.session.commit()
        flash(_("Thank you: your acknowledgement of version %(v)d is recorded.", v=policy.version), "success")
        return redirect(url_for("main.index"))
    return render_template("oversight/acknowledge.html", policy=policy, form=form, done=done)


# --- the security officer: policy, training, reviews ----------------------------------------------------

@bp.route("/policy", methods=["GET", "POST"])
@require(MANAGE, kind="form")
def policy():
    current = services.current_policy()
    form = PolicyForm(data={"title": current.title, "body": current.body} if current else None)
    if form.validate_on_submit():
        try:
            published = services.publish(_actor(), form.title.data, form.body.data)
            db.session.commit()
            flash(_("Version %(v)d is published; every user acknowledges it at their next page.",
                    v=published.version), "success")
            return redirect(url_for("oversight.policy"))
        except services.OversightError as exc:
            db.session.rollback()
            _field_error(form, exc)
    standings = services.standings()
    return render_template("oversight/policy.html", form=form, policies=services.policies(), current=current,
                           counts=services.acknowledgement_counts(), standings=standings,
                           withholding=services.withholding())


@bp.route("/trainings", methods=["GET", "POST"])
@require(MANAGE, kind="form")
def trainings():
    form = TrainingForm()
    people = services.subject_users()
    form.attendees.choices = [(u.id, f"{u} ({u.username})") for u in people]
    if request.method == "GET":
        form.held_on.data = local_today()
    if form.validate_on_submit():
        try:
            services.record_training(_actor(), title=form.title.data, held_on=form.held_on.data,
                                     trainer=form.trainer.data, topics=form.topics.data,
                                     attendee_ids=form.attendees.data)
            db.session.commit()
            flash(_("The training session is recorded."), "success")
            return redirect(url_for("oversight.trainings"))
        except services.OversightError as exc:
            db.session.rollback()
            _field_error(form, exc)
    return render_template("oversight/trainings.html", form=form, trainings=services.trainings())


@bp.route("/reviews", methods=["GET", "POST"])
@require(MANAGE, kind="form")
def reviews():
    form = ReviewForm()
    users = db.session.execute(select(User).where(User.active.is_(True), User.role != "admin")
                               .order_by(User.username)).scalars().all()
    form.user_id.choices = [(0, _("Choose…"))] + [(u.id, f"{u} ({u.username})") for u in users]
    if request.method == "GET":
        today = local_today()
        form.reviewed_on.data = today
        form.expires_on.data = today + timedelta(days=int(services.setting("review_valid_days", 365)))
    if form.validate_on_submit():
        try:
            services.record_review(_actor(), user_id=form.user_id.data, reviewed_on=form.reviewed_on.data,
                                   expires_on=form.expires_on.data, note=form.note.data)
            db.session.commit()
            flash(_("The confidentiality review is recorded."), "success")
            return redirect(url_for("oversight.reviews"))
        except services.OversightError as exc:
            db.session.rollback()
            _field_error(form, exc)
    needing = [u for u in users if services.needs_review(u)]
    return render_template("oversight/reviews.html", form=form, reviews=services.reviews(), today=local_today(),
                           needing=[(u, services.current_review(u)) for u in needing])


# --- the self-check --------------------------------------------------------------------------------

@bp.route("/selfcheck")
@require(SELFCHECK)
def selfcheck():
    findings = run_selfcheck()
    db.session.rollback()
    order = {"fail": 0, "warning": 1, "ok": 2}
    return render_template("oversight/selfcheck.html",
                           findings=sorted(findings, key=lambda f: order.get(f.status, 3)),
                           failed=sum(f.status == "fail" for f in findings),
                           warnings=sum(f.status == "warning" for f in findings))


# --- alerts ------------------------------------------------------------------------------------------

@bp.route("/alerts")
@require(ALERTS)
def alerts():
    status = request.args.get("status", "")
    if status not in ALERT_STATUSES:
        status = ""
    return render_template("oversight/alerts.html", alerts=alert_service.alerts(status or None), status=status,
                           statuses=[(k, pick(v)) for k, v in ALERT_STATUSES.items()])


def _alert_or_404(alert_id):
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        abort(404)
    return alert


@bp.route("/alerts/<int:alert_id>", methods=["GET", "POST"])
@require(ALERTS, kind="form")
def alert(alert_id):
    item = _alert_or_404(alert_id)
    form = AlertNoteForm()
    if form.validate_on_submit():
        try:
            alert_service.acknowledge(_actor(), item, form.note.data)
            db.session.commit()
            flash(_("The alert is acknowledged."), "success")
            return redirect(url_for("oversight.alerts"))
        except alert_service.AlertError as exc:
            db.session.rollback()
            form.note.errors = [*form.note.errors, str(exc)]
    entries = alert_service.audit_feed.after(item.entries[0] - 1, limit=item.entries[-1] - item.entries[0] + 1) \
        if item.entries else []
    wanted = set(item.entries)
    return render_template("oversight/alert.html", alert=item, form=form,
                           entries=[e for e in entries if e.id in wanted][:200],
                           incidents=alert_service.incidents_available(_actor()),
                           acknowledger=item.acknowledger)


@bp.route("/alerts/<int:alert_id>/incident", methods=["POST"])
@require(ALERTS, kind="action")
def escalate(alert_id):
    item = _alert_or_404(alert_id)
    try:
        incident = alert_service.escalate(_actor(), item)
        db.session.commit()
    except alert_service.AlertError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
        return redirect(url_for("oversight.alert", alert_id=alert_id))
    flash(_("Incident %(number)s is opened from this alert.", number=incident.number), "success")
    return redirect(url_for("oversight.alert", alert_id=alert_id))
