"""Tables of the incident module (incidents_*).

A ticket's free texts (what happened, how it was found, systems, data, notice texts, summary,
step notes and comments) are AES-GCM ciphertext under a data key of the incident itself
(``subject_key_id``, as a customer's data key): the database holds no incident text in clear.
Affected customers are referenced by id only; their personal data stays in the register.
"""
import uuid

from sqlalchemy import UniqueConstraint

from core.api import Encrypted, User, UTCDateTime, crypto, db, encrypted_column, utcnow
from modules.customers import Customer

SEVERITIES = {
    "general": {"zh_CN": "一般", "en": "General"},
    "larger": {"zh_CN": "较大", "en": "Larger"},
    "major": {"zh_CN": "重大", "en": "Major"},
    "especially_major": {"zh_CN": "特别重大", "en": "Especially major"},
}
# The workflow, in order: each status leads only to the next one.
STATUSES = {
    "reported": {"zh_CN": "已报告", "en": "Reported"},
    "triaged": {"zh_CN": "已研判", "en": "Triaged"},
    "contained": {"zh_CN": "已控制", "en": "Contained"},
    "investigated": {"zh_CN": "已调查", "en": "Investigated"},
    "notified": {"zh_CN": "已通知", "en": "Notified"},
    "closed": {"zh_CN": "已关闭", "en": "Closed"},
}
# The information classes of DESIGN.md.
DATA_CLASSES = {
    "public": {"zh_CN": "公开信息", "en": "Public"},
    "l1": {"zh_CN": "一般个人信息（L1）", "en": "Personal, L1"},
    "l2": {"zh_CN": "敏感个人信息（L2）", "en": "Sensitive, L2"},
    "l3": {"zh_CN": "高度敏感个人信息（L3）", "en": "Highly sensitive, L3"},
}
CHANNELS = {
    "letter": {"zh_CN": "信函", "en": "Letter"},
    "sms": {"zh_CN": "短信", "en": "SMS"},
    "phone": {"zh_CN": "电话", "en": "Phone"},
    "email": {"zh_CN": "电子邮件", "en": "E-mail"},
    "in_person": {"zh_CN": "当面告知", "en": "In person"},
}
NOTICE_STATUSES = {
    "pending": {"zh_CN": "待通知", "en": "Pending"},
    "sent": {"zh_CN": "已通知", "en": "Notified"},
    "failed": {"zh_CN": "未能送达", "en": "Not delivered"},
}


def _uid():
    return uuid.uuid4().hex


class Incident(db.Model):
    """One incident ticket (SJ-2026-000001)."""

    __tablename__ = "incidents_incident"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=_uid)
    number = db.Column(db.String(20), nullable=False, unique=True)
    status = db.Column(db.String(16), nullable=False, default="reported", index=True)
    reporter_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=True, index=True)
    noticed_at = db.Column(UTCDateTime, nullable=False)  # discovery: the regulator clock starts here
    reported_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    severity = db.Column(db.String(20), nullable=True)  # set at triage
    data_classes = db.Column(db.String(40), nullable=False, default="")  # comma-separated DATA_CLASSES
    estimated_count = db.Column(db.Integer, nullable=True)  # when the exact set is unknown
    regulator_reported_at = db.Column(UTCDateTime, nullable=True)
    closed_at = db.Column(UTCDateTime, nullable=True)
    subject_key_id = db.Column(db.Integer, db.ForeignKey("core_subject_key.id", ondelete="SET NULL"),
                               nullable=True)
    updated_at = db.Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    version = db.Column(db.Integer, nullable=False)

    title_ct = encrypted_column()
    description_ct = encrypted_column()
    how_found_ct = encrypted_column()
    systems_ct = encrypted_column()
    data_concerned_ct = encrypted_column()
    regulator_note_ct = encrypted_column()
    notice_what_ct = encrypted_column()
    notice_harm_ct = encrypted_column()
    notice_measures_ct = encrypted_column()
    notice_advice_ct = encrypted_column()
    notice_contact_ct = encrypted_column()
    root_cause_ct = encrypted_column()
    measures_ct = encrypted_column()
    improvements_ct = encrypted_column()
    responsible_ct = encrypted_column()

    title = Encrypted()
    description = Encrypted()
    how_found = Encrypted()
    systems = Encrypted()
    data_concerned = Encrypted()
    regulator_note = Encrypted()
    notice_what = Encrypted()
    notice_harm = Encrypted()
    notice_measures = Encrypted()
    notice_advice = Encrypted()
    notice_contact = Encrypted()
    root_cause = Encrypted()
    measures = Encrypted()
    improvements = Encrypted()
    responsible = Encrypted()

    subject_key = db.relationship(crypto.SubjectKey)
    reporter = db.relationship(User, foreign_keys=[reporter_id])
    department = db.relationship("Department")
    steps = db.relationship("Step", back_populates="incident", order_by="Step.id",
                            cascade="all, delete-orphan", passive_deletes=True)
    comments = db.relationship("Comment", back_populates="incident", order_by="Comment.id",
                               cascade="all, delete-orphan", passive_deletes=True)
    affected = db.relationship("Affected", back_populates="incident", order_by="Affected.id",
                               cascade="all, delete-orphan", passive_deletes=True)
    evidence = db.relationship("Evidence", back_populates="incident", order_by="Evidence.at",
                               cascade="all, delete-orphan", passive_deletes=True)

    __mapper_args__ = {"version_id_col": version}  # a stale form fails instead of overwriting

    def data_key(self):
        if self.subject_key is None:
            if self.id is not None and self.subject_key_id is None:
                raise crypto.DecryptionError(f"incident {self.id} has no data key")
            self.subject_key = crypto.new_subject_key()
        return self.subject_key

    @property
    def class_list(self):
        return [c for c in self.data_classes.split(",") if c]


