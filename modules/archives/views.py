"""Pages of the customer archives (blueprint "archives", /archives/): parse, call a service, render.

Every route declares its permission; customers outside the user's remit answer 404 (a requester
with an approved, unexpired request may open that one archive, read-only)."""
from __future__ import annotations

import io

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm.exc import StaleDataError

from core.api import audit, can, db, deny, deny_row, pdf, pick, require, safe_local_url, scoped
from modules.customers import Customer

from . import services
from .forms import AttachmentForm, DecisionForm, DocumentForm, NewDocumentForm, RequestForm
from .models import (
    AMOUNT_TYPES,
    ATTACHMENT_KINDS,
    DOC_TYPES,
    REQUEST_KINDS,
    REQUEST_STATUSES,
    AccessRequest,
    Attachment,
    Document,
)
from .permissions import APPROVE, MANAGE, PRINT, REQUEST, VIEW

bp = Blueprint("archives", __name__, url_prefix="/archives")

STATE_LABELS = {
    "pending": {"zh_CN": "待审批", "en": "Pending"},
    "refused": {"zh_CN": "已拒绝", "en": "Refused"},
    "withdrawn": {"zh_CN": "已撤回", "en": "Withdrawn"},
    "active": {"zh_CN": "有效", "en": "Active"},
    "expired": {"zh_CN": "已到期", "en": "Expired"},
    "returned": {"zh_CN": "已归还", "en": "Returned"},
    "overdue": {"zh_CN": "逾期未还", "en": "Overdue"},
}


@bp.app_template_global("archives_label")
def archives_label(table, key):
    tables = {"doc_type": DOC_TYPES, "request_kind": REQUEST_KINDS, "request_status": REQUEST_STATUSES,
              "state": STATE_LABELS}
    return pick(tables[table].get(key, {"zh_CN": key, "en": key}))


@bp.app_template_global("archives_customer_name")
def archives_customer_name(customer):
    return services.customer_name(customer)


def _can(permission):
    return can(current_user, permission)


def _may_approve():
    return services.decides_requests(current_user._get_current_object())


def _doc_type_choices():
    return [(key, pick(label)) for key, label in DOC_TYPES.items()]


def _prepare(form, customer, keeper_id=None):
    form.doc_type.choices = _doc_type_choices()
    form.keeper_id.choices = [(u.id, str(u)) for u in services.colleagues(customer, keeper_id)]


def _form_data(form):
    return {"doc_type": form.doc_type.data, "title": form.title.data, "doc_date": form.doc_date.data,
            "amount": form.amount.data, "keeper_id": form.keeper_id.data,
            "storage_location": form.storage_location.data or ""}


def _show_error(form, exc):
    field = getattr(form, getattr(exc, "field", None) or "", None)
    if field is not None:
        field.errors = [*field.errors, str(exc)]
    else:
        flash(str(exc), "danger")


# --- lists -------------------------------------------------------------------------------------


