"""Retention periods, what is due, legal holds and the destruction of a customer.

Destruction order, in one transaction: every module's part through the hook ``lifecycle.destroy``
(encrypted fields and blind indexes nulled, attachments deleted), then the customer's data key
destroyed (crypto.destroy_subject_key writes the destruction ledger ahead), then the tombstone
and the audit entry. Attachment files go once the transaction commits (``finish``), and on SQLite
the write-ahead log is checkpointed so no old page with the nulled values lingers beside the file.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select

from core.api import audit, crypto, db, hooks, local_today, remove_files, utcnow
from modules.customers import STATUSES, Customer, Transaction

from .models import Hold, Policy, Run, Tombstone

log = logging.getLogger("kehu.lifecycle")

# Years after the customer's last activity (status change, edit, transaction); None: kept.
DEFAULT_YEARS = {"prospect": 2, "active": None, "lost": 3}
FILES_KEY = "lifecycle_files_to_remove"


class LifecycleError(ValueError):
    """A refusal the user can act on (a legal hold, an unknown customer)."""


# --- policies ------------------------------------------------------------------------------------


def policies() -> dict[str, int | None]:
    """{status: years or None} for every customer status, the defaults where none was set."""
    current = dict(DEFAULT_YEARS)
    for row in db.session.scalars(select(Policy)):
        if row.status in current:
            current[row.status] = row.years
    return current


def set_policies(actor, years_by_status: dict) -> list[str]:
    """Store the periods; returns the statuses that changed (audited with old and new years)."""
    before, changed = policies(), []
    for status, years in years_by_status.items():
        if status not in STATUSES:
            raise LifecycleError(f"unknown status {status}")
        if years is not None and not (0 <= int(years) <= 100):
            raise LifecycleError("years must be between 0 and 100")
        if before.get(status) == years:
            continue
        row = db.session.scalar(select(Policy).where(Policy.status == status))
        if row is None:
            row = Policy(status=status)
            db.session.add(row)
        row.years, row.changed_by, row.changed_at = years, _name(actor), utcnow()
        audit.record("lifecycle.policy.changed", actor=actor, target_type="lifecycle_policy",
                     target_id=status, old=before.get(status), new=years)
        changed.append(status)
    db.session.flush()
    return changed


# --- archive documents by type -------------------------------------------------------------------
#
# Besides whole customers, the archives' documents have storage periods of their own per type
# (e.g. invoices N years after their date): stored as policies keyed "doc:<type>"; unset = kept.

DOC_KEY = "doc:"


def _archives_installed() -> bool:
    from sqlalchemy import inspect as sa_inspect
    return sa_inspect(db.session.connection()).has_table("archives_document")


def document_types() -> dict:
    """{doc_type: label dict} of the archives, or {} when archives is not installed."""
    if not _archives_installed():
        return {}
    import modules.archives as archives
    return dict(archives.DOC_TYPES)


def document_policies() -> dict[str, int | None]:
    current = dict.fromkeys(document_types())
    for row in db.session.scalars(select(Policy).where(Policy.status.startswith(DOC_KEY))):
        doc_type = row.status[len(DOC_KEY):]
        if doc_type in current:
            current[doc_type] = row.years
    return current


def set_document_policies(actor, years_by_type: dict) -> list[str]:
    """Store the periods of archive document types; returns the types that changed (audited)."""
    before, changed = document_policies(), []
    for doc_type, years in years_by_type.items():
        if doc_type not in before:
            raise LifecycleError(f"unknown document type {doc_type}")
        if years is not None and not (0 <= int(years) <= 100):
            raise LifecycleError("years must be between 0 and 100")
        if before[doc_type] == years:
            continue
        key = DOC_KEY + doc_type
        row = db.session.scalar(select(Policy).where(Policy.status == key))
        if row is None:
            row = Policy(status=key)
            db.session.add(row)
        row.years, row.changed_by, row.changed_at = years, _name(actor), utcnow()
        audit.record("lifecycle.policy.changed", actor=actor, target_type="lifecycle_policy",
                     target_id=key, old=before[doc_type], new=years)
        changed.append(doc_type)
    db.session.flush()
    return changed


def due_documents(today: date | None = None) -> list:
    """Archive documents past their type's period, of customers not destroyed and not held."""
    periods = {t: y for t, y in document_policies().items() if y is not None}
    if not periods:
        return []
    import modules.archives as archives
    today = today or local_today()
    held = set(db.session.scalars(select(Hold.customer_id).where(Hold.released_at.is_(None))))
    gone = set(db.session.scalars(select(Tombstone.customer_id)))
    found = []
    for doc in archives.documents_past(list(periods)):
        if doc.customer_id in held or doc.customer_id in gone:
            continue
        if _add_years(doc.doc_date, periods[doc.doc_type]) <= today:
            found.append(doc)
    return found


