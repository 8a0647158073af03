"""The domain logic of the complaints module.

Functions take the acting user explicitly, check their input and the actor's right to the step,
write audit entries (field names, never values) and leave committing to the caller.

Remit (record rule): a department head sees every complaint of their department; sales and
service staff the complaints they handle or registered, in their current department; nobody
else any. Steps: the handler (``complaints.handle``) works on their own complaints; the head
(``complaints.assign``) assigns, and may take any step, on every complaint of the department.
"""
from __future__ import annotations

import logging
import re
import secrets
import statistics
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select

from core.api import (
    User,
    audit,
    can,
    company_timezone,
    crypto,
    db,
    is_enabled,
    module_setting,
    next_number,
    ownership_rule,
    pdf,
    rekey_files,
    remove_files,
    scoped,
    to_local,
    utcnow,
    write_private_file,
)
from core.api import upload_folder as module_upload_folder
from modules.customers import Customer, masked_fields, scoped_customers

from .models import (
    CHANNELS,
    DEFAULT_CATEGORIES,
    OPEN_STATUSES,
    SEVERITIES,
    STATUSES,
    STEP_ACTIONS,
    Complaint,
    Policy,
)
from .models import (
    ComplaintAttachment as Attachment,
)
from .models import (
    ComplaintStep as Step,
)
from .permissions import ASSIGN, HANDLE

log = logging.getLogger(__name__)

MODULE = "complaints"
NUMBER_PREFIX = "TS"
DUPLICATE_DAYS = 7
TEXT_MAX = 5000
COMMENT_MAX = 2000
DEFAULT_MAX_ATTACHMENT = 10 * 1024 * 1024
# Hours to the first response (受理) and to the resolution, by severity.
DEFAULT_HOURS = {"normal": (24, 168), "serious": (8, 72), "urgent": (2, 24)}
DEFAULT_IMPORTANT_PERCENT = 50  # 重要 customers: half the time
ATTACHMENT_KINDS = {  # kind: (MIME type, extensions)
    "pdf": ("application/pdf", (".pdf",)),
    "jpeg": ("image/jpeg", (".jpg", ".jpeg")),
    "png": ("image/png", (".png",)),
}
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}


class ComplaintError(ValueError):
    """Bad input or a step the complaint's state does not allow; shown to the user as it is."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


class NotAllowed(Exception):  # noqa: N818 - a refusal, answered 403 by the views
    """The actor may see the complaint but not take this step; ``permission`` is the one missing."""

    def __init__(self, permission):
        super().__init__(permission)
        self.permission = permission


# --- remit and time ------------------------------------------------------------------------------

complaint_rule = ownership_rule(Complaint.handler_id, Complaint.department_id,
                                lambda actor: Complaint.created_by == actor.id)


def zone():
    """The company's time zone (KEHU_TIMEZONE)."""
    return company_timezone()


def local(dt):
    """A UTC time in the company's zone (Beijing time by default)."""
    return to_local(dt)


def local_text(dt):
    return local(dt).strftime("%Y-%m-%d %H:%M") if dt is not None else ""


def is_head_of(actor, complaint):
    return (getattr(actor, "role", None) == "head" and actor.department_id == complaint.department_id
            and can(actor, ASSIGN))


def may_handle(actor, complaint):
    return is_head_of(actor, complaint) or (can(actor, HANDLE) and complaint.handler_id == actor.id
                                            and actor.department_id == complaint.department_id)


# --- policy and deadlines ------------------------------------------------------------------------


@dataclass
class Rules:
    categories: list = field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    hours: dict = field(default_factory=lambda: dict(DEFAULT_HOURS))
    important_percent: int = DEFAULT_IMPORTANT_PERCENT
    working_days: bool = False
    saved: bool = False


