"""Pages of the visits module (blueprint "visits", /visits/): parse, call a service, render.

Every route declares its permission and kind. A visit or customer outside the user's remit
answers 404 through ``get_or_404`` / ``get_customer`` (core audits the refusal); a visit the user
may see but not change answers 403 (audited too)."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm.exc import StaleDataError

from core.api import can, crypto, db, deny, get_or_404, pdf, pick, require
from modules.customers import get_customer, masked_fields

from . import services
from .forms import VisitForm
from .models import CHANNELS, Visit
from .permissions import LOG, PRINT, VIEW

bp = Blueprint("visits", __name__, url_prefix="/visits")

PER_PAGE = 50


@bp.app_template_global("visits_channel")
def visits_channel(key):
    return pick(CHANNELS.get(key, {"zh_CN": key, "en": key}))


@bp.app_template_global("visits_customer_name")
def visits_customer_name(customer):
    return services.customer_name(customer)


def _actor():
    return current_user._get_current_object()


def _channel_choices():
    return [("", _("Choose…"))] + [(key, pick(label)) for key, label in CHANNELS.items()]


def _show_error(form, exc):
    target = getattr(form, exc.field, None) if exc.field else None
    if target is not None:
        target.errors = [*target.errors, str(exc)]
    else:
        flash(str(exc), "danger")


def _visit_or_404(visit_id):
    return get_or_404(Visit, visit_id, _actor())


def _changeable_or_403(visit):
    if not services.can_change(_actor(), visit):
        deny(LOG)


def _date_arg(name):
    """(date or None, whether the value was given but is not a date)."""
    value = (request.args.get(name) or "").strip()
    if not value:
        return None, False
    try:
        return date.fromisoformat(value), False
    except ValueError:
        return None, True


# --- lists -------------------------------------------------------------------------------------


@bp.route("/")
@require(VIEW)
def index():
    """The visits I logged (a head may switch to the department's), newest first, with filters."""
    actor = _actor()
    date_from, bad_from = _date_arg("from")
    date_to, bad_to = _date_arg("to")
    channel = request.args.get("channel") or ""
    channel = channel if channel in CHANNELS else ""
    may_department = services.manages_department(actor, actor.department_id)
    department = may_department and request.args.get("who") == "department"
    page = max(request.args.get("page", 1, type=int), 1)
    rows, total = services.recent(actor, date_from=date_from, date_to=date_to, channel=channel,
                                  department=department, page=page, per_page=PER_PAGE)
    filters = {"from": date_from.isoformat() if date_from else "", "to": date_to.isoformat() if date_to else "",
               "channel": channel, "who": "department" if department else ""}
    return render_template("visits/index.html", visits=rows, total=total, page=page,
                           pages=max(1, -(-total // PER_PAGE)), filters=filters, bad_date=bad_from or bad_to,
                           channels=[(k, pick(v)) for k, v in CHANNELS.items()],
                           may_department=may_department, department=department)


@bp.route("/due")
@require(VIEW)
def due():
    """待联系: the pending next contacts, overdue first (a head sees the department's)."""
    return render_template("visits/due.html", due=services.due(_actor()), today=services.today(),
                           days=services.DUE_DAYS)


@bp.route("/customers/<int:customer_id>")
@require(VIEW)
def customer(customer_id):
    """Every visit of one customer."""
    cust = get_customer(customer_id, _actor())
    return render_template("visits/customer.html", customer=cust, visits=services.visits_of(cust.id),
                           can_log=can(current_user, LOG))


# --- logging and changing ----------------------------------------------------------------------


def _render_form(form, customer, visit, status=200):
    return render_template("visits/form.html", form=form, customer=customer, visit=visit), status


@bp.route("/customers/<int:customer_id>/new", methods=["GET", "POST"])
@require(LOG, kind="form")
def new(customer_id):
    actor = _actor()
    cust = get_customer(customer_id, actor)
    form = VisitForm()
    form.channel.choices = _channel_choices()
    if not form.is_submitted():
        form.visited_on.data = services.today()
        return _render_form(form, cust, None)
    if form.validate():
        try:
            visit = services.log_visit(actor, cust, form.data_dict())
            db.session.commit()
        except services.VisitError as exc:
            db.session.rollback()
            _show_error(form, exc)
        else:
            flash(_("Visit logged."), "success")
            return redirect(url_for("visits.detail", visit_id=visit.id))
    return _render_form(form, cust, None, 400)


@bp.route("/<int:visit_id>")
@require(VIEW)
def detail(visit_id):
    visit = _visit_or_404(visit_id)
    actor = _actor()
    return render_template("visits/detail.html", visit=visit, notes=services.notes_of(visit),
                           can_change=services.can_change(actor, visit), can_print=can(actor, PRINT))


@bp.route("/<int:visit_id>/edit", methods=["GET", "POST"])
@require(LOG, kind="form")
def edit(visit_id):
    visit = _visit_or_404(visit_id)
    _changeable_or_403(visit)
    form = VisitForm()
    form.channel.choices = _channel_choices()
    if not form.is_submitted():
        form.process(data={"visited_on": visit.visited_on, "channel": visit.channel, "purpose": visit.purpose,
                           "notes": services.notes_of(visit), "next_step": visit.next_step,
                           "next_contact_on": visit.next_contact_on, "version": visit.version})
        return _render_form(form, visit.customer, visit)
    if form.validate():
        try:
            changed = services.update_visit(_actor(), visit, form.data_dict(), version=form.version.data)
            db.session.commit()
        except services.VisitError as exc:
            db.session.rollback()
            _show_error(form, exc)
        except StaleDataError:
            db.session.rollback()
            flash(services.stale_message(), "danger")
        else:
            flash(_("Visit saved.") if changed else _("Nothing was changed."), "success" if changed else "info")
            return redirect(url_for("visits.detail", visit_id=visit_id))
    return _render_form(form, visit.customer, visit, 400)


@bp.route("/<int:visit_id>/delete", methods=["POST"])
@require(LOG, kind="action")
def delete(visit_id):
    visit = _visit_or_404(visit_id)
    _changeable_or_403(visit)
    customer_id = visit.customer_id
    services.delete_visit(_actor(), visit)
    db.session.commit()
    flash(_("Visit deleted."), "success")
    return redirect(url_for("visits.customer", customer_id=customer_id))


# --- the visit report PDF ------------------------------------------------------------------------


def report_context(visit, actor):
    """Plain-text context of the visit report (拜访记录表): a Chinese document. The customer's
    personal fields come masked from the customer register; the notes are L1 like the name, in
    clear for whoever may see the customer (the only users who reach this view)."""
    customer = visit.customer
    try:
        fields = [(label.get("zh_CN") or name, str(value)) for name, label, value in masked_fields(customer, actor)]
    except crypto.DecryptionError:  # the customer's data key has been destroyed
        fields = []
    rows = [
        ("拜访日期", visit.visited_on.isoformat()),
        ("联系方式", CHANNELS.get(visit.channel, {}).get("zh_CN", visit.channel)),
        ("拜访目的", visit.purpose),
        ("记录人", str(visit.author) if visit.author else ""),
        ("跟进人", str(visit.owner) if visit.owner else ""),
        ("下一步", visit.next_step or ""),
        ("下次联系日期", visit.next_contact_on.isoformat() if visit.next_contact_on else ""),
    ]
    return {"title": "拜访记录表", "customer_number": customer.number,
            "display_name": services.customer_name(customer), "personal": fields, "visit_rows": rows,
            "notes": services.notes_of(visit) or "", "printed_by": str(actor)}


@bp.route("/<int:visit_id>/report.pdf")
@require(PRINT, kind="download")
def report(visit_id):
    visit = _visit_or_404(visit_id)
    actor = _actor()
    context = report_context(visit, actor)
    return pdf.response("visits/report_pdf.html",
                        filename=f"拜访记录表-{visit.customer.number}-{visit.visited_on.isoformat()}.pdf",
                        action="visits.report.printed", target=visit,
                        fallback=url_for("visits.detail", visit_id=visit.id),
                        audit_details={"customer_id": visit.customer_id}, **context)