@bp.route("/")
@require(VIEW)
def index():
    """Documents of the customers in the user's remit, newest first; exact search by document or
    customer number."""
    q = (request.args.get("q") or "").strip().upper()[:40]
    doc_type = request.args.get("type") or ""
    page = max(request.args.get("page", 1, type=int), 1)
    per_page = 50
    stmt = scoped(select(Document), current_user)
    if q:
        stmt = stmt.where(or_(Document.number == q, Document.customer_id.in_(
            select(Customer.id).where(Customer.number == q))))
    if doc_type in DOC_TYPES:
        stmt = stmt.where(Document.doc_type == doc_type)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    docs = db.session.execute(stmt.order_by(Document.id.desc()).limit(per_page)
                              .offset((page - 1) * per_page)).scalars().all()
    return render_template("archives/index.html", docs=docs, q=q, doc_type=doc_type, page=page,
                           pages=max(1, -(-total // per_page)), total=total, types=_doc_type_choices())


@bp.route("/incomplete")
@require(VIEW)
def incomplete():
    keeper = request.args.get("keeper", type=int)
    page = max(request.args.get("page", 1, type=int), 1)
    groups, total, pages = services.incomplete_archives(current_user, keeper_id=keeper, page=page)
    return render_template("archives/incomplete.html", groups=groups, total=total, page=page, pages=pages,
                           keeper=keeper)


# --- one customer's archive --------------------------------------------------------------------


@bp.route("/<int:customer_id>")
@require(VIEW)
def archive(customer_id):
    acc = services.archive_access(customer_id, current_user)
    if acc.grant is not None:
        services.record_grant_use(acc, "archive")
        db.session.commit()
    customer = acc.customer
    docs = services.documents_of(customer.id)
    missing = services.missing_types(customer, docs)
    requests_ = []
    if acc.in_remit:
        requests_ = db.session.execute(select(AccessRequest).where(
            AccessRequest.customer_id == customer.id)
            .order_by(AccessRequest.id.desc()).limit(20)).scalars().all()
    return render_template(
        "archives/archive.html", customer=customer, docs=docs, missing=missing, acc=acc,
        required=services.required_types(customer.kind), requests=requests_,
        state=services.request_state,
        can_manage=acc.in_remit and _can(MANAGE), can_print=acc.in_remit and _can(PRINT))


@bp.route("/<int:customer_id>/new", methods=["GET", "POST"])
@require(MANAGE, kind="form")
def new_document(customer_id):
    customer = services.archive_access(customer_id, current_user, allow_grant=False).customer
    form = NewDocumentForm()
    _prepare(form, customer)
    if not form.is_submitted():
        colleague_ids = {c[0] for c in form.keeper_id.choices}
        form.keeper_id.data = current_user.id if current_user.id in colleague_ids else customer.owner_id
        form.doc_date.data = services.today()
        form.doc_type.data = request.args.get("type") if request.args.get("type") in DOC_TYPES else None
    if form.validate_on_submit():
        path = None
        try:
            upload = form.attachment.data
            data = None
            if upload and upload.filename:
                data = services.read_upload(upload.stream)
                services.sanitise_filename(upload.filename, services.sniff(data))  # refuse before numbering
            doc = services.create_document(current_user, customer, _form_data(form))
            if data is not None:
                path = services.add_attachment(current_user, doc, upload.filename, data)[1]
            db.session.commit()
        except services.AttachmentError as exc:
            db.session.rollback()
            form.attachment.errors = [*form.attachment.errors, str(exc)]
        except services.ArchiveError as exc:
            db.session.rollback()
            _show_error(form, exc)
        except BaseException:
            db.session.rollback()
            if path is not None:
                services.remove_files([path])
            raise
        else:
            flash(_("Document %(number)s registered.", number=doc.number), "success")
            return redirect(url_for("archives.document", doc_id=doc.id))
    return render_template("archives/document_form.html", form=form, customer=customer, doc=None,
                           amount_types=AMOUNT_TYPES)


@bp.route("/<int:customer_id>/form.pdf")
@require(PRINT, kind="download")
def form_pdf(customer_id):
    """The archive form (客户档案表) as an A4 PDF; only for customers in the user's own remit."""
    customer = services.customer_in_remit(customer_id, current_user)
    if customer is None:
        deny_row(Customer, customer_id)
    context = services.form_context(customer, current_user)
    return pdf.response("archives/form_pdf.html", filename=f"客户档案表-{customer.number}.pdf",
                        action="archives.form.printed", target=customer,
                        fallback=url_for("archives.archive", customer_id=customer_id),
                        audit_details={"documents": len(context["register"])}, **context)


# --- documents ---------------------------------------------------------------------------------


@bp.route("/documents/<int:doc_id>")
@require(VIEW)
def document(doc_id):
    doc, acc = services.document_access(doc_id, current_user)
    if acc.grant is not None:
        services.record_grant_use(acc, "document", document=doc.number)
        db.session.commit()
    attachments = [(att, services.attachment_filename(att)) for att in doc.attachments]
    can_manage = acc.in_remit and _can(MANAGE)
    return render_template("archives/document.html", doc=doc, acc=acc, attachments=attachments,
                           can_manage=can_manage, upload_form=AttachmentForm() if can_manage else None,
                           kinds=ATTACHMENT_KINDS, human_size=services.human_size,
                           limit=services.human_size(services.max_attachment()))


@bp.route("/documents/<int:doc_id>/edit", methods=["GET", "POST"])
@require(MANAGE, kind="form")
def edit_document(doc_id):
    doc, acc = services.document_access(doc_id, current_user, allow_grant=False)
    form = DocumentForm(obj=None if request.method == "POST" else doc)
    _prepare(form, acc.customer, doc.keeper_id)
    if not form.is_submitted():
        form.amount.data = doc.amount
        form.version.data = str(doc.version)
    if form.validate_on_submit():
        try:
            services.update_document(current_user, doc, _form_data(form), form.version.data or None)
            db.session.commit()
        except services.ArchiveError as exc:
            db.session.rollback()
            _show_error(form, exc)
        except StaleDataError:  # a colleague saved in between the check and the write
            db.session.rollback()
            flash(services.stale_message(), "danger")
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("archives.document", doc_id=doc.id))
    return render_template("archives/document_form.html", form=form, customer=acc.customer, doc=doc,
                           amount_types=AMOUNT_TYPES)


@bp.route("/documents/<int:doc_id>/delete", methods=["POST"])
@require(MANAGE, kind="action")
def delete_document(doc_id):
    doc, acc = services.document_access(doc_id, current_user, allow_grant=False)
    number, customer_id = doc.number, acc.customer.id
    paths = services.delete_document(current_user, doc)
    db.session.commit()
    services.remove_files(paths)
    flash(_("Document %(number)s deleted; its number will not be used again.", number=number), "success")
    return redirect(url_for("archives.archive", customer_id=customer_id))


@bp.route("/documents/<int:doc_id>/attachments", methods=["POST"])
@require(MANAGE, kind="action")
def upload(doc_id):
    doc, acc = services.document_access(doc_id, current_user, allow_grant=False)
    form = AttachmentForm()
    if form.validate_on_submit():
        path = None
        try:
            data = services.read_upload(form.attachment.data.stream)
            path = services.add_attachment(current_user, doc, form.attachment.data.filename, data)[1]
            db.session.commit()
        except services.ArchiveError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        except BaseException:
            db.session.rollback()
            if path is not None:
                services.remove_files([path])
            raise
        else:
            flash(_("Attachment stored (encrypted)."), "success")
    else:
        for errors in form.errors.values():
            for error in errors:
                flash(str(error), "danger")
    return redirect(url_for("archives.document", doc_id=doc_id))


@bp.route("/attachments/<int:att_id>")
@require(VIEW, kind="download")
def download(att_id):
    att = db.session.get(Attachment, att_id)
    if att is None:
        abort(404)
    doc, acc = services.document_access(att.document_id, current_user)
    try:
        data = services.read_attachment(att)
        name = services.attachment_filename(att) or f"{doc.number}{ATTACHMENT_KINDS[att.kind][1][0]}"
    except services.AttachmentGone:
        db.session.rollback()
        return render_template("archives/gone.html", doc=doc), 410
    services.record_grant_use(acc, "attachment", document=doc.number)
    audit.record("archives.attachment.downloaded", target=att, document=doc.number,
                 customer_id=doc.customer_id)
    mimetype = att.mimetype
    db.session.commit()
    response = send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=name,
                         conditional=False, etag=False, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.route("/attachments/<int:att_id>/delete", methods=["POST"])
@require(MANAGE, kind="action")
def delete_attachment(att_id):
    att = db.session.get(Attachment, att_id)
    if att is None:
        abort(404)
    doc_id = att.document_id
    services.document_access(doc_id, current_user, allow_grant=False)
    path = services.delete_attachment(current_user, att)
    db.session.commit()
    services.remove_files([path])
    flash(_("Attachment deleted."), "success")
    return redirect(url_for("archives.document", doc_id=doc_id))


# --- view / borrow requests --------------------------------------------------------------------


@bp.route("/requests")
@require(REQUEST)
def requests():
    return _requests_page()


def _requests_page(decision_errors=None, typed=None, status=200):
    """The requests page; ``decision_errors`` {request id: message} shows a refused decision's
    message under that request's reason field, with what was typed (``typed``) kept."""
    mine = services.my_requests(current_user)
    pending, decided = services.department_requests(current_user) if _may_approve() else ([], [])
    db.session.commit()  # expiry stamps noticed on the way
    return render_template("archives/requests.html", mine=mine, pending=pending, decided=decided,
                           can_approve=_may_approve(), can_manage=_can(MANAGE), state=services.request_state,
                           decision_form=DecisionForm(), decision_errors=decision_errors or {},
                           typed=typed or {}), status


@bp.route("/requests/new", methods=["GET", "POST"])
@require(REQUEST, kind="form")
def new_request():
    form = RequestForm()
    form.kind.choices = [(key, pick(label)) for key, label in REQUEST_KINDS.items()]
    if not form.is_submitted():
        form.customer_number.data = request.args.get("number", "")[:20]
    if form.validate_on_submit():
        try:
            services.create_request(current_user, form.customer_number.data, form.kind.data,
                                    form.purpose.data, form.until.data)
            db.session.commit()
        except services.ArchiveError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            flash(_("Request sent to the head of the customer's department."), "success")
            return redirect(url_for("archives.requests"))
    return render_template("archives/request_form.html", form=form,
                           max_days=services.max_access_days())


@bp.route("/requests/<int:request_id>/approve", methods=["POST"])
@require(REQUEST, kind="action")
def approve(request_id):
    return _decide(request_id, "approve")


@bp.route("/requests/<int:request_id>/refuse", methods=["POST"])
@require(REQUEST, kind="action")
def refuse(request_id):
    return _decide(request_id, "refuse")


def _decide(request_id, decision):
    req = services.request_for_approver(request_id, current_user)  # 404 outside the department
    if not _may_approve():
        deny(APPROVE)
    form = DecisionForm()
    if not form.validate_on_submit():
        message = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return _requests_page({req.id: message}, {req.id: form.reason.data or ""}, 400)
    try:
        if decision == "approve":
            services.approve_request(current_user, req, form.reason.data)
        else:
            services.refuse_request(current_user, req, form.reason.data)
        db.session.commit()
    except services.ArchiveError as exc:
        db.session.rollback()
        if req.status == "pending":  # still on the page: the message goes under its reason field
            return _requests_page({req.id: str(exc)}, {req.id: form.reason.data or ""}, 400)
        flash(str(exc), "danger")
    else:
        flash(_("Request approved.") if decision == "approve" else _("Request refused."), "success")
    return redirect(url_for("archives.requests"))


def _change_request(request_id, change, done_message):
    """Load a request (audited 404 when missing), apply one service change, commit or flash why not."""
    req = db.session.get(AccessRequest, request_id)
    if req is None:
        deny_row(AccessRequest, request_id)
    try:
        change(current_user, req)
        db.session.commit()
    except services.ArchiveError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
    else:
        flash(done_message, "success")


@bp.route("/requests/<int:request_id>/withdraw", methods=["POST"])
@require(REQUEST, kind="action")
def withdraw(request_id):
    _change_request(request_id, services.withdraw_request, _("Request withdrawn."))
    return redirect(url_for("archives.requests"))


@bp.route("/requests/<int:request_id>/returned", methods=["POST"])
@require(MANAGE, kind="action")
def returned(request_id):
    _change_request(request_id, services.mark_returned, _("Return of the paper originals recorded."))
    target = safe_local_url(request.form.get("next"), url_for("archives.overdue"))
    if not target.startswith("/archives/"):
        target = url_for("archives.overdue")
    return redirect(target)


@bp.route("/overdue")
@require(VIEW)
def overdue():
    rows = services.overdue_borrowings(current_user)
    return render_template("archives/overdue.html", rows=rows, can_manage=_can(MANAGE), today=services.today())