def policy(department_id) -> Rules:
    """The department's complaint policy, or the module's defaults."""
    row = db.session.get(Policy, department_id)
    if row is None:
        return Rules()
    cats = [c for c in (line.strip() for line in row.categories.splitlines()) if c]
    return Rules(categories=cats or list(DEFAULT_CATEGORIES),
                 hours={s: (getattr(row, f"{s}_response"), getattr(row, f"{s}_resolution")) for s in SEVERITIES},
                 important_percent=row.important_percent, working_days=row.working_days, saved=True)


def save_policy(actor, department_id, data):
    """Save the department's policy (head only; audited with the changed field names)."""
    if actor.role != "head" or actor.department_id != department_id:
        raise NotAllowed("complaints.configure")
    cats = []
    for line in (data.get("categories") or "").splitlines():
        line = " ".join(line.split())
        if line and line not in cats:
            if len(line) > 50:
                raise ComplaintError(_("A category may have at most 50 characters."), "categories")
            cats.append(line)
    if not cats or len(cats) > 30:
        raise ComplaintError(_("Enter 1-30 categories, one per line."), "categories")
    values = {"categories": "\n".join(cats)}
    for sev in SEVERITIES:
        for kind in ("response", "resolution"):
            name = f"{sev}_{kind}"
            value = data.get(name)
            if not isinstance(value, int) or not 1 <= value <= 24 * 365:
                raise ComplaintError(_("Enter a number of hours between 1 and 8760."), name)
            values[name] = value
        if values[f"{sev}_response"] > values[f"{sev}_resolution"]:
            raise ComplaintError(_("The first response cannot be due after the resolution."), f"{sev}_response")
    pct = data.get("important_percent")
    if not isinstance(pct, int) or not 10 <= pct <= 100:
        raise ComplaintError(_("Enter a percentage between 10 and 100."), "important_percent")
    values["important_percent"] = pct
    values["working_days"] = bool(data.get("working_days"))
    row = db.session.get(Policy, department_id)
    if row is None:
        row = Policy(department_id=department_id)
        db.session.add(row)
        changed = sorted(values)
    else:
        changed = sorted(k for k, v in values.items() if getattr(row, k) != v)
    for k, v in values.items():
        setattr(row, k, v)
    row.updated_by, row.updated_at = actor.id, utcnow()
    db.session.flush()
    if changed:
        audit.record("complaints.policy.changed", actor=actor, target_type="core_department",
                     target_id=department_id, fields=changed)
    return changed


def add_time(start, hours, working_days=False):
    """``start`` + ``hours``; with ``working_days`` the clock stops on Saturdays and Sundays
    (company time). Statutory holidays are not known here."""
    if not working_days:
        return start + timedelta(hours=hours)
    tz = zone()
    at = start.astimezone(tz)
    remaining = timedelta(hours=hours)
    while True:
        if at.weekday() >= 5:  # jump to the next Monday 00:00
            at = datetime(at.year, at.month, at.day, tzinfo=tz) + timedelta(days=7 - at.weekday())
            continue
        midnight = datetime(at.year, at.month, at.day, tzinfo=tz) + timedelta(days=1)
        left_today = midnight - at
        if remaining <= left_today:
            return (at + remaining).astimezone(UTC)
        remaining -= left_today
        at = midnight


def deadlines(rules: Rules, severity, important, start):
    """(response due, resolution due) for a complaint registered at ``start``."""
    response, resolution = rules.hours[severity]
    factor = rules.important_percent / 100 if important else 1
    return (add_time(start, response * factor, rules.working_days),
            add_time(start, resolution * factor, rules.working_days))


def is_important(customer):
    """Is the customer graded 重要? Only when grading is installed and enabled for its department."""
    if not is_enabled("grading", customer.department_id):
        return False
    try:
        from modules.grading import grade_of
    except ImportError:
        return False
    return grade_of(customer.id) == "important"


def next_due(c):
    """("response" | "resolution", due time) of the deadline running now, or (None, None)."""
    if c.status == "closed":
        return None, None
    if c.responded_at is None:
        return "response", c.response_due
    if c.resolved_at is None:
        return "resolution", c.resolution_due
    return None, None


