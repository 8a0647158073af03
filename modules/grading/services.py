"""Grading services for the web pages and the CLI. Each function takes the acting user (or the CLI's
actor string) and the department explicitly, writes its audit entry and leaves committing to the
caller."""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import delete, func, insert, select

from core.api import Department, audit, db, hooks, is_enabled, utcnow
from modules.customers import Customer, Transaction, consent, transaction_totals

from . import rules as R
from .models import Grade, History, RuleVersion

MODULE = "grading"
BATCH = 500  # customers per aggregate query and flush
PURPOSE = "analysis"  # grading is customer analysis: only customers who consented to it are graded
REASON_MAX = 500
FIELDS = ("min_amount", "min_count", "min_tenure_months", "escalate_open_complaints")


class GradingError(ValueError):
    """Bad input for a grading action; the message is shown to the user as it is. ``field`` names
    the input it is about, if one."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def _actor_user_id(actor):
    return getattr(actor, "id", None) if not isinstance(actor, str) else None


def _department_id(department):
    return department if isinstance(department, int) else department.id


def _act_for_department(actor, department_id):
    """A signed-in actor acts for their own department only (the CLI acts for any). Then the
    department's grading writes are serialised: its row is locked for the transaction
    (PostgreSQL; SQLite transactions hold the write lock already), so two recomputations, or a
    recomputation and an override, never race on the same grades or rule version."""
    if not isinstance(actor, str) and getattr(actor, "department_id", None) != department_id:
        raise GradingError(_("A department head manages only their own department."))
    db.session.execute(select(Department.id).where(Department.id == department_id).with_for_update())


# --- rules -----------------------------------------------------------------------------------------

def _rules_of(row):
    if row is None:
        return R.DEFAULT_RULES
    return R.Rules(min_amount=row.min_amount, min_count=row.min_count,
                   min_tenure_months=row.min_tenure_months,
                   escalate_open_complaints=row.escalate_open_complaints, version=row.version)


def department_rules(department) -> R.Rules:
    """The rules in force for a department: its latest saved version, else the module's defaults."""
    row = db.session.execute(
        select(RuleVersion).where(RuleVersion.department_id == _department_id(department))
        .order_by(RuleVersion.version.desc()).limit(1)).scalar_one_or_none()
    return _rules_of(row)


def rule_versions(department):
    """Every saved version of a department's rules, newest first."""
    return db.session.execute(
        select(RuleVersion).where(RuleVersion.department_id == _department_id(department))
        .order_by(RuleVersion.version.desc())).scalars().all()


_PROBLEMS = {
    "value_needed": lambda: _("Set a minimum amount, a minimum number of transactions, or both."),
    "range": lambda: _("This value is out of range."),
}


def save_rules(actor, department, data) -> tuple[R.Rules, bool]:
    """Save new thresholds for the department as a new rule version (audited).

    ``data`` maps the four threshold names to values (None = not used). Returns the rules in force
    and whether anything changed; unchanged thresholds add no version."""
    dept_id = _department_id(department)
    _act_for_department(actor, dept_id)
    clean = {}
    for name in FIELDS:
        value = data.get(name)
        try:
            if value is None or str(value).strip() == "":
                value = None
            elif name == "min_amount":
                value = Decimal(str(value).strip()).quantize(Decimal("0.01"))
                if not value.is_finite():
                    raise ValueError(value)
            else:
                value = int(str(value).strip())
        except (ValueError, ArithmeticError) as exc:
            raise GradingError(_("Enter a number."), name) from exc
        clean[name] = value
    if clean["min_tenure_months"] is None:
        clean["min_tenure_months"] = 0
    problems = R.check(clean)
    if problems:
        field, key = problems[0]
        raise GradingError(_PROBLEMS[key](), field)
    current = department_rules(dept_id)
    proposed = R.Rules(**clean, version=current.version + 1)
    old, new = current.thresholds(), proposed.thresholds()
    changed = [name for name in FIELDS if old[name] != new[name]]
    if not changed and not current.is_default:
        return current, False
    row = RuleVersion(department_id=dept_id, version=proposed.version, created_by=_actor_user_id(actor),
                      created_at=utcnow(), **clean)
    db.session.add(row)
    db.session.flush()
    audit.record("grading.rules.changed", actor=actor, target_type="core_department", target_id=dept_id,
                 version=proposed.version, fields=changed, **new)
    return proposed, True


