"""The domain logic of the customer archives.

Functions take the acting user explicitly, check their input, write audit entries and leave
committing to the caller (views and hooks). Errors meant for the user are ``ArchiveError`` with
a translated message.

Access: a customer's archive is open to whoever may see the customer (``scoped_customers``), and
to a requester whose view/borrow request was approved, until its date (checked on every access).
Editing needs ``archives.manage`` and the customer in the actor's own remit.
"""
from __future__ import annotations

import io
import logging
import re
import secrets
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from flask import abort
from flask_babel import gettext as _
from sqlalchemy import and_, exists, func, or_, select, update

from core.api import (
    User,
    audit,
    can,
    crypto,
    db,
    deny_row,
    is_enabled,
    local_today,
    module_setting,
    next_number,
    rekey_files,
    remove_files,
    utcnow,
    write_private_file,
)
from core.api import (
    upload_folder as module_upload_folder,
)
from modules.customers import Customer, scoped_customers

from .models import (
    AMOUNT_TYPES,
    ATTACHMENT_KINDS,
    DOC_TYPES,
    REQUEST_KINDS,
    AccessRequest,
    Attachment,
    Document,
)

log = logging.getLogger(__name__)


def decides_requests(user):
    """Heads (archives.approve) and the department's information administrators (disclosure
    module, where enabled) decide view/borrow requests."""
    from .permissions import APPROVE
    if can(user, APPROVE):
        return True
    if not is_enabled("disclosure", user.department_id):
        return False
    from modules.disclosure import is_info_admin
    return bool(is_info_admin(user))

MODULE = "archives"
NUMBER_PREFIX = "DA"
DEFAULT_REQUIRED_TYPES = {
    "person": ("basic_info", "contract"),
    "org": ("basic_info", "contract", "invoice"),
}
DEFAULT_MAX_ATTACHMENT = 10 * 1024 * 1024
DEFAULT_MAX_ACCESS_DAYS = 90
# Office files are zip archives: bounds against zip bombs (only [Content_Types].xml is inflated).
MAX_ZIP_ENTRIES = 5000
MAX_ZIP_UNCOMPRESSED = 300 * 1024 * 1024
MAX_CONTENT_TYPES_XML = 1024 * 1024
DOCX_MAIN = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
XLSX_MAIN = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
EXECUTABLE_MAGIC = (
    b"MZ",  # Windows PE / DOS
    b"\x7fELF",  # Linux
    b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",  # Mach-O
    b"\xca\xfe\xba\xbe",  # Mach-O universal / Java class
    b"#!",  # scripts
)
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}
_EXTENSION_RE = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}$")


