"""Pages of the disclosure module (blueprint "disclosure", /disclosure/): parse, call a service,
render. Requests outside the user's remit (services.request_rule) answer 404."""
from __future__ import annotations

import datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core.api import (
    User,
    can,
    db,
    declared_purposes,
    deny,
    get_or_404,
    local_now,
    pdf,
    pick,
    require,
    to_local,
)
from modules.customers import FIELDS, PURPOSES, ExportError, export_customers

from . import services
from .models import CATEGORIES, KINDS, LEGAL_BASES, STATUSES, Notice, Recipient, Request
from .permissions import ADMINS, NOTICE, RECIPIENTS, REQUEST, VIEW

bp = Blueprint("disclosure", __name__, url_prefix="/disclosure", template_folder="templates")

MIME = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@bp.app_template_global("disclosure_label")
def disclosure_label(table, key):
    tables = {"kind": KINDS, "category": CATEGORIES, "basis": LEGAL_BASES, "status": STATUSES,
              "purpose": PURPOSES, "field": {k: f.label for k, f in FIELDS.items()}}
    return pick(tables[table].get(key, {"zh_CN": key or "—", "en": key or "—"}))


def _actor():
    return current_user._get_current_object()


def _purposes():
    return [k for k in PURPOSES if k in declared_purposes()]


@bp.route("/")
@require(VIEW, kind="read")
def index():
    actor = _actor()
    return render_template("disclosure/index.html", requests=services.visible_requests(actor),
                           waiting=services.waiting(actor), report=services.department_report(actor)
                           if services.sees_department(actor) or actor.role == "security" else None,
                           is_info_admin=services.is_info_admin(actor))


def _request_form(errors=None, values=None, status=200):
    in_force = [r for r in services.recipients() if services.agreement_in_force(r)]
    return render_template("disclosure/new.html", errors=errors or {}, values=values or {}, recipients=in_force,
                           fields=FIELDS, purposes=_purposes(), bases=LEGAL_BASES), status


@bp.route("/requests/new", methods=["GET", "POST"])
@require(REQUEST, kind="form")
def new():
    if request.method == "GET":
        return _request_form()
    values = {"fields": request.form.getlist("fields"), "purpose": request.form.get("purpose"),
              "legal_basis": request.form.get("legal_basis"), "reason": request.form.get("reason", ""),
              "retention_days": request.form.get("retention_days", ""), "customers": request.form.get("customers", ""),
              "recipient_id": request.form.get("recipient_id", "")}
    try:
        req = services.create_request(_actor(), values)
        db.session.commit()
    except services.DisclosureError as exc:
        db.session.rollback()
        return _request_form(exc.errors, values, 400)
    flash(_("Request %(number)s made: a second person must approve it.", number=req.number), "success")
    return redirect(url_for("disclosure.detail", request_id=req.id))


def _render_detail(request_id, errors=None, status=200):
    req = get_or_404(Request, request_id, _actor())
    return render_template("disclosure/detail.html", req=req, errors=errors or {},
                           may_decide=services.may_decide(_actor(), req)), status


@bp.route("/requests/<int:request_id>")
@require(VIEW, kind="read")
def detail(request_id):
    return _render_detail(request_id)


def _decide(request_id, approve):
    actor = _actor()
    req = get_or_404(Request, request_id, actor)
    try:
        services.decide(actor, req, approve, request.form.get("reason", ""))
        db.session.commit()
    except services.DisclosureError as exc:
        if req.status == "pending" and (actor.id == req.requester_id or not services.may_decide(actor, req)):
            db.session.commit()  # the refused attempt stays in the audit trail
        else:
            db.session.rollback()
        return _render_detail(request_id, errors=exc.errors, status=400 if actor.id != req.requester_id else 403)
    flash(_("Request approved.") if approve else _("Request refused."), "success")
    return redirect(url_for("disclosure.detail", request_id=request_id))


@bp.route("/requests/<int:request_id>/approve", methods=["POST"])
@require(VIEW, kind="action")
def approve(request_id):
    return _decide(request_id, True)


@bp.route("/requests/<int:request_id>/refuse", methods=["POST"])
@require(VIEW, kind="action")
def refuse(request_id):
    return _decide(request_id, False)