# --- computing grades --------------------------------------------------------------------------------

@dataclass
class Summary:
    departments: int = 0
    graded: int = 0
    changed: int = 0
    overridden_kept: int = 0
    no_consent: int = 0  # customers left out: no active consent to analysis
    removed: int = 0  # grades dropped: the customer's analysis consent was withdrawn since

    def add(self, other):
        self.departments += other.departments
        self.no_consent += other.no_consent
        self.removed += other.removed
        self.graded += other.graded
        self.changed += other.changed
        self.overridden_kept += other.overridden_kept


def _open_complaints(customer_ids, department_id):
    """{customer_id: open complaints} from the modules answering ``complaints.open_counts`` for the
    department, or None when none does (then the complaints criterion is not applied)."""
    answers = hooks.call("complaints.open_counts", list(customer_ids), department_id=department_id)
    if not answers:
        return None
    counts = {}
    for _module, result in answers:
        for customer_id, n in (result or {}).items():
            counts[customer_id] = counts.get(customer_id, 0) + int(n or 0)
    return counts


def _first_records(customer_ids):
    """{customer_id: date of its first transaction or service record}, in one aggregate query."""
    return dict(db.session.execute(
        select(Transaction.customer_id, func.min(Transaction.occurred_on))
        .where(Transaction.customer_id.in_(list(customer_ids)), Transaction.voided_at.is_(None))
        .group_by(Transaction.customer_id)).all())


def _bases(rules, department_id, rows, today):
    """{customer_id: Basis} for rows of (customer id, created_at): two aggregate queries (the
    transaction totals of the window, the first records) and one hook call (open complaints) for
    all of them together."""
    ids = [cid for cid, _created in rows]
    totals = transaction_totals(ids, since=R.months_before(today, R.WINDOW_MONTHS))
    first = _first_records(ids)
    complaints = _open_complaints(ids, department_id)
    bases = {}
    for cid, created_at in rows:
        count, amount = totals.get(cid, (0, Decimal("0")))
        since = min(d for d in (created_at.date(), first.get(cid)) if d is not None)
        facts = R.Facts(amount=Decimal(amount or 0), count=int(count or 0), since=since,
                        tenure_months=R.months_between(since, today),
                        open_complaints=None if complaints is None else complaints.get(cid, 0))
        bases[cid] = R.evaluate(rules, facts)
    return bases


def _store_computed(row, basis, now):
    row.computed = basis.grade
    row.rule_version = basis.rule_version
    row.basis = json.dumps(basis.to_dict(), sort_keys=True)
    row.computed_at = now


def _apply(row, customer_id, basis, now, summary, changes):
    """Store a computed grade; an override stays in force. A change of the effective grade is
    appended to ``changes`` (history rows, inserted in bulk by the caller)."""
    summary.graded += 1
    if row is None:
        row = Grade(customer_id=customer_id, grade=basis.grade)
        _store_computed(row, basis, now)
        db.session.add(row)
        changes.append({"customer_id": customer_id, "at": now, "from_grade": None, "to_grade": basis.grade,
                        "source": "rules", "rule_version": basis.rule_version})
        summary.changed += 1
        return row
    _store_computed(row, basis, now)
    if row.override is not None:
        summary.overridden_kept += 1
    elif row.grade != basis.grade:
        changes.append({"customer_id": customer_id, "at": now, "from_grade": row.grade, "to_grade": basis.grade,
                        "source": "rules", "rule_version": basis.rule_version})
        row.grade = basis.grade
        summary.changed += 1
    return row


def count_customers(department, consented=True):
    """The department's customers (those grading may process, unless ``consented=False``)."""
    stmt = select(func.count()).select_from(Customer).where(Customer.department_id == _department_id(department))
    if consented:
        stmt = stmt.where(consent.allowed_clause(PURPOSE))
    return db.session.execute(stmt).scalar_one()