class ArchiveError(ValueError):
    """Bad input for an archive action; ``str(exc)`` is shown to the user as it is, next to
    ``field`` when it names a form field."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def stale_message():
    """Shown when an edit form is older than the document (in the current language)."""
    return _("Someone else changed this document meanwhile. Reload the page and make your change again.")


class AttachmentError(ArchiveError):
    """An uploaded file was refused; nothing has been stored."""


class AttachmentGone(Exception):
    """The attachment can no longer be read (the customer's data key was destroyed or the file
    is missing)."""


# --- settings ----------------------------------------------------------------------------------


def _setting(name, default):
    return module_setting(MODULE, name, default)


def today() -> date:
    """The company's calendar date (KEHU_TIMEZONE). Access dates are compared with this on every
    access; tests move it with monkeypatch."""
    return local_today()


def max_attachment() -> int:
    return int(_setting("MAX_ATTACHMENT", DEFAULT_MAX_ATTACHMENT))


def required_types(kind: str) -> tuple:
    """Document types a complete archive of a customer of this kind holds (ARCHIVES_REQUIRED_TYPES,
    a mapping kind -> list of types, overrides the defaults per kind)."""
    configured = dict(DEFAULT_REQUIRED_TYPES)
    configured.update(_setting("REQUIRED_TYPES", None) or {})
    types = tuple(configured.get(kind, ()))
    unknown = [t for t in types if t not in DOC_TYPES]
    if unknown:
        raise RuntimeError(f"ARCHIVES_REQUIRED_TYPES names unknown document types {unknown} "
                           f"(known: {sorted(DOC_TYPES)})")
    return types


def max_access_days() -> int:
    return int(_setting("MAX_ACCESS_DAYS", DEFAULT_MAX_ACCESS_DAYS))


def upload_folder() -> Path:
    return module_upload_folder(MODULE)


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB".replace(".0 MiB", " MiB")
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} B"


# --- access ------------------------------------------------------------------------------------


def document_rule(actor):
    """Record rule: the documents of the customers the actor may see."""
    return Document.customer_id.in_(scoped_customers(actor).with_only_columns(Customer.id))


def customer_in_remit(customer_id, actor):
    if customer_id is None:
        return None
    return db.session.execute(scoped_customers(actor).where(Customer.id == customer_id)).scalar_one_or_none()


def active_grant(customer_id, actor):
    """The approved request giving ``actor`` access to this customer's archive today, or None.

    Lapsed grants found on the way are stamped expired and audited once (the caller commits)."""
    return _grants(customer_id, actor)[0]


def _grants(customer_id, actor):
    if actor is None or not actor.is_authenticated:
        return None, False
    rows = db.session.execute(select(AccessRequest).where(
        AccessRequest.customer_id == customer_id, AccessRequest.requester_id == actor.id,
        AccessRequest.status == "approved", AccessRequest.returned_at.is_(None),
    ).order_by(AccessRequest.until.desc())).scalars().all()
    now = today()
    found, noted = None, False
    for row in rows:
        if row.until >= now:
            found = found or row
        else:
            noted = note_expired(row) or noted
    return found, noted


def note_expired(req):
    """Stamp a lapsed approval as expired and audit it, once."""
    if req.status == "approved" and req.expired_at is None and req.until < today():
        req.expired_at = utcnow()
        audit.record("archives.request.expired", target=req, actor="system",
                     customer_id=req.customer_id, requester_id=req.requester_id, until=req.until.isoformat())
        return True
    return False


@dataclass
class ArchiveAccess:
    customer: Customer
    grant: AccessRequest | None  # None: the customer is in the actor's own remit

    @property
    def in_remit(self):
        return self.grant is None


def archive_access(customer_id, actor, *, allow_grant=True) -> ArchiveAccess:
    """The customer whose archive the actor may open, or 404 as if it did not exist.

    The rule that refuses a request for the archive of a department that does not use this
    module (`create_request`) also holds when the archive is read: once the customer's
    department disables archives, neither its staff nor a requester holding an approval open it."""
    customer = customer_in_remit(customer_id, actor)
    if customer is not None and is_enabled(MODULE, customer.department_id):
        return ArchiveAccess(customer, None)
    if customer is None and allow_grant:
        grant, noted = _grants(customer_id, actor)
        if grant is not None and is_enabled(MODULE, grant.customer.department_id):
            return ArchiveAccess(grant.customer, grant)
        if noted:
            db.session.commit()  # keep the expiry entries just written; the 404 rolls back otherwise
    deny_row(Customer, customer_id)


def record_grant_use(access_, what, **details):
    """Every use of an approved request is audited (who looked at which archive, under which
    request)."""
    if access_.grant is not None:
        audit.record("archives.archive.accessed", target=access_.customer, request_id=access_.grant.id,
                     what=what, **details)


def document_access(doc_id, actor, *, allow_grant=True):
    doc = db.session.get(Document, doc_id)
    if doc is None:
        abort(404)
    return doc, archive_access(doc.customer_id, actor, allow_grant=allow_grant)


def customer_name(customer):
    """The customer's display name, or "" when its data key has been destroyed."""
    try:
        return customer.display_name or ""
    except crypto.DecryptionError:
        return ""


# --- documents ---------------------------------------------------------------------------------