def policy_label(status, years) -> str:
    return f"{status}:{years}y"


def _name(actor) -> str:
    return getattr(actor, "username", None) or str(actor)


# --- what is due ---------------------------------------------------------------------------------


@dataclass
class Due:
    customer: Customer
    policy: str
    due_on: date
    hold: Hold | None


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def is_destroyed(customer_id) -> bool:
    return db.session.scalar(select(func.count()).select_from(Tombstone)
                             .where(Tombstone.customer_id == customer_id)) > 0


def active_hold(customer_id) -> Hold | None:
    return db.session.scalar(select(Hold).where(Hold.customer_id == customer_id, Hold.released_at.is_(None))
                             .order_by(Hold.id.desc()).limit(1))


def due(today: date | None = None) -> list[Due]:
    """Customers past their retention period and not destroyed yet, oldest due first; held ones
    included (with their hold) so the page shows why they stay."""
    today = today or local_today()
    periods = {s: y for s, y in policies().items() if y is not None}
    if not periods:
        return []
    last_tx = (select(Transaction.customer_id, func.max(Transaction.occurred_on).label("last"))
               .group_by(Transaction.customer_id).subquery())
    rows = db.session.execute(
        select(Customer, last_tx.c.last).outerjoin(last_tx, last_tx.c.customer_id == Customer.id)
        .where(Customer.status.in_(periods), Customer.id.not_in(select(Tombstone.customer_id)))
        .order_by(Customer.id)).all()
    holds = {h.customer_id: h for h in db.session.scalars(select(Hold).where(Hold.released_at.is_(None)))}
    found = []
    for customer, last in rows:
        activity = max(d for d in (customer.status_changed_at.date(), customer.updated_at.date(), last) if d)
        years = periods[customer.status]
        due_on = _add_years(activity, years)
        if due_on <= today:
            found.append(Due(customer, policy_label(customer.status, years), due_on, holds.get(customer.id)))
    found.sort(key=lambda d: (d.due_on, d.customer.id))
    return found


# --- holds ---------------------------------------------------------------------------------------


def customer_by_number(number) -> Customer:
    customer = db.session.scalar(select(Customer).where(Customer.number == (number or "").strip().upper()))
    if customer is None or is_destroyed(customer.id):
        raise LifecycleError("no such customer")
    return customer


def set_hold(actor, customer, reason) -> Hold:
    reason = (reason or "").strip()
    if not reason:
        raise LifecycleError("a legal hold needs a reason")
    hold = Hold(customer_id=customer.id, reason=reason[:200], set_by=_name(actor))
    db.session.add(hold)
    db.session.flush()
    audit.record("lifecycle.hold.set", target=customer, actor=actor, hold=hold.id)  # never the reason text
    return hold


def release_hold(actor, hold) -> None:
    if hold.released_at is not None:
        raise LifecycleError("the hold was released already")
    hold.released_at, hold.released_by = utcnow(), _name(actor)
    audit.record("lifecycle.hold.released", target_type="customers_customer", target_id=hold.customer_id,
                 actor=actor, hold=hold.id)


# --- destruction ---------------------------------------------------------------------------------


def scrub(customer, actor) -> dict:
    """Every module's part of a destruction, through the hook; {module: count}."""
    counts = {}
    for module, result in hooks.call("lifecycle.destroy", customer, actor, all_departments=True):
        counts[module] = counts.get(module, 0) + int(result or 0)
    return counts


