"""Disclosure services: requests and their approval, the register of recipients and their
agreements, information administrators. Plain functions taking the acting user; they audit and
leave committing to the caller."""
from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

from flask import url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, false, func, or_, select, true

from core.api import (
    AuditTarget,
    User,
    WorkItem,
    audit,
    can,
    crypto,
    db,
    declared_purposes,
    local_now,
    local_today,
    next_number,
    pick,
    remove_files,
    upload_folder,
    utcnow,
    validation,
    write_private_file,
)
from modules.customers import FIELDS, PURPOSES, Customer, ExportError, ExportGrant, scoped_customers

from .models import CATEGORIES, KINDS, LEGAL_BASES, InfoAdmin, Recipient, Request
from .permissions import ADMINS, RECIPIENTS, REQUEST, VIEW

NUMBER_PREFIX = "DR"
L2, L3 = 2, 3  # the information classes of customers' FIELDS
MAX_AGREEMENT = 20 * 1024 * 1024
EXPIRY_WARNING_DAYS = 30
MAX_RETENTION_DAYS = 3650
STAFF = ("head", "sales", "service")


class DisclosureError(ValueError):
    """A refused action; ``errors`` maps form fields to messages (``""``: the form as a whole)."""

    def __init__(self, errors):
        if not isinstance(errors, dict):
            errors = {"": errors}
        self.errors = errors
        super().__init__(" ".join(str(m) for m in errors.values()))


# --- who may do what -----------------------------------------------------------------------------

def is_info_admin(user, department_id=None):
    """Is ``user`` an information administrator (of ``department_id``, default their own)?"""
    if user is None or not isinstance(user, User) or user.department_id is None:
        return False
    dept = user.department_id if department_id is None else department_id
    if dept != user.department_id:
        return False
    return db.session.scalar(select(InfoAdmin.id).where(InfoAdmin.user_id == user.id,
                                                        InfoAdmin.department_id == dept)) is not None


def may_decide(actor, req):
    """The second person: the security role, or an information administrator of the request's
    department, never the requester."""
    if not isinstance(actor, User) or actor.id == req.requester_id:
        return False
    return actor.role == "security" or is_info_admin(actor, req.department_id)


def sees_department(actor):
    """Heads and information administrators see their department's requests and reports."""
    return isinstance(actor, User) and actor.department_id is not None and (
        actor.role == "head" or is_info_admin(actor))


def request_rule(actor):
    if not isinstance(actor, User):
        return false()
    if actor.role == "security":
        return true()
    if sees_department(actor):
        return or_(Request.department_id == actor.department_id, Request.requester_id == actor.id)
    return Request.requester_id == actor.id


# --- recipients ----------------------------------------------------------------------------------

def agreement_in_force(recipient, on=None):
    on = on or local_today()
    return bool(recipient.agreement_file and recipient.agreement_expires and recipient.agreement_expires >= on)


def _text(value, max_len, field, errors, required=True):
    try:
        text = validation.clean_text(value or "", field_kind="text").strip()
    except validation.ValidationError as exc:
        errors[field] = exc.message
        return ""
    if required and not text:
        errors[field] = _l("This field is required.")
    elif len(text) > max_len:
        errors[field] = _l("Too long: at most %(n)d characters.", n=max_len)
    return text


def _choices(values, allowed, field, errors, required=True):
    values = [v for v in dict.fromkeys(values or []) if v]
    if any(v not in allowed for v in values):
        errors[field] = _l("Not one of the offered choices.")
    elif required and not values:
        errors[field] = _l("Choose at least one.")
    return values


def save_recipient(actor, data, recipient=None):
    """Register a recipient or processor, or change one (name, kind, contact, categories, purposes)."""
    errors = {}
    name = _text(data.get("name"), 200, "name", errors)
    contact = _text(data.get("contact"), 200, "contact", errors)
    kind = data.get("kind")
    if kind not in KINDS:
        errors["kind"] = _l("Not one of the offered choices.")
    categories = _choices(data.get("categories"), CATEGORIES, "categories", errors)
    purposes = _choices(data.get("purposes"), declared_purposes(), "purposes", errors)
    if errors:
        raise DisclosureError(errors)
    created = recipient is None
    if created:
        recipient = Recipient(created_by=actor.id)
        recipient.subject_key = crypto.new_subject_key()
        db.session.add(recipient)
    recipient.name, recipient.kind, recipient.contact = name, kind, contact
    recipient.categories, recipient.purposes = ",".join(categories), ",".join(purposes)
    db.session.flush()
    audit.record("disclosure.recipient.created" if created else "disclosure.recipient.updated",
                 target=recipient, actor=actor, kind=kind, categories=categories, purposes=purposes)
    return recipient


