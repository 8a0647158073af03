"""Tables of the disclosure module (disclosure_*)."""
import uuid

from core.api import UTCDateTime, db, utcnow

KINDS = {
    "third_party": {"zh_CN": "第三方（独立处理者）", "en": "Third party (own controller)"},
    "processor": {"zh_CN": "受托方（委托处理）", "en": "Processor (processing on our behalf)"},
}
# The information classes of DESIGN.md, as data categories shared with a recipient.
CATEGORIES = {
    "public": {"zh_CN": "公开信息", "en": "Public information"},
    "l1": {"zh_CN": "一般个人信息（L1）", "en": "General personal information (L1)"},
    "l2": {"zh_CN": "敏感个人信息（L2）", "en": "Sensitive personal information (L2)"},
    "l3": {"zh_CN": "高度敏感个人信息（L3）", "en": "Highly sensitive personal information (L3)"},
}
# PIPL art. 13: the lawful bases a disclosure may rest on.
LEGAL_BASES = {
    "consent": {"zh_CN": "个人同意（单独同意）", "en": "The customer's (separate) consent"},
    "contract": {"zh_CN": "订立、履行合同所必需", "en": "Necessary to conclude or perform a contract"},
    "legal_duty": {"zh_CN": "履行法定职责或法定义务所必需", "en": "Necessary for a legal duty or obligation"},
}
STATUSES = {
    "pending": {"zh_CN": "待审批", "en": "Pending"},
    "approved": {"zh_CN": "已批准", "en": "Approved"},
    "refused": {"zh_CN": "已拒绝", "en": "Refused"},
    "produced": {"zh_CN": "已生成文件", "en": "File produced"},
}


class Recipient(db.Model):
    """A third party or processor customers' data may be disclosed to, with its agreement."""

    __tablename__ = "disclosure_recipient"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    name = db.Column(db.String(200), nullable=False)
    kind = db.Column(db.String(16), nullable=False)
    contact = db.Column(db.String(200), nullable=False, default="")  # business contact of the recipient
    categories = db.Column(db.String(40), nullable=False, default="")  # comma-separated CATEGORIES
    purposes = db.Column(db.String(200), nullable=False, default="")  # comma-separated consent purposes
    agreement_file = db.Column(db.String(200), nullable=True)  # name of the encrypted file
    agreement_name = db.Column(db.String(200), nullable=True)
    agreement_sha256 = db.Column(db.String(64), nullable=True)
    agreement_expires = db.Column(db.Date, nullable=True)
    subject_key_id = db.Column(db.Integer, db.ForeignKey("core_subject_key.id", ondelete="SET NULL"),
                               nullable=True)
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    subject_key = db.relationship("SubjectKey")

    @property
    def category_list(self):
        return [c for c in self.categories.split(",") if c]

    @property
    def purpose_list(self):
        return [p for p in self.purposes.split(",") if p]


class Request(db.Model):
    """A request to export customers' data in clear text or to disclose it (DR-2026-000001)."""

    __tablename__ = "disclosure_request"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    number = db.Column(db.String(20), nullable=False, unique=True)
    status = db.Column(db.String(16), nullable=False, default="pending", index=True)
    requester_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=False, index=True)
    recipient_id = db.Column(db.Integer, db.ForeignKey("disclosure_recipient.id"), nullable=True)
    purpose = db.Column(db.String(32), nullable=False)
    legal_basis = db.Column(db.String(16), nullable=False)
    fields = db.Column(db.String(400), nullable=False)  # comma-separated field names
    customers = db.Column(db.Text, nullable=False, default="")  # customer numbers; empty: the remit
    retention_days = db.Column(db.Integer, nullable=False)  # how long the recipient may keep it
    reason = db.Column(db.String(500), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    decided_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    decided_at = db.Column(UTCDateTime, nullable=True)
    decision_reason = db.Column(db.String(500), nullable=True)
    produced_at = db.Column(UTCDateTime, nullable=True)
    file_sha256 = db.Column(db.String(64), nullable=True)
    rows = db.Column(db.Integer, nullable=True)
    skipped = db.Column(db.Integer, nullable=True)  # customers left out: no consent to the purpose

    recipient = db.relationship(Recipient)
    requester = db.relationship("User", foreign_keys=[requester_id])
    decider = db.relationship("User", foreign_keys=[decided_by])

    @property
    def field_list(self):
        return [f for f in self.fields.split(",") if f]

    @property
    def customer_numbers(self):
        return [n for n in self.customers.split(",") if n]


class InfoAdmin(db.Model):
    """信息管理员: a member of a department its head made information administrator."""

    __tablename__ = "disclosure_info_admin"

    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False, unique=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=False, index=True)
    granted_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    granted_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    user = db.relationship("User", foreign_keys=[user_id])


class Notice(db.Model):
    """A published version of the privacy notice (个人信息处理告知书) shown to customers before they
    consent; a consent record names the version the customer saw (customers_consent.notice_version).
    Published versions are never edited: a change is a new version."""

    __tablename__ = "disclosure_notice"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    version = db.Column(db.String(32), nullable=False, unique=True)
    title = db.Column(db.String(200), nullable=False)
    body = db.Column(db.Text, nullable=False)
    published_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    published_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    publisher = db.relationship("User")


ALL = (Recipient, Request, InfoAdmin, Notice)