def deadline_state(c, now=None):
    """"overdue", "due_soon" (less than a quarter of the allowed time left) or "" (on time)."""
    now = now or utcnow()
    kind, due = next_due(c)
    if due is None:
        return ""
    if due < now:
        return "overdue"
    window = due - c.created_at
    if due - now <= window / 4:
        return "due_soon"
    return ""


def overdue_clause(now):
    return and_(Complaint.status.in_(OPEN_STATUSES), or_(
        and_(Complaint.responded_at.is_(None), Complaint.response_due < now),
        and_(Complaint.resolved_at.is_(None), Complaint.resolution_due < now)))


def overdue(department_id=None, now=None):
    """Overdue complaints (no scope check: the head's page and the CLI choose the department)."""
    stmt = select(Complaint).where(overdue_clause(now or utcnow())).order_by(Complaint.response_due)
    if department_id is not None:
        stmt = stmt.where(Complaint.department_id == department_id)
    return db.session.execute(stmt).scalars().all()


def my_open_count(actor):
    """The handler's badge: open complaints they handle (a head: also the unassigned ones)."""
    if actor is None or not actor.is_authenticated or actor.department_id is None:
        return 0
    mine = Complaint.handler_id == actor.id
    if actor.role == "head":
        mine = or_(mine, Complaint.handler_id.is_(None))
    return db.session.scalar(select(func.count()).select_from(Complaint).where(
        Complaint.department_id == actor.department_id, Complaint.status.in_(OPEN_STATUSES), mine)) or 0


# --- intake -------------------------------------------------------------------------------------


def _text(value, name, required=True, limit=TEXT_MAX):
    value = (value or "").replace("\r\n", "\n").strip()
    if "\x00" in value:
        raise ComplaintError(_("The text contains characters that cannot be stored."), name)
    if required and not value:
        raise ComplaintError(_("This field is required."), name)
    if len(value) > limit:
        raise ComplaintError(_("At most %(n)d characters.", n=limit), name)
    return value


def handlers(department_id):
    """Who may handle complaints of a department: its active heads and sales and service staff."""
    return db.session.execute(select(User).where(
        User.department_id == department_id, User.active.is_(True),
        User.role.in_(("head", "sales", "service"))).order_by(User.username)).scalars().all()


def _step(c, actor, action, from_status, to_status, comment=""):
    with db.session.no_autoflush:  # the row is complete only once its comment is encrypted
        s = Step(complaint=c, at=utcnow(), actor_id=getattr(actor, "id", None), action=action,
                 from_status=from_status, to_status=to_status)
        s.comment = comment or None
        db.session.add(s)
    return s


def find_duplicate(customer_id, category, now, exclude_id=None):
    """An open complaint of the customer in the same category registered in the last 7 days."""
    stmt = (select(Complaint).where(Complaint.customer_id == customer_id, Complaint.category == category,
                                    Complaint.status.in_(OPEN_STATUSES),
                                    Complaint.created_at >= now - timedelta(days=DUPLICATE_DAYS))
            .order_by(Complaint.created_at.desc(), Complaint.id.desc()).limit(1))
    if exclude_id is not None:
        stmt = stmt.where(Complaint.id != exclude_id)
    return db.session.execute(stmt).scalar_one_or_none()


def customer_in_remit(customer_id, actor):
    """The customer if the actor may see it, else None (the view answers 404)."""
    if customer_id is None:
        return None
    return db.session.execute(scoped_customers(actor).where(Customer.id == customer_id)).scalar_one_or_none()