def documents_of(customer_id):
    """The documents of a customer's archive, by number. No scope check: check the customer first."""
    return db.session.execute(select(Document).where(Document.customer_id == customer_id)
                              .order_by(Document.doc_date.desc(), Document.id.desc())).scalars().all()


def missing_types(customer, docs=None):
    """Required document types the customer's archive lacks, in the configured order."""
    if docs is None:
        present = set(db.session.execute(select(Document.doc_type).where(
            Document.customer_id == customer.id).distinct()).scalars())
    else:
        present = {d.doc_type for d in docs}
    return [t for t in required_types(customer.kind) if t not in present]


def colleagues(customer, current_keeper_id=None):
    """Who may keep the customer's documents: active staff of the customer's department."""
    users = db.session.execute(select(User).where(
        User.department_id == customer.department_id, User.active.is_(True),
        User.role.in_(("head", "sales", "service"))).order_by(User.username)).scalars().all()
    if current_keeper_id is not None and current_keeper_id not in {u.id for u in users}:
        keeper = db.session.get(User, current_keeper_id)
        if keeper is not None:
            users.append(keeper)
    return users


def to_fen(amount) -> int | None:
    if amount is None or amount == "":
        return None
    value = Decimal(str(amount))
    if value < 0:
        raise ArchiveError(_("The amount cannot be negative."), "amount")
    return int((value * 100).quantize(Decimal("1")))


def _apply(doc, data, customer):
    doc_type = data["doc_type"]
    if doc_type not in DOC_TYPES:
        raise ArchiveError(_("Unknown document type."), "doc_type")
    amount_fen = to_fen(data.get("amount"))
    if amount_fen is not None and doc_type not in AMOUNT_TYPES:
        raise ArchiveError(_("This document type has no amount; leave the amount empty."), "amount")
    keeper_id = data["keeper_id"]
    if keeper_id not in {u.id for u in colleagues(customer, doc.keeper_id)}:
        raise ArchiveError(_("The keeper must be an active colleague of the customer's department."),
                           "keeper_id")
    title = (data.get("title") or "").strip()
    if not title or len(title) > 200:
        raise ArchiveError(_("The title must have 1-200 characters."), "title")
    location = (data.get("storage_location") or "").strip()
    if len(location) > 200:
        raise ArchiveError(_("The storage location may have at most 200 characters."), "storage_location")
    if not isinstance(data.get("doc_date"), date):
        raise ArchiveError(_("Enter the document's date."), "doc_date")
    changed = []
    for field, value in (("doc_type", doc_type), ("title", title), ("doc_date", data["doc_date"]),
                         ("amount_fen", amount_fen), ("keeper_id", keeper_id),
                         ("storage_location", location)):
        if getattr(doc, field) != value:
            setattr(doc, field, value)
            changed.append(field)
    return changed


def create_document(actor, customer, data):
    """Register a document in the customer's archive under the next DA number (never reused)."""
    doc = Document(customer=customer, customer_id=customer.id, created_by=actor.id)
    _apply(doc, data, customer)
    doc.number = next_number(NUMBER_PREFIX)
    db.session.add(doc)
    db.session.flush()
    audit.record("archives.document.created", target=doc, actor=actor, customer_id=customer.id,
                 number=doc.number, doc_type=doc.doc_type)
    return doc


def update_document(actor, doc, data, version=None):
    if version is not None and str(version) != str(doc.version):
        raise ArchiveError(stale_message())
    changed = _apply(doc, data, doc.customer)
    if changed:
        db.session.flush()
        audit.record("archives.document.updated", target=doc, actor=actor, customer_id=doc.customer_id,
                     number=doc.number, fields=changed)
    return changed


def documents_past(doc_types):
    """Documents of these types, oldest first (for the data lifecycle's storage periods)."""
    return db.session.execute(select(Document).where(Document.doc_type.in_(list(doc_types)))
                              .order_by(Document.doc_date, Document.id)).scalars().all()


