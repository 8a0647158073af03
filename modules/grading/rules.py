"""The grading rule itself: thresholds, the module's defaults and the evaluation. No database here.

A customer is 重要 (important) when

    (amount in the trailing 12 months ≥ A  OR  transactions in the trailing 12 months ≥ N)
    AND  tenure ≥ T full months

or, escalation, when it has C or more open complaints (only where a module answers the
``complaints.open_counts`` hook for the department). Otherwise it is 一般 (ordinary).

A or N may be left blank (not used) but not both; C may be left blank (no escalation). Only
records of kind "transaction" count for A and N (service records do not). Tenure runs from the
start of the relationship: the customer's registration or its first recorded transaction or
service, whichever is earlier, so that customers imported with their history are not "new"."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal

IMPORTANT, ORDINARY = "important", "ordinary"
GRADES = {
    IMPORTANT: {"zh_CN": "重要", "en": "Important"},
    ORDINARY: {"zh_CN": "一般", "en": "Ordinary"},
}
WINDOW_MONTHS = 12  # the value criteria look at this many months back from today
AMOUNT_MAX = Decimal("999999999999.99")  # what Numeric(14, 2) holds
COUNT_MAX = 100000
TENURE_MAX = 600
COMPLAINTS_MAX = 1000


@dataclass(frozen=True)
class Rules:
    """One version of a department's rules; version 0 is the module's defaults."""

    min_amount: Decimal | None = Decimal("100000.00")  # 近12个月交易金额 ≥ 10万元
    min_count: int | None = 12  # 或近12个月交易 ≥ 12 笔 (about one a month)
    min_tenure_months: int = 3  # 且建档满 3 个月
    escalate_open_complaints: int | None = 3  # 或未结投诉 ≥ 3 件
    version: int = 0

    @property
    def is_default(self):
        return self.version == 0

    def thresholds(self):
        """The thresholds as plain JSON-able values (for audit entries, JSON and comparisons)."""
        return {"min_amount": None if self.min_amount is None else str(self.min_amount),
                "min_count": self.min_count, "min_tenure_months": self.min_tenure_months,
                "escalate_open_complaints": self.escalate_open_complaints}


DEFAULT_RULES = Rules()


@dataclass(frozen=True)
class Facts:
    """What the rule looks at for one customer."""

    amount: Decimal = Decimal("0")
    count: int = 0
    tenure_months: int = 0
    open_complaints: int | None = None  # None: no module counts complaints for the department
    since: date | None = None  # start of the relationship (for display)


@dataclass(frozen=True)
class Basis:
    """Why a customer got its computed grade: the facts and which criteria they met."""

    grade: str
    amount: str
    count: int
    tenure_months: int
    since: str | None
    open_complaints: int | None
    value_met: bool
    tenure_met: bool
    escalated: bool
    rule_version: int

    def to_dict(self):
        return asdict(self)


def check(rules_data):
    """Problems with proposed thresholds as [(field, message key)], empty when they are usable."""
    problems = []
    amount, count = rules_data.get("min_amount"), rules_data.get("min_count")
    if amount is None and count is None:
        problems.append(("min_amount", "value_needed"))
    if amount is not None and not (Decimal("0.01") <= amount <= AMOUNT_MAX):
        problems.append(("min_amount", "range"))
    if count is not None and not (1 <= count <= COUNT_MAX):
        problems.append(("min_count", "range"))
    tenure = rules_data.get("min_tenure_months")
    if tenure is None or not (0 <= tenure <= TENURE_MAX):
        problems.append(("min_tenure_months", "range"))
    complaints = rules_data.get("escalate_open_complaints")
    if complaints is not None and not (1 <= complaints <= COMPLAINTS_MAX):
        problems.append(("escalate_open_complaints", "range"))
    return problems


def evaluate(rules: Rules, facts: Facts) -> Basis:
    amount = Decimal(facts.amount or 0)
    value_met = ((rules.min_amount is not None and amount >= rules.min_amount)
                 or (rules.min_count is not None and facts.count >= rules.min_count))
    tenure_met = facts.tenure_months >= rules.min_tenure_months
    escalated = (rules.escalate_open_complaints is not None and facts.open_complaints is not None
                 and facts.open_complaints >= rules.escalate_open_complaints)
    grade = IMPORTANT if (value_met and tenure_met) or escalated else ORDINARY
    return Basis(grade=grade, amount=str(amount.quantize(Decimal("0.01"))), count=facts.count,
                 tenure_months=facts.tenure_months, since=facts.since.isoformat() if facts.since else None,
                 open_complaints=facts.open_complaints,
                 value_met=bool(value_met), tenure_met=tenure_met, escalated=escalated,
                 rule_version=rules.version)


def months_between(start: date, end: date) -> int:
    """Full months from ``start`` to ``end`` (0 if ``end`` is earlier)."""
    months = (end.year - start.year) * 12 + end.month - start.month - (1 if end.day < start.day else 0)
    return max(months, 0)


def months_before(day: date, months: int) -> date:
    """The same day ``months`` earlier, clamped to the end of a shorter month."""
    import calendar
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