def create_complaint(actor, customer, data, now=None):
    """Register a complaint of a customer in the actor's remit (the caller checked it) under the
    next TS number, with its deadlines; flag a possible duplicate. Staff handle what they
    register; a head may name a handler of the department (or leave it for later)."""
    now = now or utcnow()
    rules = policy(customer.department_id)
    channel, severity, category = data.get("channel"), data.get("severity"), data.get("category")
    if channel not in CHANNELS:
        raise ComplaintError(_("Choose a channel."), "channel")
    if severity not in SEVERITIES:
        raise ComplaintError(_("Choose a severity."), "severity")
    if category not in rules.categories:
        raise ComplaintError(_("Choose a category."), "category")
    description = _text(data.get("description"), "description")
    request_text = _text(data.get("customer_request"), "customer_request", required=False)
    handler_id = data.get("handler_id") or None
    if actor.role == "head":
        if handler_id is not None and handler_id not in {u.id for u in handlers(customer.department_id)}:
            raise ComplaintError(_("The handler must be an active colleague of the department."), "handler_id")
    else:
        handler_id = actor.id
    important = is_important(customer)
    response_due, resolution_due = deadlines(rules, severity, important, now)
    c = Complaint(customer=customer, customer_id=customer.id, department_id=customer.department_id,
                  created_by=actor.id, handler_id=handler_id, channel=channel, category=category,
                  severity=severity, status="new", important=important, created_at=now,
                  response_due=response_due, resolution_due=resolution_due)
    with db.session.no_autoflush:
        c.description = description
        c.customer_request = request_text
        c.duplicate_of = find_duplicate(customer.id, category, now)
        c.number = next_number(NUMBER_PREFIX)
        db.session.add(c)
        _step(c, actor, "created", None, "new")
    db.session.flush()
    audit.record("complaints.complaint.created", target=c, actor=actor, customer_id=customer.id,
                 number=c.number, severity=severity, channel=channel, important=important,
                 duplicate_of=c.duplicate_of.number if c.duplicate_of else "")
    return c


EDITABLE = ("channel", "category", "severity", "description", "customer_request")


def update_complaint(actor, c, data):
    """Correct the intake of an open complaint (handler or head). Closed ones cannot be edited."""
    if not may_handle(actor, c):
        raise NotAllowed(HANDLE)
    if c.status == "closed":
        raise ComplaintError(_("A closed complaint cannot be edited; reopen it with a reason first."))
    rules = policy(c.department_id)
    if data.get("channel") not in CHANNELS:
        raise ComplaintError(_("Choose a channel."), "channel")
    if data.get("severity") not in SEVERITIES:
        raise ComplaintError(_("Choose a severity."), "severity")
    if data.get("category") not in rules.categories and data.get("category") != c.category:
        raise ComplaintError(_("Choose a category."), "category")
    new = {"channel": data["channel"], "category": data["category"], "severity": data["severity"],
           "description": _text(data.get("description"), "description"),
           "customer_request": _text(data.get("customer_request"), "customer_request", required=False)}
    changed = [k for k in EDITABLE if (getattr(c, k) or "") != new[k]]
    for k in changed:
        setattr(c, k, new[k])
    if "severity" in changed:
        c.response_due, c.resolution_due = deadlines(rules, c.severity, c.important, c.created_at)
    if changed:
        db.session.flush()
        audit.record("complaints.complaint.updated", target=c, actor=actor, number=c.number, fields=changed)
    return changed


# --- workflow -----------------------------------------------------------------------------------

# step: (statuses it starts from, status it leads to; None = computed)
STEPS = {
    "accept": (("new",), "accepted"),
    "start": (("accepted",), "in_progress"),
    "resolve": (("in_progress",), "follow_up"),
    "return": (("accepted", "in_progress", "follow_up"), None),
    "visit": (("follow_up",), "follow_up"),
    "close": (("follow_up",), "closed"),
    "reopen": (("closed",), "in_progress"),
    "assign": (("new", "accepted", "in_progress", "follow_up"), None),
}


def allowed_steps(actor, c):
    """The steps the actor may take on the complaint now (for the buttons)."""
    steps = []
    if may_handle(actor, c):
        steps = [s for s, (froms, _to) in STEPS.items() if c.status in froms and s != "assign"]
        if c.status == "follow_up" and c.satisfaction is None and "close" in steps:
            steps.remove("close")
    if is_head_of(actor, c) and c.status in STEPS["assign"][0]:
        steps.append("assign")
    return steps


