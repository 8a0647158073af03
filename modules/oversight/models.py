"""Tables of the oversight module: the customer-information policy in versions and who
acknowledged which, training sessions and who attended, confidentiality reviews of the people
who may reveal 高度敏感 data, anomaly alerts raised from the audit trail and how far the trail has
been read. Nothing here is customer data."""
from core.api import User, UTCDateTime, db, utcnow

RULES = ("burst", "off_hours", "denied_rows", "new_address")
ALERT_STATUSES = {"open": {"zh_CN": "待处理", "en": "Open"},
                  "acknowledged": {"zh_CN": "已确认", "en": "Acknowledged"}}


class Policy(db.Model):
    """One published version of the company's customer-information policy (客户信息管理制度).
    Published versions never change; a new text is a new version."""

    __tablename__ = "oversight_policy"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    version = db.Column(db.Integer, nullable=False, unique=True)
    title = db.Column(db.String(200), nullable=False)
    body = db.Column(db.Text, nullable=False)
    published_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    published_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)

    publisher = db.relationship(User)


class Acknowledgement(db.Model):
    __tablename__ = "oversight_acknowledgement"
    __table_args__ = (db.UniqueConstraint("policy_id", "user_id"),)

    id = db.Column(db.Integer, primary_key=True)
    policy_id = db.Column(db.Integer, db.ForeignKey("oversight_policy.id"), nullable=False, index=True)
    user_id = db.Column(db.Integer, db.ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False, index=True)
    at = db.Column(UTCDateTime, nullable=False, default=utcnow)


class Training(db.Model):
    """A security training session (安全培训) and who attended it."""

    __tablename__ = "oversight_training"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    held_on = db.Column(db.Date, nullable=False, index=True)
    trainer = db.Column(db.String(100), nullable=False)
    topics = db.Column(db.Text, nullable=False, default="")
    recorded_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    recorded_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    attendance = db.relationship("Attendance", cascade="all, delete-orphan", back_populates="training")


class Attendance(db.Model):
    __tablename__ = "oversight_attendance"
    __table_args__ = (db.UniqueConstraint("training_id", "user_id"),)

    id = db.Column(db.Integer, primary_key=True)
    training_id = db.Column(db.Integer, db.ForeignKey("oversight_training.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    user_id = db.Column(db.Integer, db.ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False, index=True)

    training = db.relationship(Training, back_populates="attendance")
    user = db.relationship(User)


class Review(db.Model):
    """A confidentiality review (保密审查) of a person allowed to reveal 高度敏感 data: when, by whom,
    valid until when."""

    __tablename__ = "oversight_review"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False, index=True)
    reviewed_on = db.Column(db.Date, nullable=False)
    expires_on = db.Column(db.Date, nullable=False, index=True)
    reviewer_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    note = db.Column(db.String(500), nullable=False, default="")
    recorded_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    user = db.relationship(User, foreign_keys=[user_id])
    reviewer = db.relationship(User, foreign_keys=[reviewer_id])


class Alert(db.Model):
    """An anomaly found in the audit trail by one of the RULES, about one account (or, for
    sign-ins, the account signed into). Entries first_entry_id..last_entry_id are its evidence."""

    __tablename__ = "oversight_alert"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    rule = db.Column(db.String(32), nullable=False, index=True)
    actor_id = db.Column(db.Integer, nullable=True, index=True)  # no FK: alerts outlive accounts
    actor = db.Column(db.String(64), nullable=False, default="")
    first_at = db.Column(UTCDateTime, nullable=False)
    last_at = db.Column(UTCDateTime, nullable=False)
    entry_ids = db.Column(db.Text, nullable=False, default="")  # comma-separated audit entry ids
    count = db.Column(db.Integer, nullable=False, default=0)
    address = db.Column(db.String(64), nullable=False, default="")
    raised_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    status = db.Column(db.String(16), nullable=False, default="open", index=True)
    acknowledged_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    acknowledged_at = db.Column(UTCDateTime, nullable=True)
    note = db.Column(db.Text, nullable=False, default="")
    incident_number = db.Column(db.String(32), nullable=False, default="")

    acknowledger = db.relationship(User)

    @property
    def entries(self):
        return [int(i) for i in self.entry_ids.split(",") if i]


class Cursor(db.Model):
    """How far the alert rules have read the audit trail (one row)."""

    __tablename__ = "oversight_cursor"

    id = db.Column(db.Integer, primary_key=True)
    last_entry_id = db.Column(db.Integer, nullable=False, default=0)


ALL = (Policy, Acknowledgement, Training, Attendance, Review, Alert, Cursor)