def recompute(actor, department: Department, progress=None, batch=BATCH) -> Summary:
    """Grade every customer of the department by its rules in force (audited once per run).

    Customers are taken ``batch`` at a time: two aggregate queries over their transaction records
    (``transaction_totals`` and the first records), one for their current grades, bulk writes.
    ``progress(n)`` is called after each batch of n customers."""
    _act_for_department(actor, department.id)
    rules = department_rules(department.id)
    now = utcnow()
    today = now.date()
    rows = db.session.execute(select(Customer.id, Customer.created_at)
                              .where(Customer.department_id == department.id, consent.allowed_clause(PURPOSE))
                              .order_by(Customer.id)).all()
    summary = Summary(departments=1, no_consent=count_customers(department, consented=False) - len(rows))
    summary.removed = _drop_unconsented(department)
    for start in range(0, len(rows), batch):
        chunk = [tuple(r) for r in rows[start:start + batch]]
        ids = [cid for cid, _created in chunk]
        existing = {g.customer_id: g for g in db.session.execute(
            select(Grade).where(Grade.customer_id.in_(ids))).scalars()}
        changes = []
        for cid, basis in _bases(rules, department.id, chunk, today).items():
            _apply(existing.get(cid), cid, basis, now, summary, changes)
        db.session.flush()
        if changes:  # one multi-row insert, not one statement per customer
            db.session.execute(insert(History), changes)
        if progress is not None:
            progress(len(chunk))
    audit.record("grading.grades.recomputed", actor=actor, target_type="core_department",
                 target_id=department.id, department=department.code, rule_version=rules.version,
                 graded=summary.graded, changed=summary.changed, overridden_kept=summary.overridden_kept,
                 no_consent=summary.no_consent, removed=summary.removed)
    return summary


def _drop_unconsented(department) -> int:
    """Delete the grades of the department's customers who no longer consent to analysis: a grade
    is the result of that processing, and it stops with the consent (PIPL art. 15, 47)."""
    stale = db.session.scalars(select(Grade.customer_id).join(Customer, Customer.id == Grade.customer_id).where(
        Customer.department_id == department.id, ~consent.allowed_clause(PURPOSE))).all()
    if stale:
        db.session.execute(delete(Grade).where(Grade.customer_id.in_(stale)))
    return len(stale)


def drop_grade(actor, customer) -> bool:
    """The customer's analysis consent is gone: delete its grade (and a head's override of it),
    audited. Returns whether there was one."""
    row = db.session.get(Grade, customer.id)
    if row is None:
        return False
    grade = row.grade
    db.session.delete(row)
    db.session.flush()
    audit.record("grading.grade.removed", target=customer, actor=actor, grade=grade, reason="no_analysis_consent")
    return True


def regrade(actor, customer) -> str | None:
    """Grade one customer by its department's rules now (a customer was created or edited, a
    record of it added, corrected or voided). An override stays in force. A change of the
    effective grade goes to the history and the audit trail; returns the new grade if it changed.
    A customer without an analysis consent is not graded, and a grade it had is dropped."""
    if not consent.allows(customer, PURPOSE):
        drop_grade(actor, customer)
        return None
    now = utcnow()
    row = db.session.get(Grade, customer.id)
    before = row.grade if row is not None else None
    summary, changes = Summary(), []
    row = _apply(row, customer.id, _compute_one(customer, now), now, summary, changes)
    db.session.flush()
    if not changes:
        return None
    db.session.execute(insert(History), changes)
    audit.record("grading.grade.regraded", target=customer, actor=actor, grade=row.grade,
                 previous=before, rule_version=changes[0]["rule_version"])
    return row.grade


def _compute_one(customer, now):
    rules = department_rules(customer.department_id)
    return _bases(rules, customer.department_id, [(customer.id, customer.created_at)], now.date())[customer.id]


# --- overrides ---------------------------------------------------------------------------------------

def grade_row(customer_id):
    return db.session.get(Grade, customer_id)