def _check(actor, c, step):
    if step == "assign":
        if not is_head_of(actor, c):
            raise NotAllowed(ASSIGN)
    elif not may_handle(actor, c):
        raise NotAllowed(HANDLE)
    if c.status not in STEPS[step][0]:
        raise ComplaintError(_("This step is not possible while the complaint is “%(status)s”.",
                               status=STATUSES[c.status]["zh_CN"]))


def _record(actor, c, action, old, comment="", **details):
    _step(c, actor, action, old, c.status, comment)
    db.session.flush()
    audit.record("complaints.complaint.step", target=c, actor=actor, number=c.number, step=action,
                 from_status=old, to_status=c.status, **details)


def take_step(actor, c, step, data=None, now=None):
    """Carry out one workflow step (see STEPS). ``data`` holds the step's inputs: comment,
    handler_id (assign), cause/measures/result/compensation (resolve), satisfaction (visit),
    reason (reopen, return). Returns the archive document filed on closing, if any."""
    data = data or {}
    now = now or utcnow()
    _check(actor, c, step)
    old = c.status
    comment = _text(data.get("comment"), "comment", required=False, limit=COMMENT_MAX)
    filed = None
    if step == "accept":
        c.status = "accepted"
        c.responded_at = c.responded_at or now
        if c.handler_id is None:
            c.handler_id = actor.id
        _record(actor, c, "accepted", old, comment)
    elif step == "start":
        c.status = "in_progress"
        _record(actor, c, "started", old, comment)
    elif step == "assign":
        handler_id = data.get("handler_id")
        if handler_id not in {u.id for u in handlers(c.department_id)}:
            raise ComplaintError(_("The handler must be an active colleague of the department."), "handler_id")
        c.handler_id = handler_id
        _record(actor, c, "assigned", old, comment, handler_id=handler_id)
    elif step == "resolve":
        values = {name: _text(data.get(name), name, required=name != "compensation")
                  for name in ("cause", "measures", "result", "compensation")}
        for name, value in values.items():
            setattr(c, name, value)
        c.status, c.resolved_at = "follow_up", now
        _record(actor, c, "resolved", old, comment, fields=sorted(values))
    elif step == "return":
        reason = _text(data.get("comment"), "comment", limit=COMMENT_MAX)
        if old == "follow_up":  # the resolution is not good enough: back to handling
            c.status, c.resolved_at = "in_progress", None
            c.satisfaction = c.visited_at = None
            c.visit_comment = None
        else:  # the handler gives it back to the head for another handler
            c.status, c.handler_id = "new", None
        _record(actor, c, "returned", old, reason)
    elif step == "visit":
        try:
            score = int(data.get("satisfaction"))
        except (TypeError, ValueError):
            score = 0
        if not 1 <= score <= 5:
            raise ComplaintError(_("Choose a satisfaction from 1 to 5."), "satisfaction")
        c.satisfaction, c.visited_at = score, now
        c.visit_comment = _text(data.get("visit_comment"), "visit_comment", required=False, limit=COMMENT_MAX)
        _record(actor, c, "visited", old, comment, satisfaction=score)
    elif step == "close":
        if c.satisfaction is None:
            raise ComplaintError(_("Record the return visit (the customer's satisfaction) before closing."))
        c.status, c.closed_at = "closed", now
        _record(actor, c, "closed", old, comment)
        filed = file_in_archive(actor, c)
    elif step == "reopen":
        reason = _text(data.get("comment"), "comment", limit=COMMENT_MAX)
        rules = policy(c.department_id)
        c.status, c.closed_at, c.resolved_at = "in_progress", None, None
        c.satisfaction = c.visited_at = None
        c.visit_comment = None
        c.resolution_due = deadlines(rules, c.severity, c.important, now)[1]
        _record(actor, c, "reopened", old, reason)
    return filed


# --- attachments --------------------------------------------------------------------------------


def max_attachment():
    return int(module_setting(MODULE, "MAX_ATTACHMENT", DEFAULT_MAX_ATTACHMENT))