class Step(db.Model):
    """One step of the workflow: who moved the ticket, when, from which status, and what was done."""

    __tablename__ = "incidents_step"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=_uid)
    incident_id = db.Column(db.Integer, db.ForeignKey("incidents_incident.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    from_status = db.Column(db.String(16), nullable=True)
    to_status = db.Column(db.String(16), nullable=False)
    actor_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    note_ct = encrypted_column()
    note = Encrypted()

    incident = db.relationship(Incident, back_populates="steps")
    actor = db.relationship(User)

    def data_key(self):
        return self.incident.data_key()


class Comment(db.Model):
    """A comment on a ticket (the reporter adds facts here; a submitted report is never edited)."""

    __tablename__ = "incidents_comment"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=_uid)
    incident_id = db.Column(db.Integer, db.ForeignKey("incidents_incident.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    author_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    body_ct = encrypted_column()
    body = Encrypted()

    incident = db.relationship(Incident, back_populates="comments")
    author = db.relationship(User)

    def data_key(self):
        return self.incident.data_key()


class Affected(db.Model):
    """A customer affected by an incident, with how and whether they were notified."""

    __tablename__ = "incidents_affected"
    __table_args__ = (UniqueConstraint("incident_id", "customer_id"), {"sqlite_autoincrement": True})

    id = db.Column(db.Integer, primary_key=True)
    incident_id = db.Column(db.Integer, db.ForeignKey("incidents_incident.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    matched_by = db.Column(db.String(16), nullable=False)  # number / phone / id_number
    channel = db.Column(db.String(16), nullable=False, default="letter")
    status = db.Column(db.String(16), nullable=False, default="pending")
    notified_at = db.Column(UTCDateTime, nullable=True)
    added_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    added_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    incident = db.relationship(Incident, back_populates="affected")
    customer = db.relationship(Customer)


class Evidence(db.Model):
    """An audit-trail entry linked to a ticket as evidence (its id and what it says, no values)."""

    __tablename__ = "incidents_evidence"
    __table_args__ = (UniqueConstraint("incident_id", "entry_id"), {"sqlite_autoincrement": True})

    id = db.Column(db.Integer, primary_key=True)
    incident_id = db.Column(db.Integer, db.ForeignKey("incidents_incident.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    entry_id = db.Column(db.Integer, nullable=False)  # core audit entry id (no FK: core's table)
    at = db.Column(UTCDateTime, nullable=False)
    actor = db.Column(db.String(64), nullable=False, default="")
    action = db.Column(db.String(100), nullable=False)
    target = db.Column(db.String(140), nullable=False, default="")
    linked_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    linked_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    incident = db.relationship(Incident, back_populates="evidence")


ALL = (Incident, Step, Comment, Affected, Evidence)