@bp.route("/requests/<int:request_id>/produce", methods=["POST"])
@require(REQUEST, kind="action")
def produce(request_id):
    """The approved request's file, once (through the customer register's export service)."""
    actor = _actor()
    req = get_or_404(Request, request_id, actor)
    fmt = request.form.get("fmt") if request.form.get("fmt") in MIME else "xlsx"
    try:
        data, _count = export_customers(actor, fmt, req.reason, request=req.id)
    except ExportError as exc:
        db.session.rollback()
        return _render_detail(request_id, errors={"": str(exc)}, status=400)
    stamp = local_now().strftime("%Y%m%d-%H%M%S")
    response = Response(data, mimetype=MIME[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="kehu-{req.number}-{stamp}.{fmt}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --- recipients ----------------------------------------------------------------------------------

@bp.route("/recipients")
@require(VIEW, kind="read")
def recipients():
    return render_template("disclosure/recipients.html", recipients=services.recipients(),
                           expiring={r.id for r in services.expiring_recipients()},
                           in_force=services.agreement_in_force, can_manage=can(_actor(), RECIPIENTS))


def _recipient_form(recipient=None, errors=None, values=None, status=200):
    if values is None and recipient is not None:
        values = {"name": recipient.name, "kind": recipient.kind, "contact": recipient.contact,
                  "categories": recipient.category_list, "purposes": recipient.purpose_list}
    return render_template("disclosure/recipient.html", recipient=recipient, errors=errors or {},
                           values=values or {}, kinds=KINDS, categories=CATEGORIES, purposes=_purposes(),
                           in_force=services.agreement_in_force(recipient) if recipient else False,
                           can_manage=can(_actor(), RECIPIENTS)), status


@bp.route("/recipients/new", methods=["GET", "POST"])
@require(RECIPIENTS, kind="form")
def recipient_new():
    if request.method == "GET":
        return _recipient_form()
    return _save_recipient(None)


def _save_recipient(recipient):
    values = {"name": request.form.get("name", ""), "kind": request.form.get("kind"),
              "contact": request.form.get("contact", ""), "categories": request.form.getlist("categories"),
              "purposes": request.form.getlist("purposes")}
    try:
        recipient = services.save_recipient(_actor(), values, recipient)
        db.session.commit()
    except services.DisclosureError as exc:
        db.session.rollback()
        return _recipient_form(recipient, exc.errors, values, 400)
    flash(_("Recipient saved."), "success")
    return redirect(url_for("disclosure.recipient", recipient_id=recipient.id))


def _recipient_or_404(recipient_id):
    recipient = db.session.get(Recipient, recipient_id)
    if recipient is None:
        abort(404)
    return recipient


@bp.route("/recipients/<int:recipient_id>", methods=["GET", "POST"])
@require(VIEW, kind="form")
def recipient(recipient_id):
    recipient = _recipient_or_404(recipient_id)
    if request.method == "GET":
        return _recipient_form(recipient)
    if not can(_actor(), RECIPIENTS):
        deny(RECIPIENTS)
    return _save_recipient(recipient)


@bp.route("/recipients/<int:recipient_id>/agreement", methods=["POST"])
@require(RECIPIENTS, kind="action")
def agreement_upload(recipient_id):
    recipient = _recipient_or_404(recipient_id)
    upload = request.files.get("file")
    try:
        expires = datetime.date.fromisoformat(request.form.get("expires", ""))
    except ValueError:
        expires = None
    try:
        services.upload_agreement(_actor(), recipient, upload.filename if upload else "",
                                  upload.read() if upload else b"", expires)
        db.session.commit()
    except services.DisclosureError as exc:
        db.session.rollback()
        return _recipient_form(recipient, exc.errors, None, 400)
    flash(_("Agreement stored."), "success")
    return redirect(url_for("disclosure.recipient", recipient_id=recipient.id))


@bp.route("/recipients/<int:recipient_id>/agreement.pdf")
@require(RECIPIENTS, kind="download")
def agreement_download(recipient_id):
    recipient = _recipient_or_404(recipient_id)
    data = services.read_agreement(_actor(), recipient)
    if data is None:
        abort(404)
    db.session.commit()
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="agreement-{recipient.id}.pdf"'
    response.headers["Cache-Control"] = "no-store"
    return response


# --- information administrators ------------------------------------------------------------------

@bp.route("/info-admins", methods=["GET", "POST"])
@require(ADMINS, kind="form")
def info_admins():
    actor = _actor()
    problem, status = None, 200
    if request.method == "POST":
        user_id = request.form.get("user_id", type=int)
        user = db.session.get(User, user_id) if user_id else None
        try:
            services.set_info_admin(actor, user, request.form.get("grant") == "1")
            db.session.commit()
        except services.DisclosureError as exc:
            db.session.rollback()
            problem, status = " ".join(str(m) for m in exc.errors.values()), 400
        else:
            flash(_("Information administrators saved."), "success")
            return redirect(url_for("disclosure.info_admins"))
    admins = {a.user_id for a in services.info_admins(actor.department_id)}
    return render_template("disclosure/info_admins.html", members=services.department_members(actor),
                           admins=admins, problem=problem), status


# --- the privacy notice --------------------------------------------------------------------------

@bp.route("/notice", methods=["GET", "POST"])
@require(VIEW, kind="form")
def notice():
    """The current privacy notice, its earlier versions and (security) a form for a new version."""
    errors, values, status = {}, {}, 200
    if request.method == "POST":
        if not can(_actor(), NOTICE):
            deny(NOTICE)
        values = {k: request.form.get(k, "") for k in ("version", "title", "body")}
        try:
            published = services.publish_notice(_actor(), values)
            db.session.commit()
        except services.DisclosureError as exc:
            db.session.rollback()
            errors, status = exc.errors, 400
        else:
            flash(_("Privacy notice version %(v)s published: new consents record it.", v=published.version),
                  "success")
            return redirect(url_for("disclosure.notice"))
    return render_template("disclosure/notice.html", current=services.current_notice(), notices=services.notices(),
                           errors=errors, values=values, can_publish=can(_actor(), NOTICE)), status


def _notice_or_404(notice_id):
    found = db.session.get(Notice, notice_id)
    if found is None:
        abort(404)
    return found


@bp.route("/notice/<int:notice_id>")
@require(VIEW, kind="read")
def notice_version(notice_id):
    return render_template("disclosure/notice.html", current=_notice_or_404(notice_id), notices=services.notices(),
                           errors={}, values={}, can_publish=False)


@bp.route("/notice/<int:notice_id>/pdf")
@require(VIEW, kind="download")
def notice_pdf(notice_id):
    shown = _notice_or_404(notice_id)
    return pdf.response("disclosure/notice_pdf.html", filename=f"个人信息处理告知书-{shown.version}.pdf",
                        action="disclosure.notice.printed", target=shown,
                        fallback=url_for("disclosure.notice_version", notice_id=shown.id),
                        title=shown.title, notice=shown,
                        published=to_local(shown.published_at).strftime("%Y-%m-%d"))
