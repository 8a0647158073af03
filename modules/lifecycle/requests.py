"""Data-subject requests (PIPL arts. 44-47): record, deadline, close; the copy of all data held on
the customer across modules (hook ``lifecycle.subject_data``); an approved deletion goes through
the destruction of services.destroy_customer."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select

from core.api import audit, db, hooks, local_today, pick, to_local, utcnow

from . import services
from .models import SubjectRequest

KINDS = {"copy": {"zh_CN": "查阅、复制", "en": "See or copy"},
         "correct": {"zh_CN": "更正、补充", "en": "Correct"},
         "delete": {"zh_CN": "删除", "en": "Delete"}}
STATES = {"open": {"zh_CN": "处理中", "en": "Open"}, "done": {"zh_CN": "已办结", "en": "Done"},
          "refused": {"zh_CN": "已拒绝", "en": "Refused"}}
WORKING_DAYS = 15


@dataclass
class Section:
    """One part of the copy PDF: a title and (label, value) rows, values as plain text."""

    title: str
    rows: list = field(default_factory=list)


def add_working_days(start: date, days: int) -> date:
    """``days`` working days (Monday to Friday) after ``start``; public holidays are not known."""
    day = start
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


def create(actor, customer, kind, *, received_on=None, channel="") -> SubjectRequest:
    if kind not in KINDS:
        raise services.LifecycleError("unknown kind of request")
    if services.is_destroyed(customer.id):
        raise services.LifecycleError("the customer was destroyed")
    received_on = received_on or local_today()
    count = db.session.scalar(select(func.count()).select_from(SubjectRequest)) + 1
    req = SubjectRequest(number=f"SR{received_on:%Y%m%d}-{count:04d}", customer_id=customer.id, kind=kind,
                         received_on=received_on, due_on=add_working_days(received_on, WORKING_DAYS),
                         channel=(channel or "")[:32], created_by=services._name(actor))
    db.session.add(req)
    db.session.flush()
    audit.record("lifecycle.request.created", target=req, actor=actor, customer_id=customer.id, kind=kind,
                 due_on=req.due_on.isoformat())
    return req


def close(actor, req, status, outcome="") -> None:
    if req.status != "open":
        raise services.LifecycleError("the request is closed already")
    if status not in ("done", "refused"):
        raise services.LifecycleError("unknown status")
    if status == "refused" and not (outcome or "").strip():
        raise services.LifecycleError("a refusal needs its reason")
    req.status, req.outcome = status, (outcome or "").strip()[:200]
    req.closed_by, req.closed_at = services._name(actor), utcnow()
    audit.record(f"lifecycle.request.{status}", target=req, actor=actor, customer_id=req.customer_id)


def approve_deletion(actor, req, customer):
    """The approved deletion of a delete request: the customer is destroyed (a legal hold refuses
    it with LifecycleError) and the request is done. The caller commits, then services.finish()."""
    if req.kind != "delete" or req.status != "open":
        raise services.LifecycleError("only an open deletion request can be approved")
    stone = services.destroy_customer(actor, customer, f"request:{req.number}")
    close(actor, req, "done", "destroyed")
    return stone


def overdue_count(today=None) -> int:
    today = today or local_today()
    return db.session.scalar(select(func.count()).select_from(SubjectRequest)
                             .where(SubjectRequest.status == "open", SubjectRequest.due_on < today))


def open_requests(customer_ids=None, limit=200):
    stmt = select(SubjectRequest).order_by(SubjectRequest.status != "open", SubjectRequest.due_on,
                                           SubjectRequest.id)
    if customer_ids is not None:
        stmt = stmt.where(SubjectRequest.customer_id.in_(customer_ids))
    return db.session.scalars(stmt.limit(limit)).all()


def subject_data(customer) -> list[Section]:
    """Every section every module holds on the customer (hook lifecycle.subject_data)."""
    sections = []
    for _module, parts in hooks.call("lifecycle.subject_data", customer, all_departments=True):
        sections.extend(parts or [])
    return sections


def copy_context(req, customer, actor) -> dict:
    return {"request_number": req.number, "customer_number": customer.number,
            "printed_at": to_local(utcnow()).strftime("%Y-%m-%d %H:%M"), "printed_by": services._name(actor),
            "kind": pick(KINDS[req.kind]), "sections": subject_data(customer)}


def selfcheck():
    """The security self-check (hook core.selfcheck): data-subject requests past their deadline."""
    from flask_babel import gettext as _

    from core.api import Finding
    title = _("Data-subject requests")
    overdue = db.session.execute(select(SubjectRequest.number).where(
        SubjectRequest.status == "open", SubjectRequest.due_on < local_today())
        .order_by(SubjectRequest.due_on)).scalars().all()
    if not overdue:
        return [Finding("lifecycle.requests", title, "ok", _("No data-subject request is past its deadline."))]
    return [Finding("lifecycle.requests", title, "fail",
                    _("%(n)d data-subject requests are past their deadline.", n=len(overdue)),
                    _("Answer them on Data lifecycle → Data-subject requests now; PIPL gives 15 working days."),
                    tuple(overdue))]