def set_override(actor, customer, grade, reason) -> Grade:
    """A head fixes the customer's grade, with a reason; recomputation keeps it until removed."""
    _act_for_department(actor, customer.department_id)
    if grade not in R.GRADES:
        raise GradingError(_("Choose important or ordinary."))
    if not consent.allows(customer, PURPOSE):
        raise GradingError(_("This customer has not agreed to analysis: it cannot be graded."))
    reason = " ".join((reason or "").split())
    if not reason or len(reason) > REASON_MAX:
        raise GradingError(_("The reason must have 1-%(n)d characters.", n=REASON_MAX))
    now = utcnow()
    row = grade_row(customer.id)
    if row is None:  # never graded: keep what the rules say beside the override
        row = Grade(customer_id=customer.id)
        _store_computed(row, _compute_one(customer, now), now)
        db.session.add(row)
    previous = row.grade
    row.override, row.override_reason = grade, reason
    row.override_by, row.override_at = _actor_user_id(actor), now
    row.grade = grade
    db.session.add(History(customer_id=customer.id, at=now, from_grade=previous, to_grade=grade,
                           source="override", user_id=_actor_user_id(actor), reason=reason))
    db.session.flush()
    audit.record("grading.grade.overridden", target=customer, actor=actor, grade=grade,
                 previous=previous or "", reason=reason)
    return row


def remove_override(actor, customer) -> Grade:
    """End a head's override: the grade is recomputed by the rules in force at once."""
    _act_for_department(actor, customer.department_id)
    row = grade_row(customer.id)
    if row is None or row.override is None:
        raise GradingError(_("This customer's grade is not overridden."))
    now = utcnow()
    basis = _compute_one(customer, now)
    previous = row.grade
    _store_computed(row, basis, now)
    row.override = row.override_reason = row.override_by = row.override_at = None
    row.grade = basis.grade
    db.session.add(History(customer_id=customer.id, at=now, from_grade=previous, to_grade=basis.grade,
                           source="override_removed", rule_version=basis.rule_version,
                           user_id=_actor_user_id(actor)))
    db.session.flush()
    audit.record("grading.grade.override_removed", target=customer, actor=actor, grade=basis.grade,
                 previous=previous)
    return row


def history(customer_id, limit=None):
    stmt = select(History).where(History.customer_id == customer_id).order_by(History.at.desc(),
                                                                              History.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    return db.session.execute(stmt).scalars().all()


# --- reading ------------------------------------------------------------------------------------------

def distribution(department: Department):
    """The department's grade distribution: counts per grade (and how many are overridden) plus the
    customers not graded yet."""
    rows = db.session.execute(
        select(Grade.grade, Grade.override.is_not(None), func.count(), func.max(Grade.computed_at))
        .join(Customer, Customer.id == Grade.customer_id)
        .where(Customer.department_id == department.id)
        .group_by(Grade.grade, Grade.override.is_not(None))).all()
    counts = {g: {"count": 0, "overridden": 0} for g in R.GRADES}
    last = None
    for grade, overridden, n, computed_at in rows:
        counts[grade]["count"] += n
        if overridden:
            counts[grade]["overridden"] += n
        if computed_at is not None and (last is None or computed_at > last):
            last = computed_at
    total = count_customers(department)
    graded = sum(c["count"] for c in counts.values())
    return {"total": total, "graded": graded, "ungraded": total - graded, "counts": counts,
            "last_computed_at": last}


def grades_of(customer_ids):
    """{customer_id: effective grade} for graded customers whose department uses grading."""
    ids = list(customer_ids)
    if not ids:
        return {}
    rows = db.session.execute(select(Grade.customer_id, Grade.grade, Customer.department_id)
                              .join(Customer, Customer.id == Grade.customer_id)
                              .where(Grade.customer_id.in_(ids))).all()
    return {cid: grade for cid, grade, dept_id in rows if is_enabled(MODULE, dept_id)}


def grade_of(customer_id):
    """The customer's effective grade, "important" or "ordinary" (an override wins over the rules);
    None when it has not been graded yet or its department does not use grading."""
    return grades_of([customer_id]).get(customer_id)