def destroy_customer(actor, customer, policy, run=None) -> Tombstone:
    """Destroy one customer's personal data irrecoverably (see the module docstring). Refused with
    LifecycleError under a legal hold. The caller commits, then calls ``finish()``."""
    hold = active_hold(customer.id)
    if hold is not None:
        raise LifecycleError(f"customer {customer.number} is under a legal hold: {hold.reason}")
    if is_destroyed(customer.id):
        raise LifecycleError(f"customer {customer.number} was destroyed already")
    counts = scrub(customer, actor)
    key = customer.subject_key
    key_id = customer.subject_key_id
    if key is not None:
        crypto.destroy_subject_key(key, ref=f"customers_customer:{customer.id}")
    customer.subject_key = None
    stone = Tombstone(customer_id=customer.id, customer_number=customer.number, kind=customer.kind,
                      status=customer.status, department_id=customer.department_id, policy=policy,
                      actor=_name(actor), run=run)
    db.session.add(stone)
    db.session.flush()
    audit.record("lifecycle.customer.destroyed", target=customer, actor=actor, number=customer.number,
                 policy=policy, key_id=key_id, run=run.number if run else None,
                 parts=sorted(f"{k}={v}" for k, v in counts.items()))
    return stone


def finish() -> int:
    """After the commit: remove the deleted attachment files and checkpoint SQLite's log."""
    removed = finish_files()
    if db.engine.dialect.name == "sqlite":
        raw = db.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    return removed


def finish_files() -> int:
    return remove_files(db.session().info.pop(FILES_KEY, []))


@dataclass
class Outcome:
    run: Run | None
    due: list
    destroyed: list
    held: list
    documents: list = None  # archive documents past their type's period (deleted unless a dry run)


def run_retention(actor, *, dry_run=False, today=None, progress=None) -> Outcome:
    """Destroy every customer due (held ones are skipped and reported). The caller commits and
    then calls ``finish()``; with ``dry_run`` nothing is written."""
    items = due(today)
    held = [d for d in items if d.hold is not None]
    todo = [d for d in items if d.hold is None]
    documents = due_documents(today)
    if dry_run:
        return Outcome(None, items, [], held, documents)
    run = Run(number=f"XH{utcnow():%Y%m%d%H%M%S}-{db.session.scalar(select(func.count()).select_from(Run)) + 1}",
              actor=_name(actor))
    db.session.add(run)
    db.session.flush()
    destroyed = []
    for item in todo:
        destroy_customer(actor, item.customer, item.policy, run)
        destroyed.append(item)
        if progress:
            progress(1)
    for item in held:
        audit.record("lifecycle.customer.held", target=item.customer, actor=actor, hold=item.hold.id,
                     run=run.number)
    if documents:
        import modules.archives as archives
        for doc in documents:  # each deletion audited by archives, files removed in finish()
            db.session.info.setdefault(FILES_KEY, []).extend(archives.delete_document(actor, doc))
    run.destroyed, run.held = len(destroyed), len(held)
    audit.record("lifecycle.run.completed", target=run, actor=actor, destroyed=len(destroyed), held=len(held),
                 documents=len(documents))
    return Outcome(run, items, destroyed, held, documents)


def certificate_context(run) -> dict:
    from core.api import to_local
    rows = [[t.customer_number, t.kind, t.status, t.policy, to_local(t.destroyed_at).strftime("%Y-%m-%d %H:%M")]
            for t in run.tombstones]
    return {"run_number": run.number, "run_at": to_local(run.at).strftime("%Y-%m-%d %H:%M"),
            "actor": run.actor, "rows": rows, "destroyed": run.destroyed, "held": run.held}


def runs(limit=50):
    return db.session.scalars(select(Run).order_by(Run.id.desc()).limit(limit)).all()


def open_holds():
    return db.session.execute(select(Hold, Customer.number).join(Customer, Customer.id == Hold.customer_id)
                              .where(Hold.released_at.is_(None)).order_by(Hold.id)).all()