def delete_document(actor, doc):
    """Delete a document and its attachments. Returns the files to remove once committed."""
    paths = [attachment_path(a) for a in doc.attachments]
    audit.record("archives.document.deleted", target=doc, actor=actor, customer_id=doc.customer_id,
                 number=doc.number, attachments=len(paths))
    db.session.delete(doc)
    db.session.flush()
    return paths


# --- attachments -------------------------------------------------------------------------------


def sniff(data: bytes) -> str:
    """The attachment kind from the content alone, or AttachmentError with a clear message."""
    if any(data.startswith(magic) for magic in EXECUTABLE_MAGIC):
        raise AttachmentError(_("This file is a program (an executable), not a document. It was "
                                "refused, whatever its name says."))
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"PK\x03\x04"):
        return _office_kind(data)
    raise AttachmentError(_("Only PDF, JPEG, PNG, Word (DOCX) and Excel (XLSX) files are accepted. "
                            "The type is read from the file's content, not from its name."))


def _office_kind(data: bytes) -> str:
    not_office = AttachmentError(_("This zip file is not a Word (DOCX) or Excel (XLSX) document."))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ZIP_ENTRIES or sum(i.file_size for i in infos) > MAX_ZIP_UNCOMPRESSED:
                raise AttachmentError(_("This document unpacks to too many or too large parts and was "
                                        "refused."))
            names = {i.filename.lower() for i in infos}
            if any(name.endswith("vbaproject.bin") for name in names):
                raise AttachmentError(_("Documents with macros are not accepted; save it as a plain "
                                        "DOCX or XLSX file."))
            try:
                info = archive.getinfo("[Content_Types].xml")
            except KeyError:
                raise not_office from None
            with archive.open(info) as fh:  # inflate at most this much, whatever the header claims
                types = fh.read(MAX_CONTENT_TYPES_XML + 1)
    except AttachmentError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError,
            EOFError, zlib.error, ValueError):
        raise not_office from None
    if len(types) > MAX_CONTENT_TYPES_XML:
        raise not_office
    is_docx, is_xlsx = DOCX_MAIN in types, XLSX_MAIN in types
    if is_docx == is_xlsx:
        raise not_office
    return "docx" if is_docx else "xlsx"


