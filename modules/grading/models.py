"""Tables of the grading module: rule versions per department, the current grade of each customer,
and the history of grade changes. No column of another module's table is touched: grades refer to
customers by foreign key."""
import json

from sqlalchemy import CheckConstraint, UniqueConstraint

from core.api import UTCDateTime, db, utcnow

_GRADE_SQL = "('important', 'ordinary')"  # the keys of rules.GRADES


class RuleVersion(db.Model):
    """One saved version of a department's rules. Saving adds a version; none is ever edited, so
    a history entry can always name the exact thresholds that produced it. A department without
    rows uses the module's defaults (version 0)."""

    __tablename__ = "grading_rule"
    __table_args__ = (UniqueConstraint("department_id", "version"), {"sqlite_autoincrement": True})

    id = db.Column(db.Integer, primary_key=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id", ondelete="CASCADE"),
                              nullable=False, index=True)
    version = db.Column(db.Integer, nullable=False)
    min_amount = db.Column(db.Numeric(14, 2), nullable=True)
    min_count = db.Column(db.Integer, nullable=True)
    min_tenure_months = db.Column(db.Integer, nullable=False, default=0)
    escalate_open_complaints = db.Column(db.Integer, nullable=True)
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    author = db.relationship("User")


class Grade(db.Model):
    """The current grade of a customer: what the rules computed, and a head's override if any.
    ``grade`` is the effective one (override first), kept as a column for the list filter/sort."""

    __tablename__ = "grading_grade"
    __table_args__ = (
        CheckConstraint(f"grade IN {_GRADE_SQL}", name="grade"),
        CheckConstraint(f"computed IN {_GRADE_SQL}", name="computed"),
        CheckConstraint(f"override IS NULL OR override IN {_GRADE_SQL}", name="override"),
    )

    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            primary_key=True)
    grade = db.Column(db.String(16), nullable=False, index=True)
    computed = db.Column(db.String(16), nullable=False)
    rule_version = db.Column(db.Integer, nullable=False, default=0)
    basis = db.Column(db.Text, nullable=False, default="{}")  # JSON of rules.Basis
    computed_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    override = db.Column(db.String(16), nullable=True)
    override_reason = db.Column(db.String(500), nullable=True)
    override_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    override_at = db.Column(UTCDateTime, nullable=True)

    override_user = db.relationship("User")

    @property
    def basis_dict(self):
        return json.loads(self.basis or "{}")


class History(db.Model):
    """A change of a customer's effective grade, or an override set or removed.

    ``source`` is "rules" (a computation, with the rule version), "override" or "override_removed"
    (with the head who did it and, for an override, the reason)."""

    __tablename__ = "grading_history"
    __table_args__ = (
        CheckConstraint("source IN ('rules', 'override', 'override_removed')", name="source"),
        {"sqlite_autoincrement": True},
    )

    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    from_grade = db.Column(db.String(16), nullable=True)
    to_grade = db.Column(db.String(16), nullable=False)
    source = db.Column(db.String(16), nullable=False)
    rule_version = db.Column(db.Integer, nullable=True)
    user_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    reason = db.Column(db.String(500), nullable=True)

    user = db.relationship("User")


ALL = (RuleVersion, Grade, History)
