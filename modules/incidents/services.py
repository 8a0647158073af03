"""The incident workflow as plain functions taking the actor. Views parse forms and call these;
every change writes one audit entry naming the fields changed, never their values."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import and_, false, func, or_, select, true

from core.api import ServiceError, User, audit, can, db, module_setting, next_number, utcnow, validation
from modules.customers import Customer, customers_matching

from .models import (
    CHANNELS,
    DATA_CLASSES,
    NOTICE_STATUSES,
    SEVERITIES,
    STATUSES,
    Affected,
    Comment,
    Evidence,
    Incident,
    Step,
)
from .permissions import HANDLE

ORDER = list(STATUSES)
NEXT = {ORDER[i]: ORDER[i + 1] for i in range(len(ORDER) - 1)}

# 国家网络安全事件报告管理办法 (in force 2025-11-01): incidents rated 较大 or above are reported to
# the provincial CAC within 4 hours (other network operators); 一般 incidents need no report to
# the authority within hours. Override with INCIDENTS_REPORT_HOURS = {"larger": 1, ...} (e.g. 1
# hour for a critical-information-infrastructure operator).
DEFAULT_REPORT_HOURS = {"general": None, "larger": 4, "major": 4, "especially_major": 4}

# What evidence kinds look for in the audit trail (action names, * for any text).
EVIDENCE_KINDS = {
    "reveals": ("*.revealed",),
    "exports": ("*.export.*", "*.exported"),
    "pdfs": ("*.printed", "*.pdf"),
    "downloads": ("*.downloaded",),
}
MAX_LINES = 2000
CUSTOMER_NUMBER = re.compile(r"^KH-\d{4}-\d{6}$")


# --- who sees what -----------------------------------------------------------------------------

def incident_rule(actor):
    """Record rule: security officers see every ticket; department heads those reported in their
    department and their own; everyone else only the tickets they reported."""
    if actor.role == "security":
        return true()
    own = Incident.reporter_id == actor.id
    if actor.role == "head" and actor.department_id is not None:
        return or_(own, Incident.department_id == actor.department_id)
    return own


# --- the regulator clock -----------------------------------------------------------------------

def report_hours():
    """{severity: hours or None} after configuration."""
    hours = dict(DEFAULT_REPORT_HOURS)
    hours.update(module_setting("incidents", "report_hours", {}) or {})
    return {k: hours.get(k) for k in SEVERITIES}


def _hours_for(severity):
    hours = report_hours()
    if severity is None:  # not triaged yet: the strictest clock runs until it is
        known = [h for h in hours.values() if h is not None]
        return min(known) if known else None
    return hours.get(severity)


def report_deadline(incident):
    """When the report to the authority is due (UTC), or None when none is required."""
    hours = _hours_for(incident.severity)
    return None if hours is None else incident.noticed_at + timedelta(hours=hours)


@dataclass
class Clock:
    state: str  # none (no report required) / done (reported) / running / overdue / closed
    deadline: object = None
    minutes: int = 0  # left (running) or past (overdue)


def clock(incident, now=None):
    now = now or utcnow()
    deadline = report_deadline(incident)
    if incident.regulator_reported_at is not None:
        return Clock("done", deadline)
    if deadline is None:
        return Clock("none")
    if incident.status == "closed":
        return Clock("closed", deadline)
    minutes = int((deadline - now).total_seconds() // 60)
    return Clock("running", deadline, minutes) if minutes >= 0 else Clock("overdue", deadline, -minutes)


def _overdue_clause(now):
    clauses = []
    for severity, hours in report_hours().items():
        if hours is not None:
            clauses.append(and_(Incident.severity == severity, Incident.noticed_at < now - timedelta(hours=hours)))
    strictest = _hours_for(None)
    if strictest is not None:
        clauses.append(and_(Incident.severity.is_(None), Incident.noticed_at < now - timedelta(hours=strictest)))
    if not clauses:
        return false()
    return and_(Incident.status != "closed", Incident.regulator_reported_at.is_(None), or_(*clauses))


def open_overdue_count(now=None):
    """Open tickets whose report to the authority is overdue (one query)."""
    return db.session.scalar(select(func.count()).select_from(Incident).where(_overdue_clause(now or utcnow())))


def overdue_badge(user):
    """The navigation badge: overdue tickets, for those who handle incidents."""
    return open_overdue_count() if can(user, HANDLE) else 0


def overdue_filter(now=None):
    return _overdue_clause(now or utcnow())


# --- reporting and comments --------------------------------------------------------------------

def report(actor, *, title, noticed_at, how_found, description, systems="", data_concerned=""):
    now = utcnow()
    if noticed_at > now + timedelta(minutes=5):
        raise ServiceError(_("The time noticed cannot be in the future."))
    incident = Incident(number=next_number("SJ"), status="reported", reporter_id=actor.id,
                        department_id=actor.department_id, noticed_at=noticed_at, reported_at=now)
    db.session.add(incident)
    incident.title, incident.how_found, incident.description = title, how_found, description
    incident.systems, incident.data_concerned = systems or None, data_concerned or None
    db.session.flush()
    step = Step(incident=incident, from_status=None, to_status="reported", actor_id=actor.id, at=now)
    db.session.add(step)
    audit.record("incidents.incident.reported", target=incident, number=incident.number,
                 fields=["title", "noticed_at", "how_found", "description", "systems", "data_concerned"])
    return incident


def add_comment(actor, incident, body):
    comment = Comment(incident=incident, author_id=actor.id)
    db.session.add(comment)
    comment.body = body
    db.session.flush()
    audit.record("incidents.comment.added", target=incident, comment_id=comment.id, fields=["body"])
    return comment


# --- the workflow ------------------------------------------------------------------------------

def _refuse(incident, to_status, message):
    """Record the refused step (nothing else of the request is kept) and stop with the reason."""
    incident_id, from_status = incident.id, incident.status
    db.session.rollback()
    audit.record("incidents.incident.refused", target_type=Incident.__tablename__, target_id=incident_id,
                 result="refused", from_status=from_status, to_status=to_status)
    db.session.commit()
    raise ServiceError(message)


def _step(actor, incident, to_status, note):
    step = Step(incident=incident, from_status=incident.status, to_status=to_status, actor_id=actor.id)
    db.session.add(step)
    step.note = note
    incident.status = to_status


def _check_next(incident, to_status):
    if to_status not in STATUSES:
        raise ServiceError(_("Unknown status."))
    if NEXT.get(incident.status) != to_status:
        _refuse(incident, to_status, _("A ticket that is %(status)s cannot move to this stage.",
                                       status=_label(STATUSES, incident.status)))


def _label(table, key):
    from core.api import pick
    return pick(table.get(key, {"zh_CN": key, "en": key}))


def assess(actor, incident, *, severity, data_classes, estimated_count, note=None):
    """Triage (from 已报告, with the note of what was assessed) or, later, a change of the
    assessment while the ticket is open."""
    if incident.status == "closed":
        _refuse(incident, incident.status, _("A closed ticket cannot be changed."))
    if severity not in SEVERITIES or not data_classes or any(c not in DATA_CLASSES for c in data_classes):
        raise ServiceError(_("Choose the severity and at least one category of data."))
    if estimated_count is not None and estimated_count < 0:
        raise ServiceError(_("The estimated number cannot be negative."))
    triage = incident.status == "reported"
    if triage and not (note or "").strip():
        raise ServiceError(_("Say what was assessed."))
    values = {"severity": severity, "data_classes": ",".join(c for c in DATA_CLASSES if c in data_classes),
              "estimated_count": estimated_count}
    changed = [name for name, value in values.items() if getattr(incident, name) != value]
    for name, value in values.items():
        setattr(incident, name, value)
    if triage:
        _step(actor, incident, "triaged", note)
        audit.record("incidents.incident.triaged", target=incident, severity=severity, fields=changed + ["note"])
    elif changed:
        audit.record("incidents.incident.updated", target=incident, fields=changed)
    return changed


def advance(actor, incident, to_status, note):
    """已研判 → 已控制 → 已调查 → 已通知, each with what was done."""
    if to_status not in ("contained", "investigated", "notified"):
        _refuse(incident, to_status, _("This stage is reached through its own form."))
    _check_next(incident, to_status)
    if not (note or "").strip():
        raise ServiceError(_("Say what was done."))
    if to_status == "notified":
        pending = [a for a in incident.affected if a.status == "pending"]
        if pending:
            _refuse(incident, to_status, _("%(count)d affected customers have not been notified yet.",
                                           count=len(pending)))
        if incident.affected and not all((incident.notice_what, incident.notice_measures,
                                          incident.notice_advice, incident.notice_contact)):
            _refuse(incident, to_status, _("Write the notice text first."))
        if report_deadline(incident) is not None and incident.regulator_reported_at is None:
            _refuse(incident, to_status, _("Record the report to the authority first."))
    before = incident.status
    _step(actor, incident, to_status, note)
    audit.record("incidents.incident.advanced", target=incident, from_status=before, to_status=to_status,
                 fields=["note"])


SUMMARY_FIELDS = ("root_cause", "measures", "improvements", "responsible")


def close(actor, incident, *, note="", **summary):
    """已通知 → 已关闭 with the summary: root cause, measures, improvements, responsible people."""
    _check_next(incident, "closed")
    if any(not (summary.get(name) or "").strip() for name in SUMMARY_FIELDS):
        _refuse(incident, "closed", _("Closing needs the whole summary."))
    for name in SUMMARY_FIELDS:
        setattr(incident, name, summary[name])
    _step(actor, incident, "closed", note or None)
    incident.closed_at = utcnow()
    audit.record("incidents.incident.closed", target=incident, fields=[*SUMMARY_FIELDS, "note"])


def record_regulator_report(actor, incident, reported_at, note):
    if incident.status == "closed":
        _refuse(incident, incident.status, _("A closed ticket cannot be changed."))
    if reported_at > utcnow() + timedelta(minutes=5):
        raise ServiceError(_("The time of the report cannot be in the future."))
    incident.regulator_reported_at = reported_at
    incident.regulator_note = note or None
    audit.record("incidents.regulator.reported", target=incident, fields=["regulator_reported_at", "regulator_note"])


NOTICE_FIELDS = ("notice_what", "notice_harm", "notice_measures", "notice_advice", "notice_contact")


def update_notice_text(actor, incident, **texts):
    if incident.status == "closed":
        _refuse(incident, incident.status, _("A closed ticket cannot be changed."))
    changed = []
    for name in NOTICE_FIELDS:
        value = (texts.get(name) or "").strip() or None
        if getattr(incident, name) != value:
            setattr(incident, name, value)
            changed.append(name)
    if changed:
        audit.record("incidents.incident.updated", target=incident, fields=changed)
    return changed


# --- affected customers ------------------------------------------------------------------------

@dataclass
class LineResult:
    number: int  # line number in the pasted text
    text: str  # the line as typed (shown back to the person who pasted it, never stored)
    outcome: str  # added / listed (already on the ticket) / unknown / malformed
    matched_by: str = ""
    customers: tuple = ()  # customer numbers added or already listed
    message: str = ""


def _classify(text):
    """(kind, normalised value) of one pasted line, or (None, reason)."""
    upper = text.upper()
    if CUSTOMER_NUMBER.match(upper):
        return "number", upper
    compact = re.sub(r"[\s-]", "", upper)
    if re.fullmatch(r"\d{17}[\dX]|\d{15}", compact):
        try:
            return "id_number", validation.id_number(compact)
        except validation.ValidationError as exc:
            return None, str(exc)
    try:
        return "phone", validation.phone(text)
    except validation.ValidationError as exc:
        return None, str(exc)


def add_affected(actor, incident, text):
    """Match pasted lines (customer numbers, phone numbers or ID numbers, one per line) against
    the register through the blind indexes and add the customers found. Returns one LineResult per
    non-empty line; malformed and unknown lines add nothing and stop nothing."""
    if incident.status == "closed":
        _refuse(incident, incident.status, _("A closed ticket cannot be changed."))
    lines = (text or "").splitlines()
    if len([ln for ln in lines if ln.strip()]) > MAX_LINES:
        raise ServiceError(_("At most %(count)d lines at a time.", count=MAX_LINES))
    listed = {a.customer_id for a in incident.affected}
    results, added = [], 0
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        kind, value = _classify(line)
        if kind is None:
            results.append(LineResult(number, line, "malformed", message=value))
            continue
        if kind == "number":
            found = list(db.session.scalars(select(Customer).where(Customer.number == value)))
        else:
            found = customers_matching(kind, value)
        if not found:
            results.append(LineResult(number, line, "unknown", kind))
            continue
        new = [c for c in found if c.id not in listed]
        for customer in new:
            db.session.add(Affected(incident=incident, customer_id=customer.id, matched_by=kind, added_by=actor.id))
            listed.add(customer.id)
        added += len(new)
        results.append(LineResult(number, line, "added" if new else "listed", kind,
                                  tuple(c.number for c in (new or found))))
    counts = {o: sum(1 for r in results if r.outcome == o) for o in ("added", "listed", "unknown", "malformed")}
    audit.record("incidents.affected.added", target=incident, customers=added, lines=len(results),
                 **{f"lines_{k}": v for k, v in counts.items()})
    db.session.flush()
    return results


def remove_affected(actor, incident, affected):
    if incident.status == "closed":
        _refuse(incident, incident.status, _("A closed ticket cannot be changed."))
    audit.record("incidents.affected.removed", target=incident, customer_id=affected.customer_id)
    db.session.delete(affected)


def update_notification(actor, incident, affected, channel, status):
    if incident.status == "closed":
        _refuse(incident, incident.status, _("A closed ticket cannot be changed."))
    if channel not in CHANNELS or status not in NOTICE_STATUSES:
        raise ServiceError(_("Choose a channel and a status."))
    changed = [n for n, v in (("channel", channel), ("status", status)) if getattr(affected, n) != v]
    affected.channel, affected.status = channel, status
    if "status" in changed:
        affected.notified_at = utcnow() if status == "sent" else None
    if changed:
        audit.record("incidents.affected.updated", target=incident, customer_id=affected.customer_id,
                     fields=changed)


# --- evidence from the audit trail -------------------------------------------------------------

def find_account(username):
    return db.session.scalar(select(User).where(User.username == (username or "").strip()))


def search_evidence(actor, incident, account, kinds, since, until, limit=200):
    """Entries of ``account`` of the chosen kinds in [since, until), newest first."""
    if until <= since:
        raise ServiceError(_("The end of the window must be after its start."))
    kinds = [k for k in kinds if k in EVIDENCE_KINDS] or list(EVIDENCE_KINDS)
    actions = [a for k in kinds for a in EVIDENCE_KINDS[k]]
    found = audit.entries(actor=account, actions=actions, since=since, until=until, limit=limit)
    audit.record("incidents.evidence.searched", target=incident, account_id=account.id, kinds=kinds,
                 found=len(found))
    return found


def link_evidence(actor, incident, entries, chosen_ids):
    """Link the chosen entries (ids among ``entries``, the search result) to the ticket."""
    have = {e.entry_id for e in incident.evidence}
    linked = []
    for entry in entries:
        if entry.id in chosen_ids and entry.id not in have:
            target = f"{entry.target_type} {entry.target_id}".strip()
            db.session.add(Evidence(incident=incident, entry_id=entry.id, at=entry.at, actor=entry.actor,
                                    action=entry.action, target=target[:140], linked_by=actor.id))
            linked.append(entry.id)
    if linked:
        audit.record("incidents.evidence.linked", target=incident, entries=linked)
    return linked


# --- display helpers ---------------------------------------------------------------------------

def visible_customer_ids(actor, customer_ids):
    """The ids among ``customer_ids`` the actor may open in the register."""
    from modules.customers import scoped_customers
    ids = list(customer_ids)
    if not ids:
        return set()
    stmt = scoped_customers(actor).with_only_columns(Customer.id).where(Customer.id.in_(ids))
    return set(db.session.scalars(stmt))


def customer_label(customer, visible):
    """The customer's number and name: the full name for someone who may see the customer in
    the register, masked for everyone else (company names of organisations are public)."""
    name = customer.display_name or ""
    if customer.kind != "org" and customer.id not in visible:
        name = validation.mask_name(name)
    return f"{customer.number} {name}".strip()


# --- from other modules ------------------------------------------------------------------------

def report_from_alert(actor, *, title, description, entry_ids=()):
    """A ticket opened by a security officer from an anomaly alert (the oversight module): reported
    now, found through the audit trail, with the alert's entries linked as evidence."""
    now = utcnow()
    incident = report(actor, title=title[:200], noticed_at=now, how_found=_("Anomaly alert from the audit trail"),
                      description=description)
    wanted = {int(i) for i in entry_ids}
    if wanted:
        from core.api import audit_feed
        entries = [e for e in audit_feed.after(min(wanted) - 1, limit=max(wanted) - min(wanted) + 1)
                   if e.id in wanted]
        link_evidence(actor, incident, entries, wanted)
    return incident


def selfcheck():
    """The security self-check (hook core.selfcheck): open tickets, and those whose report to the
    authority is overdue."""
    from core.api import Finding
    title = _("Security incidents")
    open_numbers = db.session.execute(select(Incident.number).where(Incident.status != "closed")
                                      .order_by(Incident.id)).scalars().all()
    overdue = open_overdue_count()
    if overdue:
        return [Finding("incidents.open", title, "fail",
                        _("%(open)d incidents are open, %(overdue)d past the deadline for the report to the authority.",
                          open=len(open_numbers), overdue=overdue),
                        _("Report the overdue incidents to the authority and record it on their ticket."),
                        tuple(open_numbers))]
    if open_numbers:
        return [Finding("incidents.open", title, "warning",
                        _("%(n)d incidents are open.", n=len(open_numbers)),
                        _("Take each open incident to its next step, or close it with its summary."),
                        tuple(open_numbers))]
    return [Finding("incidents.open", title, "ok", _("No incident is open."))]