def sanitise_filename(name: str, kind: str) -> str:
    """The name to show and to offer on download: last path part only, no control, format or
    bidi characters (U+202E), no characters Windows forbids, not a reserved device name, at most
    100 characters before the extension, and always the extension of the detected kind.

    Refuses a name whose extension contradicts the content (a PNG named .pdf)."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] not in ("C", "Z") or c == " ")
    name = re.sub(r'[<>:"|?*/]', "_", name).strip().strip(".").strip()
    extensions = ATTACHMENT_KINDS[kind][1]
    match = _EXTENSION_RE.search(name)
    stem, ext = (name[:match.start()], match.group().lower()) if match else (name, "")
    if ext and ext not in extensions:
        raise AttachmentError(_("The file name ends in “%(ext)s”, but the content is a %(kind)s file. "
                                "Rename the file or choose the right one.",
                                ext=ext, kind=ATTACHMENT_KINDS[kind][2]))
    stem = stem.strip().rstrip(".").strip()[:100] or "attachment"
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return stem + (ext or extensions[0])


def read_upload(stream, limit=None) -> bytes:
    """Read an uploaded stream, refusing it as soon as it exceeds the limit."""
    limit = max_attachment() if limit is None else limit
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise AttachmentError(_("The file is larger than %(limit)s, the limit for attachments. Nothing "
                                "was stored; scan it at a lower resolution or split it.",
                                limit=human_size(limit)))
    if not data:
        raise AttachmentError(_("The file is empty."))
    return data


def attachment_path(att) -> Path:
    if not re.fullmatch(r"[0-9a-f]{32}", att.stored_name or ""):
        raise RuntimeError(f"attachment {att.id} has a malformed stored name")
    return upload_folder() / att.stored_name


def add_attachment(actor, doc, filename, data: bytes):
    """Check, encrypt and store one file for a document. Returns (attachment, path); the caller
    commits, and removes ``path`` if the commit fails. Refusals raise AttachmentError before
    anything is written."""
    kind = sniff(data)
    name = sanitise_filename(filename, kind)
    with db.session.no_autoflush:  # the row is complete only once its name is encrypted
        att = Attachment(uid=secrets.token_hex(16), document=doc, stored_name=secrets.token_hex(16),
                         kind=kind, size=len(data), created_by=actor.id)
        att.filename = name
        blob = crypto.encrypt_bytes(att.data_key(), data, att.aad("content"))
    path = attachment_path(att)
    write_private_file(path, blob)
    try:
        db.session.add(att)
        db.session.flush()
        audit.record("archives.attachment.added", target=att, actor=actor, document=doc.number,
                     customer_id=doc.customer_id, kind=kind, size=len(data))
    except BaseException:
        remove_files([path])
        raise
    return att, path


def read_attachment(att) -> bytes:
    """The plaintext of an attachment, or AttachmentGone."""
    try:
        blob = attachment_path(att).read_bytes()
    except OSError as exc:
        log.error("archives: attachment %s file unreadable: %s", att.id, exc)
        raise AttachmentGone() from None
    try:
        return crypto.decrypt_bytes(att.data_key(), blob, att.aad("content"))
    except crypto.DecryptionError as exc:
        log.warning("archives: attachment %s cannot be decrypted: %s", att.id, exc)
        raise AttachmentGone() from None


def attachment_filename(att) -> str | None:
    try:
        return att.filename
    except crypto.DecryptionError:
        return None


def delete_attachment(actor, att):
    path = attachment_path(att)
    audit.record("archives.attachment.deleted", target=att, actor=actor, document=att.document.number,
                 customer_id=att.document.customer_id)
    db.session.delete(att)
    db.session.flush()
    return path


def destroy_attachments(actor, customer):
    """Delete every attachment of the customer's documents (rows audited one by one, as on the
    document page) and return their file paths; the caller removes the files with remove_files once
    its transaction commits. For the destruction of a customer (lifecycle module)."""
    atts = db.session.execute(select(Attachment).join(Document).where(
        Document.customer_id == customer.id).order_by(Attachment.id)).scalars().all()
    return [delete_attachment(actor, att) for att in atts]


def rekey_attachments(customer, old_key, new_key):
    """customers.rekey: re-encrypt the customer's attachment names and files under the new data
    key. Each file is written anew under a fresh stored name; the old file is removed once the
    transaction commits (and the new one if it rolls back), so a failure never leaves a row
    pointing at a file it cannot decrypt. Returns how many attachments moved."""
    atts = db.session.execute(select(Attachment).join(Document).where(
        Document.customer_id == customer.id)).scalars().all()
    for att in atts:
        crypto.rekey_fields(att, old_key, new_key)  # the file's name
    rekey_files(atts, attachment_path, old_key, new_key)
    db.session.flush()
    return len(atts)


# --- completeness ------------------------------------------------------------------------------


def _has_type(doc_type):
    return exists().where(Document.customer_id == Customer.id, Document.doc_type == doc_type)


def incomplete_archives(actor, keeper_id=None, page=1, per_page=50):
    """Customers in the actor's remit whose archive lacks a required type, grouped per keeper.

    An archive's keepers are the keepers of its documents, or the customer's owner while it has
    none. Returns (groups [(keeper, [(customer, missing types)])], total customers, pages)."""
    conditions = []
    for kind in sorted({*DEFAULT_REQUIRED_TYPES, *(_setting("REQUIRED_TYPES", None) or {})}):
        types = required_types(kind)
        if types:
            conditions.append(and_(Customer.kind == kind, or_(*[~_has_type(t) for t in types])))
    if not conditions:
        return [], 0, 0
    stmt = scoped_customers(actor).where(or_(*conditions))
    if keeper_id is not None:
        any_doc = exists().where(Document.customer_id == Customer.id)
        kept = exists().where(Document.customer_id == Customer.id, Document.keeper_id == keeper_id)
        stmt = stmt.where(or_(kept, and_(~any_doc, Customer.owner_id == keeper_id)))
    total = db.session.scalar(select(func.count()).select_from(stmt.with_only_columns(Customer.id).subquery()))
    pages = max(1, -(-total // per_page))
    customers = db.session.execute(stmt.order_by(Customer.id).limit(per_page)
                                   .offset((max(page, 1) - 1) * per_page)).scalars().all()
    docs = {}
    if customers:
        for cid, doc_type, keeper in db.session.execute(select(
                Document.customer_id, Document.doc_type, Document.keeper_id).where(
                Document.customer_id.in_([c.id for c in customers]))):
            present, keepers = docs.setdefault(cid, (set(), set()))
            present.add(doc_type)
            keepers.add(keeper)
    groups = {}
    for customer in customers:
        present, keepers = docs.get(customer.id, (set(), set()))
        missing = [t for t in required_types(customer.kind) if t not in present]
        for keeper in sorted(keepers or {customer.owner_id}):
            if keeper_id is None or keeper == keeper_id:
                groups.setdefault(keeper, []).append((customer, missing))
    users = {u.id: u for u in db.session.execute(select(User).where(User.id.in_(list(groups)))).scalars()}
    ordered = sorted(groups.items(), key=lambda kv: (str(users.get(kv[0], "")), kv[0]))
    return [(users.get(k), rows) for k, rows in ordered], total, pages


# --- view / borrow requests --------------------------------------------------------------------


def find_customer_by_number(number):
    """Exact customer-number lookup for requests from outside the remit (no partial matches)."""
    number = unicodedata.normalize("NFKC", number or "").strip().upper()
    if not number:
        return None
    return db.session.execute(select(Customer).where(Customer.number == number)).scalar_one_or_none()


def create_request(actor, customer_number, kind, purpose, until):
    if kind not in REQUEST_KINDS:
        raise ArchiveError(_("Choose whether to view the archive or to borrow paper originals."))
    customer = find_customer_by_number(customer_number)
    if customer is None:
        raise ArchiveError(_("No customer has this number. Enter the exact customer number, "
                             "e.g. KH-2026-000123."))
    if customer_in_remit(customer.id, actor) is not None:
        raise ArchiveError(_("This customer is within your remit: open its archive directly."))
    if not is_enabled(MODULE, customer.department_id):
        raise ArchiveError(_("The customer's department does not keep its archives in this system."))
    purpose = (purpose or "").strip()
    if not purpose or len(purpose) > 500:
        raise ArchiveError(_("State the purpose in 1-500 characters."))
    now = today()
    longest = max_access_days()
    if not isinstance(until, date) or until < now:
        raise ArchiveError(_("The date must be today or later."))
    if until > now + timedelta(days=longest):
        raise ArchiveError(_("Access can be requested for at most %(days)d days.", days=longest))
    open_request = db.session.execute(select(AccessRequest.id).where(
        AccessRequest.customer_id == customer.id, AccessRequest.requester_id == actor.id,
        or_(AccessRequest.status == "pending",
            and_(AccessRequest.status == "approved", AccessRequest.returned_at.is_(None),
                 AccessRequest.until >= now)))).first()
    if open_request is not None:
        raise ArchiveError(_("You already have a pending or active request for this customer."))
    req = AccessRequest(customer_id=customer.id, requester_id=actor.id, kind=kind, purpose=purpose,
                        until=until, status="pending")
    db.session.add(req)
    db.session.flush()
    audit.record("archives.request.created", target=req, actor=actor, customer_id=customer.id, kind=kind,
                 until=until.isoformat())
    return req


def request_for_approver(request_id, actor):
    """A request the actor may decide: of a customer of the actor's own department."""
    req = db.session.get(AccessRequest, request_id)
    if req is None or actor.department_id is None or req.customer.department_id != actor.department_id:
        deny_row(AccessRequest, request_id)
    return req