def _agreement_path(recipient):
    return Path(upload_folder("disclosure")) / f"{recipient.uid}.agreement"


def _aad(recipient):
    return f"disclosure_recipient:{recipient.uid}:agreement"


def upload_agreement(actor, recipient, filename, data, expires):
    """Store the signed confidentiality and data-processing agreement (a PDF) encrypted, with
    the date it expires. Replaces the previous one."""
    errors = {}
    if not data:
        errors["file"] = _l("Choose the signed agreement (PDF).")
    elif len(data) > MAX_AGREEMENT:
        errors["file"] = _l("The file is larger than %(n)d MB.", n=MAX_AGREEMENT // (1024 * 1024))
    elif not data.startswith(b"%PDF-"):
        errors["file"] = _l("The agreement must be a PDF file.")
    if not isinstance(expires, datetime.date):
        errors["expires"] = _l("Give the date the agreement expires.")
    elif expires < local_today():
        errors["expires"] = _l("This agreement has already expired.")
    if errors:
        raise DisclosureError(errors)
    name = validation.clean_text(Path(filename or "agreement.pdf").name, field_kind="text")[:200] or "agreement.pdf"
    blob = crypto.encrypt_bytes(recipient.subject_key, data, _aad(recipient))
    path = _agreement_path(recipient)
    write_private_file(path, blob)
    recipient.agreement_file, recipient.agreement_name = path.name, name
    recipient.agreement_sha256 = hashlib.sha256(data).hexdigest()
    recipient.agreement_expires = expires
    db.session.flush()
    audit.record("disclosure.agreement.uploaded", target=recipient, actor=actor, sha256=recipient.agreement_sha256,
                 expires=expires.isoformat(), size=len(data))
    return recipient


def read_agreement(actor, recipient):
    """The agreement's plaintext (audited), or None when none is stored."""
    if not recipient.agreement_file:
        return None
    blob = _agreement_path(recipient).read_bytes()
    data = crypto.decrypt_bytes(recipient.subject_key, blob, _aad(recipient))
    audit.record("disclosure.agreement.downloaded", target=recipient, actor=actor, sha256=recipient.agreement_sha256)
    return data


def recipients():
    return db.session.scalars(select(Recipient).order_by(Recipient.name, Recipient.id)).all()


def expiring_recipients(days=EXPIRY_WARNING_DAYS):
    """Recipients whose agreement is missing, expired or expires within ``days``."""
    limit = local_today() + datetime.timedelta(days=days)
    return db.session.scalars(select(Recipient).where(or_(
        Recipient.agreement_expires.is_(None), Recipient.agreement_expires <= limit))
        .order_by(Recipient.agreement_expires, Recipient.name)).all()


def drop_agreement_files(recipient_list):
    remove_files([_agreement_path(r) for r in recipient_list if r.agreement_file])


# --- requests ------------------------------------------------------------------------------------

def sensitive_fields(names):
    return [n for n in names if FIELDS[n].level in (L2, L3)]


def _customer_ids(actor, numbers, errors):
    """Ids of the customers numbered ``numbers`` within the actor's remit."""
    if not numbers:
        return None
    found = dict(db.session.execute(scoped_customers(actor).where(Customer.number.in_(numbers))
                                    .with_only_columns(Customer.number, Customer.id)).all())
    missing = [n for n in numbers if n not in found]
    if missing:
        errors["customers"] = _l("Not customers of yours: %(numbers)s", numbers="、".join(missing[:10]))
    return [found[n] for n in numbers if n in found]


def _recipient_problem(recipient, purpose, fields):
    """Why ``recipient`` may not receive ``fields`` for ``purpose``, or None."""
    if not agreement_in_force(recipient):
        return _l("The agreement of %(name)s is not in force (missing or expired): no disclosure to it.",
                  name=recipient.name)
    if purpose not in recipient.purpose_list:
        return _l("%(name)s is not registered to receive data for this purpose.", name=recipient.name)
    levels = {"public": 0, "l1": 1, "l2": 2, "l3": 3}
    allowed = {levels[c] for c in recipient.category_list}
    if any(FIELDS[f].level not in allowed for f in fields):
        return _l("%(name)s is not registered to receive data of these classes.", name=recipient.name)
    return None


def create_request(actor, data):
    """A request for a clear-text export (L2/L3 fields) or a disclosure to a recipient."""
    if not can(actor, REQUEST) or actor.department_id is None:
        raise DisclosureError(_l("You may not request exports or disclosures."))
    errors = {}
    fields = _choices(data.get("fields"), FIELDS, "fields", errors)
    purpose = data.get("purpose")
    if purpose not in declared_purposes() or purpose not in PURPOSES:
        errors["purpose"] = _l("Not one of the offered choices.")
    legal_basis = data.get("legal_basis")
    if legal_basis not in LEGAL_BASES:
        errors["legal_basis"] = _l("Not one of the offered choices.")
    reason = _text(data.get("reason"), 500, "reason", errors)
    try:
        retention = int(str(data.get("retention_days") or "").strip())
    except ValueError:
        retention = 0
    if not 1 <= retention <= MAX_RETENTION_DAYS:
        errors["retention_days"] = _l("Give the days the recipient may keep the data (1 to %(n)d).",
                                      n=MAX_RETENTION_DAYS)
    raw = str(data.get("customers") or "").replace("，", ",").replace("\n", ",").replace(" ", ",")
    numbers = list(dict.fromkeys(n.strip().upper() for n in raw.split(",") if n.strip()))
    ids = _customer_ids(actor, numbers, errors)
    recipient = None
    recipient_id = data.get("recipient_id")
    if recipient_id not in (None, "", "0", 0):
        recipient = db.session.get(Recipient, int(recipient_id)) if str(recipient_id).isdigit() else None
        if recipient is None:
            errors["recipient_id"] = _l("Not one of the offered choices.")
        elif "fields" not in errors and "purpose" not in errors:
            problem = _recipient_problem(recipient, purpose, fields)
            if problem:
                errors["recipient_id"] = problem
    if recipient is None and "recipient_id" not in errors and fields and "fields" not in errors \
            and not sensitive_fields(fields):
        errors["fields"] = _l("Without a recipient a request is only needed for L2/L3 fields in clear text; "
                              "an export of other fields needs none.")
    if errors:
        raise DisclosureError(errors)
    req = Request(number=next_number(NUMBER_PREFIX), requester_id=actor.id, department_id=actor.department_id,
                  recipient_id=recipient.id if recipient else None, purpose=purpose, legal_basis=legal_basis,
                  fields=",".join(fields), customers=",".join(numbers), retention_days=retention, reason=reason)
    db.session.add(req)
    db.session.flush()
    audit.record("disclosure.request.created", target=req, actor=actor, number=req.number,
                 recipient_id=req.recipient_id, purpose=purpose, legal_basis=legal_basis, fields=fields,
                 customers=len(ids) if ids is not None else "remit", retention_days=retention)
    return req


def _refuse(actor, req, step, message):
    audit.record("disclosure.request.denied", target=req, actor=actor, result="refused", number=req.number,
                 step=step)
    raise DisclosureError(message)


def decide(actor, req, approve, reason=""):
    """Approve or refuse a pending request: only a second person (see may_decide)."""
    if req.status != "pending":
        raise DisclosureError(_l("This request has already been decided."))
    if isinstance(actor, User) and actor.id == req.requester_id:
        _refuse(actor, req, "decide", _l("You cannot decide your own request: a second person must."))
    if not may_decide(actor, req):
        _refuse(actor, req, "decide", _l("Only an information administrator of the department or the security "
                                         "officer decides this request."))
    errors = {}
    reason = _text(reason, 500, "reason", errors, required=not approve)
    if errors:
        raise DisclosureError(errors)
    if approve and req.recipient is not None:
        problem = _recipient_problem(req.recipient, req.purpose, req.field_list)
        if problem:
            _refuse(actor, req, "approve", problem)
    req.status = "approved" if approve else "refused"
    req.decided_by, req.decided_at, req.decision_reason = actor.id, utcnow(), reason
    audit.record("disclosure.request.approved" if approve else "disclosure.request.refused", target=req,
                 actor=actor, number=req.number, requester_id=req.requester_id, recipient_id=req.recipient_id)
    return req


def find_request(request):
    text = str(request).strip()
    if text.isdigit():
        return db.session.get(Request, int(text))
    return db.session.scalar(select(Request).where(Request.number == text.upper()))


def _watermark(req):
    recipient = req.recipient.name if req.recipient else "本单位内部"
    approver = req.decider.username if req.decider else ""
    return (f"依据审批通过的申请 {req.number} 生成 · 接收方：{recipient} · 用途：{PURPOSES[req.purpose]['zh_CN']} · "
            f"批准人：{approver} · 接收方保存期限：{req.retention_days} 天 · "
            f"生成时间：{local_now().strftime('%Y-%m-%d %H:%M')} · 仅限一次，不得转发")


def export_grant(actor, request):
    """customers.export_grant: the approved, not yet produced request of the actor, as an
    ExportGrant; ExportError with the reason when it exists but may not be used."""
    req = find_request(request)
    if req is None or not isinstance(actor, User):
        return None
    if req.requester_id != actor.id:
        audit.record("disclosure.request.denied", target=req, actor=actor, result="refused", number=req.number,
                     step="produce", reason="not_requester")
        db.session.commit()
        raise ExportError(_("Only the requester produces the file of request %(number)s.", number=req.number))
    if req.status == "produced":
        audit.record("disclosure.request.denied", target=req, actor=actor, result="refused", number=req.number,
                     step="produce", reason="already_produced")
        db.session.commit()
        raise ExportError(_("The file of request %(number)s has already been produced; it is produced once.",
                            number=req.number))
    if req.status != "approved":
        audit.record("disclosure.request.denied", target=req, actor=actor, result="refused", number=req.number,
                     step="produce", reason="not_approved")
        db.session.commit()
        raise ExportError(_("Request %(number)s has not been approved.", number=req.number))
    if req.recipient is not None and not agreement_in_force(req.recipient):
        audit.record("disclosure.request.denied", target=req, actor=actor, result="refused", number=req.number,
                     step="produce", reason="agreement_not_in_force")
        db.session.commit()
        raise ExportError(str(_recipient_problem(req.recipient, req.purpose, req.field_list)))
    errors = {}
    ids = _customer_ids(actor, req.customer_numbers, errors)
    purpose = None
    if req.legal_basis == "consent":
        purpose = "disclosure" if req.recipient is not None else req.purpose

    def produced(sha256, rows, skipped):
        req.status, req.produced_at = "produced", utcnow()
        req.file_sha256, req.rows, req.skipped = sha256, rows, skipped
        audit.record("disclosure.request.produced", target=req, actor=actor, number=req.number, sha256=sha256,
                     rows=rows, skipped_no_consent=skipped, approved_by=req.decided_by,
                     recipient_id=req.recipient_id)

    return ExportGrant(number=req.number, fields=tuple(req.field_list), customer_ids=ids, purpose=purpose,
                       watermark=_watermark(req), produced=produced)


def waiting(actor):
    """Pending requests the actor may decide."""
    if not isinstance(actor, User):
        return []
    stmt = select(Request).where(Request.status == "pending", Request.requester_id != actor.id)
    if actor.role != "security":
        if not is_info_admin(actor):
            return []
        stmt = stmt.where(Request.department_id == actor.department_id)
    return db.session.scalars(stmt.order_by(Request.id)).all()


def waiting_count(user):
    return len(waiting(user))


def visible_requests(actor, limit=200):
    from core.api import scoped
    return db.session.scalars(scoped(select(Request), actor, Request).order_by(Request.id.desc()).limit(limit)).all()


# --- information administrators ------------------------------------------------------------------

def department_members(actor):
    return db.session.scalars(select(User).where(
        User.department_id == actor.department_id, User.active.is_(True), User.role.in_(STAFF),
        User.id != actor.id).order_by(User.username)).all()


def info_admins(department_id):
    return db.session.scalars(select(InfoAdmin).where(InfoAdmin.department_id == department_id)
                              .order_by(InfoAdmin.id)).all()


def set_info_admin(actor, user, flag):
    """A head makes a member of their department information administrator, or stops it."""
    if not isinstance(actor, User) or actor.role != "head" or not can(actor, ADMINS):
        raise DisclosureError(_l("Only the department head appoints information administrators."))
    if user is None or user.department_id != actor.department_id or user.role not in STAFF or not user.active:
        raise DisclosureError({"user_id": _l("Choose an active member of your department.")})
    row = db.session.scalar(select(InfoAdmin).where(InfoAdmin.user_id == user.id))
    if flag and row is None:
        db.session.add(InfoAdmin(user_id=user.id, department_id=actor.department_id, granted_by=actor.id))
        db.session.flush()
        audit.record("disclosure.info_admin.granted", target_type="core_user", target_id=user.id, actor=actor,
                     department_id=actor.department_id)
    elif not flag and row is not None:
        db.session.delete(row)
        db.session.flush()
        audit.record("disclosure.info_admin.revoked", target_type="core_user", target_id=user.id, actor=actor,
                     department_id=actor.department_id)


# --- privacy report ------------------------------------------------------------------------------

def department_report(actor):
    """Counts of the department's requests by status and the recipients it disclosed to."""
    stmt = select(Request.status, func.count()).group_by(Request.status)
    if actor.role != "security":
        stmt = stmt.where(Request.department_id == actor.department_id)
    counts = dict(db.session.execute(stmt).all())
    produced = select(Recipient.name, func.count(Request.id), func.coalesce(func.sum(Request.rows), 0)).join(
        Request, and_(Request.recipient_id == Recipient.id, Request.status == "produced")).group_by(Recipient.name)
    if actor.role != "security":
        produced = produced.where(Request.department_id == actor.department_id)
    return {"counts": counts, "recipients": db.session.execute(produced.order_by(Recipient.name)).all()}


# --- hooks ---------------------------------------------------------------------------------------

def work_items(user):
    items = []
    if can(user, VIEW):
        count = waiting_count(user)
        items.append(WorkItem(_("Disclosure requests waiting for your decision"), count,
                              url_for("disclosure.index"), "warning"))
    if can(user, RECIPIENTS):
        items.append(WorkItem(_("Recipient agreements missing, expired or expiring within %(n)d days",
                                n=EXPIRY_WARNING_DAYS), len(expiring_recipients()),
                              url_for("disclosure.recipients"), "warning"))
    return items


def audit_targets():
    def describe(ids):
        wanted = [int(i) for i in ids if str(i).isdigit()]
        return dict(db.session.execute(select(Request.id, Request.number).where(Request.id.in_(wanted))).all())

    def find(text):
        req = find_request(text) if text else None
        return [req.id] if req else []

    def describe_recipients(ids):
        wanted = [int(i) for i in ids if str(i).isdigit()]
        return dict(db.session.execute(select(Recipient.id, Recipient.name).where(Recipient.id.in_(wanted))).all())

    def find_recipients(text):
        return list(db.session.scalars(select(Recipient.id).where(Recipient.name.contains(text or "", autoescape=True))))

    return [AuditTarget("disclosure_request", {"zh_CN": "对外提供/明文导出申请", "en": "Disclosure request"},
                        describe, find),
            AuditTarget("disclosure_recipient", {"zh_CN": "第三方/受托方", "en": "Recipient"},
                        describe_recipients, find_recipients)]


def label(mapping, key):
    return pick(mapping[key]) if key in mapping else key


# --- the privacy notice --------------------------------------------------------------------------

def notices():
    from .models import Notice
    return db.session.scalars(select(Notice).order_by(Notice.id.desc())).all()


def current_notice():
    from .models import Notice
    return db.session.scalar(select(Notice).order_by(Notice.id.desc()).limit(1))


def notice_versions():
    """customers.privacy_notice: (current version, [published versions]), or None before the
    first version is published."""
    from .models import Notice
    versions = list(db.session.scalars(select(Notice.version).order_by(Notice.id)))
    return (versions[-1], versions) if versions else None


def publish_notice(actor, data):
    """Publish a new version of the privacy notice (its full text); versions are never edited."""
    from .models import Notice
    from .permissions import NOTICE
    if not can(actor, NOTICE):
        raise DisclosureError(_l("You may not publish the privacy notice."))
    errors = {}
    version = _text(data.get("version"), 32, "version", errors)
    title = _text(data.get("title"), 200, "title", errors)
    try:
        body = validation.clean_text(data.get("body") or "", field_kind="text").strip()
    except validation.ValidationError as exc:
        errors["body"], body = exc.message, ""
    if not body and "body" not in errors:
        errors["body"] = _l("This field is required.")
    elif len(body) > 50000:
        errors["body"] = _l("Too long: at most %(n)d characters.", n=50000)
    if version and db.session.scalar(select(Notice.id).where(Notice.version == version)) is not None:
        errors["version"] = _l("Version %(v)s has been published already: give the new text a new version.",
                               v=version)
    if errors:
        raise DisclosureError(errors)
    notice = Notice(version=version, title=title, body=body, published_by=actor.id)
    db.session.add(notice)
    db.session.flush()
    audit.record("disclosure.notice.published", target=notice, actor=actor, version=version, length=len(body))
    return notice