def sniff(data: bytes) -> str:
    """The kind of a file from its content: PDF, JPEG or PNG, else ComplaintError."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    raise ComplaintError(_("Only PDF, JPEG and PNG files are accepted. The type is read from the "
                           "file's content, not from its name."), "attachment")


def sanitise_filename(name, kind):
    """Last path part, no control/format/bidi characters or characters Windows forbids, at most
    100 characters, always the extension of the detected kind."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    name = re.sub(r'[<>:"|?*/]', "_", name).strip().strip(".").strip()
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if ext and "." + ext.lower() not in ATTACHMENT_KINDS[kind][1]:
        raise ComplaintError(_("The file name's extension does not match its content."), "attachment")
    stem = stem.strip()[:100] or "attachment"
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return stem + ATTACHMENT_KINDS[kind][1][0]


def upload_folder() -> Path:
    return module_upload_folder(MODULE)


def attachment_path(att) -> Path:
    if not re.fullmatch(r"[0-9a-f]{32}", att.stored_name or ""):
        raise RuntimeError(f"complaint attachment {att.id} has a malformed stored name")
    return upload_folder() / att.stored_name


def read_upload(stream) -> bytes:
    limit = max_attachment()
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ComplaintError(_("The file is larger than the limit of %(mb)d MB.", mb=limit // (1024 * 1024)),
                             "attachment")
    if not data:
        raise ComplaintError(_("The file is empty."), "attachment")
    return data


def add_attachment(actor, c, filename, data: bytes):
    """Check, encrypt and store a file of an open complaint (anyone who may handle it, or who
    registered it while it is new). Returns the path to remove if the commit fails."""
    if not (may_handle(actor, c) or (c.created_by == actor.id and c.status == "new")):
        raise NotAllowed(HANDLE)
    if c.status == "closed":
        raise ComplaintError(_("A closed complaint cannot be edited; reopen it with a reason first."))
    kind = sniff(data)
    name = sanitise_filename(filename, kind)
    with db.session.no_autoflush:
        att = Attachment(uid=secrets.token_hex(16), complaint=c, stored_name=secrets.token_hex(16), kind=kind,
                         size=len(data), created_by=actor.id)
        att.filename = name
        blob = crypto.encrypt_bytes(att.data_key(), data, att.aad("content"))
    path = attachment_path(att)
    write_private_file(path, blob)
    try:
        db.session.add(att)
        _step(c, actor, "attachment", c.status, c.status)
        db.session.flush()
        audit.record("complaints.attachment.added", target=att, actor=actor, number=c.number, kind=kind,
                     size=len(data))
    except BaseException:
        remove_files([path])
        raise
    return att, path


def read_attachment(att) -> bytes | None:
    try:
        return crypto.decrypt_bytes(att.data_key(), attachment_path(att).read_bytes(), att.aad("content"))
    except (OSError, crypto.DecryptionError) as exc:
        log.warning("complaints: attachment %s unreadable: %s", att.id, exc)
        return None


# --- the 投诉处理单 and the archive -----------------------------------------------------------------


def customer_name(customer):
    try:
        return customer.display_name or ""
    except crypto.DecryptionError:
        return ""


def user_name(user):
    return str(user) if user is not None else ""


def _safe(getter):
    try:
        return getter() or ""
    except crypto.DecryptionError:
        return ""


def form_context(c, actor):
    """Plain-text context of the 投诉处理单 (a Chinese document): personal fields of the customer
    come masked from the customer register; times in company time."""
    customer = c.customer
    basic = [(label.get("zh_CN") or name, str(value)) for name, label, value in masked_fields(customer, actor)]
    header = [
        ("投诉编号", c.number), ("状态", STATUSES[c.status]["zh_CN"]),
        ("客户编号", customer.number), ("所属部门", c.department.name if c.department else ""),
        ("投诉渠道", CHANNELS[c.channel]["zh_CN"]), ("投诉类别", c.category),
        ("严重程度", SEVERITIES[c.severity]["zh_CN"]), ("重要客户", "是" if c.important else "否"),
        ("登记时间", local_text(c.created_at)), ("登记人", user_name(c.creator)),
        ("处理人", user_name(c.handler)), ("受理时限", local_text(c.response_due)),
        ("首次响应", local_text(c.responded_at)), ("解决时限", local_text(c.resolution_due)),
        ("解决时间", local_text(c.resolved_at)), ("关闭时间", local_text(c.closed_at)),
    ]
    resolution = [("原因分析", _safe(lambda: c.cause)), ("处理措施", _safe(lambda: c.measures)),
                  ("处理结果", _safe(lambda: c.result)), ("补偿情况", _safe(lambda: c.compensation)),
                  ("客户满意度", f"{c.satisfaction} / 5" if c.satisfaction else ""),
                  ("回访意见", _safe(lambda: c.visit_comment)), ("回访时间", local_text(c.visited_at))]
    history = [(local_text(s.at), STEP_ACTIONS[s.action]["zh_CN"], user_name(s.actor),
                STATUSES[s.to_status]["zh_CN"] if s.to_status else "", _safe(lambda s=s: s.comment))
               for s in c.steps]
    return {
        "title": "投诉处理单", "number": c.number, "customer_number": customer.number,
        "display_name": customer_name(customer), "header": header, "basic": basic,
        "description": _safe(lambda: c.description), "customer_request": _safe(lambda: c.customer_request),
        "resolution": resolution, "history": history, "printed_by": user_name(actor),
        "duplicate_of": c.duplicate_of.number if c.duplicate_of else "",
    }


def file_in_archive(actor, c):
    """When archives is installed and enabled for the department, file a 投诉 document with the
    投诉处理单 PDF attached into the customer's archive. Returns (document number, files written)
    or None when archives is not used. A PDF that cannot be rendered leaves the document without
    attachment (noted in the audit trail); the closing stands."""
    if not is_enabled("archives", c.department_id):
        return None
    try:
        import modules.archives as archives
    except ImportError:
        return None
    try:
        doc = archives.create_document(actor, c.customer, {
            "doc_type": "complaint", "title": f"投诉处理单 {c.number}（{c.category}）"[:200],
            "doc_date": local(c.closed_at or utcnow()).date(), "keeper_id": actor.id, "storage_location": "",
            "amount": None})
    except archives.ArchiveError as exc:
        raise ComplaintError(_("The complaint could not be filed in the customer's archive: %(reason)s",
                               reason=str(exc))) from exc
    paths, attached = [], False
    try:
        data = pdf.render("complaints/form_pdf.html", **form_context(c, actor))
    except pdf.PdfError as exc:
        log.error("complaints: form of %s could not be rendered for the archive: %s", c.number, exc)
    else:
        _att, path = archives.add_attachment(actor, doc, f"投诉处理单-{c.number}.pdf", data)
        paths.append(path)
        attached = True
    c.archive_number = doc.number
    db.session.flush()
    audit.record("complaints.complaint.filed", target=c, actor=actor, number=c.number, document=doc.number,
                 attached=attached)
    return doc.number, paths


# --- handover -----------------------------------------------------------------------------------


def hand_over(from_user_id, to_user_id, actor):
    """A leaver's open complaints go to the colleague taking over their customers."""
    rows = db.session.execute(select(Complaint).where(Complaint.handler_id == from_user_id,
                                                      Complaint.status.in_(OPEN_STATUSES))).scalars().all()
    for c in rows:
        c.handler_id = to_user_id
        _step(c, actor if not isinstance(actor, str) else None, "assigned", c.status, c.status)
    if rows:
        db.session.flush()
        audit.record("complaints.handover", actor=actor, target_type="core_user", target_id=from_user_id,
                     to_user_id=to_user_id, complaints=len(rows))
    return len(rows)


# --- lists and statistics -----------------------------------------------------------------------


def listing(actor, status=None, mine=False, overdue_only=False, customer_id=None, limit=500):
    stmt = select(Complaint).order_by(Complaint.created_at.desc(), Complaint.id.desc()).limit(limit)
    stmt = scoped(stmt, actor, Complaint)
    if status in STATUSES:
        stmt = stmt.where(Complaint.status == status)
    elif status == "open":
        stmt = stmt.where(Complaint.status.in_(OPEN_STATUSES))
    if mine:
        stmt = stmt.where(Complaint.handler_id == actor.id)
    if overdue_only:
        stmt = stmt.where(overdue_clause(utcnow()))
    if customer_id is not None:
        stmt = stmt.where(Complaint.customer_id == customer_id)
    return db.session.execute(stmt).scalars().all()


def open_counts(customer_ids):
    ids = list(customer_ids)
    if not ids:
        return {}
    return dict(db.session.execute(select(Complaint.customer_id, func.count()).where(
        Complaint.customer_id.in_(ids), Complaint.status.in_(OPEN_STATUSES)).group_by(Complaint.customer_id)).all())


def _hours(delta):
    return round(delta.total_seconds() / 3600, 1)


def _median(values):
    return round(statistics.median(values), 1) if values else None


def stats(department_id, start, end, now=None):
    """Figures of the complaints registered in [start, end) (UTC) in a department."""
    now = now or utcnow()
    rows = db.session.execute(select(Complaint).where(
        Complaint.department_id == department_id, Complaint.created_at >= start, Complaint.created_at < end)
        .order_by(Complaint.created_at)).scalars().all()
    by = {"month": {}, "category": {}, "channel": {}, "severity": {}, "handler": {}}
    response, resolution, late, scores = [], [], 0, []
    for c in rows:
        keys = {"month": local(c.created_at).strftime("%Y-%m"), "category": c.category,
                "channel": CHANNELS[c.channel]["zh_CN"], "severity": SEVERITIES[c.severity]["zh_CN"],
                "handler": user_name(c.handler) or "（未指派）"}
        for name, key in keys.items():
            by[name][key] = by[name].get(key, 0) + 1
        if c.responded_at is not None:
            response.append(_hours(c.responded_at - c.created_at))
        if c.resolved_at is not None:
            resolution.append(_hours(c.resolved_at - c.created_at))
        late_response = (c.responded_at or now) > c.response_due
        late_resolution = c.status != "closed" and c.resolved_at is None and now > c.resolution_due
        late_resolution = late_resolution or (c.resolved_at is not None and c.resolved_at > c.resolution_due)
        if late_response or late_resolution:
            late += 1
        if c.satisfaction:
            scores.append(c.satisfaction)
    months = []
    cursor = local(start).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = local(end - timedelta(seconds=1))
    while (cursor.year, cursor.month) <= (last.year, last.month):
        months.append(cursor.strftime("%Y-%m"))
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    by["month"] = {m: by["month"].get(m, 0) for m in months}
    return {
        "total": len(rows), "by": by,
        "median_response_hours": _median(response), "median_resolution_hours": _median(resolution),
        "overdue": late, "overdue_share": round(100 * late / len(rows), 1) if rows else None,
        "satisfaction": {s: scores.count(s) for s in range(1, 6)},
        "satisfaction_mean": round(sum(scores) / len(scores), 2) if scores else None,
    }



def rekey(customer, old_key, new_key):
    """customers.rekey: the customer's complaints, their steps and attachments (names and files)
    follow the customer to its new data key. Each file is written anew under a fresh stored name;
    the old one goes once the transaction commits (the new one if it rolls back). Returns how many
    values and files moved."""
    rows = db.session.execute(select(Complaint).where(Complaint.customer_id == customer.id)).scalars().all()
    moved = 0
    for c in rows:
        moved += crypto.rekey_fields(c, old_key, new_key)
        moved += sum(crypto.rekey_fields(step, old_key, new_key) for step in c.steps)
        moved += sum(crypto.rekey_fields(att, old_key, new_key) for att in c.attachments)
        moved += rekey_files(c.attachments, attachment_path, old_key, new_key)
    db.session.flush()
    return moved