def approve_request(actor, req, reason=""):
    _check_decidable(actor, req)
    if req.until < today():
        raise ArchiveError(_("The requested date has already passed; the request can only be refused."))
    req.status, req.decided_by, req.decided_at = "approved", actor.id, utcnow()
    req.decision_reason = (reason or "").strip()[:500]
    audit.record("archives.request.approved", target=req, actor=actor, customer_id=req.customer_id,
                 requester_id=req.requester_id, kind=req.kind, until=req.until.isoformat())


def refuse_request(actor, req, reason):
    _check_decidable(actor, req)
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ArchiveError(_("Give the reason for the refusal (1-500 characters)."))
    req.status, req.decided_by, req.decided_at, req.decision_reason = "refused", actor.id, utcnow(), reason
    audit.record("archives.request.refused", target=req, actor=actor, customer_id=req.customer_id,
                 requester_id=req.requester_id)


def _check_decidable(actor, req):
    if req.status != "pending":
        raise ArchiveError(_("This request has already been decided."))
    if req.requester_id == actor.id:
        raise ArchiveError(_("You cannot decide your own request."))


def withdraw_request(actor, req):
    if req.requester_id != actor.id:
        deny_row(AccessRequest, req.id)
    if req.status != "pending":
        raise ArchiveError(_("Only a pending request can be withdrawn."))
    req.status = "withdrawn"
    audit.record("archives.request.withdrawn", target=req, actor=actor, customer_id=req.customer_id)


def mark_returned(actor, req):
    """The paper originals of a borrowing are back (recorded by staff in the customer's remit)."""
    if customer_in_remit(req.customer_id, actor) is None:
        deny_row(AccessRequest, req.id)
    if req.kind != "borrow" or req.status != "approved" or req.returned_at is not None:
        raise ArchiveError(_("This is not an outstanding borrowing."))
    req.returned_at, req.returned_by = utcnow(), actor.id
    audit.record("archives.request.returned", target=req, actor=actor, customer_id=req.customer_id,
                 requester_id=req.requester_id, overdue=req.until < today())


def request_state(req):
    """pending / refused / withdrawn / active / expired / returned / overdue (borrowed, not back)."""
    if req.status != "approved":
        return req.status
    if req.returned_at is not None:
        return "returned"
    if req.until >= today():
        return "active"
    return "overdue" if req.kind == "borrow" else "expired"


def my_requests(actor, limit=100):
    rows = db.session.execute(select(AccessRequest).where(AccessRequest.requester_id == actor.id)
                              .order_by(AccessRequest.id.desc()).limit(limit)).scalars().all()
    for row in rows:
        note_expired(row)
    return rows


def department_requests(actor, limit=100):
    """(pending, recently decided) requests for customers of the actor's department."""
    if actor.department_id is None:
        return [], []
    base = select(AccessRequest).join(Customer, Customer.id == AccessRequest.customer_id).where(
        Customer.department_id == actor.department_id)
    pending = db.session.execute(base.where(AccessRequest.status == "pending")
                                 .order_by(AccessRequest.id)).scalars().all()
    decided = db.session.execute(base.where(AccessRequest.status != "pending")
                                 .order_by(AccessRequest.id.desc()).limit(limit)).scalars().all()
    return pending, decided


def overdue_borrowings(actor):
    """Approved borrowings not returned by their date, of customers in the actor's remit."""
    in_remit = scoped_customers(actor).with_only_columns(Customer.id)
    return db.session.execute(select(AccessRequest).where(
        AccessRequest.kind == "borrow", AccessRequest.status == "approved",
        AccessRequest.returned_at.is_(None), AccessRequest.until < today(),
        AccessRequest.customer_id.in_(in_remit)).order_by(AccessRequest.until)).scalars().all()


# --- handover ----------------------------------------------------------------------------------


def hand_over_keeper(from_user_id, to_user_id, actor):
    """Make a colleague keeper of every document the leaver keeps. Returns how many."""
    count = db.session.execute(update(Document).where(Document.keeper_id == from_user_id)
                               .values(keeper_id=to_user_id, updated_at=utcnow(),
                                       version=Document.version + 1)
                               .execution_options(synchronize_session="fetch")).rowcount or 0
    if count:
        audit.record("archives.keeper.handed_over", actor=actor, target_type="core_user",
                     target_id=from_user_id, to_user_id=to_user_id, documents=count)
    return count


# --- the archive form PDF ----------------------------------------------------------------------


def _local_date_text(value):
    from core.api import to_local
    return to_local(value).strftime("%Y-%m-%d") if value else ""


# fields the register shows transformed for reading, not masked (gender label, phone format)
_DISPLAY_ONLY = ("gender", "phone", "phone2", "fax")


def _anything_masked(customer, shown):
    """Is any value on the form masked (shown otherwise than stored)? The masked-data note is
    printed only then."""
    for name, _label, value in shown:
        if name in _DISPLAY_ONLY:
            continue
        stored = getattr(customer, name, None)
        if stored is not None and str(value) != str(stored):
            return True
    return False


def _form_contacts(customer):
    """(name, title, phone, e-mail) of an organisation's contacts (L1: shown to staff in remit)."""
    from core.api import validation
    if customer.kind != "org":
        return []
    return [(c.name or "", c.title or "", validation.display_phone(c.phone), c.email or "")
            for c in customer.contacts]


def _form_facts(customer):
    """Lines other modules add to printed forms (hook customers.form_facts: grade, consents)."""
    from core.api import hooks
    lines = []
    for _module, facts in hooks.call("customers.form_facts", customer, department_id=customer.department_id):
        lines.extend((str(label), str(text)) for label, text in facts or ())
    return lines


def form_context(customer, actor):
    """Plain-text context of the archive form (客户档案表). Personal fields come masked from the
    customer register (L2/L3 never in clear); the PDF is a Chinese document."""
    from modules.customers import CUSTOMER_KINDS, STATUSES, masked_fields
    docs = documents_of(customer.id)
    counts = dict(db.session.execute(select(Attachment.document_id, func.count()).where(
        Attachment.document_id.in_([d.id for d in docs])).group_by(Attachment.document_id)).all()) if docs else {}
    header = [
        ("客户编号", customer.number),
        ("客户类型", CUSTOMER_KINDS.get(customer.kind, {}).get("zh_CN", customer.kind)),
        ("客户状态", STATUSES.get(customer.status, {}).get("zh_CN", customer.status)),
        ("所属部门", customer.department.name if customer.department else ""),
        ("负责人", str(customer.owner) if customer.owner else ""),
        ("建档日期", _local_date_text(customer.created_at)),
    ]
    shown = masked_fields(customer, actor)
    basic = [(label.get("zh_CN") or name, str(value)) for name, label, value in shown]
    register = [(d.number, DOC_TYPES[d.doc_type]["zh_CN"], d.title, d.doc_date.isoformat(),
                 d.amount_text, str(d.keeper) if d.keeper else "", d.storage_location,
                 str(counts.get(d.id, 0))) for d in docs]
    missing = [DOC_TYPES[t]["zh_CN"] for t in missing_types(customer, docs)]
    facts = _form_facts(customer)
    return {
        "masked": _anything_masked(customer, shown),
        "contacts": _form_contacts(customer),
        "grade": [f for f in facts if f[0] == "客户分级"],
        "consents": [text for label, text in facts if label == "同意记录"],
        "other_facts": [f for f in facts if f[0] not in ("客户分级", "同意记录")],
        "title": "客户档案表",
        "customer_number": customer.number,
        "display_name": customer_name(customer),
        "header": header,
        "basic": basic,
        "register": register,
        "missing": missing,
        "printed_by": str(actor),
    }
