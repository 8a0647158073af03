"""Tables of the complaints module (complaints_*).

What the customer says (description, what they ask for), what the handler writes about it
(cause, measures, result, compensation, step comments, the return-visit comment) and attachment
names are personal data: AES-GCM ciphertext under the customer's data key (``data_key()``), so
destroying the customer destroys them too. Workflow state, deadlines and numbers are plain.
Times are UTC.
"""
import uuid

from core.api import Department, Encrypted, User, UTCDateTime, db, encrypted_column, utcnow
from modules.customers import Customer

CHANNELS = {
    "phone": {"zh_CN": "电话", "en": "Phone"},
    "wechat": {"zh_CN": "微信", "en": "WeChat"},
    "web": {"zh_CN": "网页", "en": "Web"},
    "visit": {"zh_CN": "来访", "en": "In person"},
    "letter": {"zh_CN": "信函", "en": "Letter"},
    "email": {"zh_CN": "邮件", "en": "E-mail"},
}
SEVERITIES = {
    "normal": {"zh_CN": "一般", "en": "Normal"},
    "serious": {"zh_CN": "严重", "en": "Serious"},
    "urgent": {"zh_CN": "紧急", "en": "Urgent"},
}
STATUSES = {
    "new": {"zh_CN": "新建", "en": "New"},
    "accepted": {"zh_CN": "已受理", "en": "Accepted"},
    "in_progress": {"zh_CN": "处理中", "en": "In progress"},
    "follow_up": {"zh_CN": "待回访", "en": "Awaiting return visit"},
    "closed": {"zh_CN": "已关闭", "en": "Closed"},
}
OPEN_STATUSES = ("new", "accepted", "in_progress", "follow_up")
# The default categories of a department that has not configured its own (plain text: the head
# edits them in Chinese).
DEFAULT_CATEGORIES = ("产品质量", "服务态度", "交付延误", "收费争议", "信息安全", "其他")
# What a workflow step did (complaints_step.action).
STEP_ACTIONS = {
    "created": {"zh_CN": "登记投诉", "en": "Complaint registered"},
    "accepted": {"zh_CN": "受理", "en": "Accepted"},
    "assigned": {"zh_CN": "指派处理人", "en": "Handler assigned"},
    "started": {"zh_CN": "开始处理", "en": "Handling started"},
    "resolved": {"zh_CN": "提交处理结果", "en": "Resolution recorded"},
    "returned": {"zh_CN": "退回", "en": "Sent back"},
    "visited": {"zh_CN": "回访", "en": "Return visit"},
    "closed": {"zh_CN": "关闭", "en": "Closed"},
    "reopened": {"zh_CN": "重新打开", "en": "Reopened"},
    "attachment": {"zh_CN": "上传附件", "en": "Attachment added"},
}


class Policy(db.Model):
    """A department's complaint policy, set by its head: categories and deadlines (hours) by
    severity, how much shorter they are for 重要 customers, whether only working days count."""

    __tablename__ = "complaints_policy"

    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id", ondelete="CASCADE"),
                              primary_key=True)
    categories = db.Column(db.Text, nullable=False)  # one per line
    normal_response = db.Column(db.Integer, nullable=False)
    normal_resolution = db.Column(db.Integer, nullable=False)
    serious_response = db.Column(db.Integer, nullable=False)
    serious_resolution = db.Column(db.Integer, nullable=False)
    urgent_response = db.Column(db.Integer, nullable=False)
    urgent_resolution = db.Column(db.Integer, nullable=False)
    important_percent = db.Column(db.Integer, nullable=False)  # deadlines of 重要 customers, in %
    working_days = db.Column(db.Boolean, nullable=False, default=False)
    updated_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    updated_at = db.Column(UTCDateTime, nullable=False, default=utcnow)


class Complaint(db.Model):
    """One complaint (TS-2026-000001) of a customer, kept by the customer's department."""

    __tablename__ = "complaints_complaint"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    number = db.Column(db.String(20), nullable=False, unique=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=False, index=True)
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    handler_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True, index=True)
    channel = db.Column(db.String(16), nullable=False)
    category = db.Column(db.String(50), nullable=False)
    severity = db.Column(db.String(16), nullable=False)
    status = db.Column(db.String(16), nullable=False, default="new", index=True)
    important = db.Column(db.Boolean, nullable=False, default=False)  # 重要 customer at intake
    duplicate_of_id = db.Column(db.Integer, db.ForeignKey("complaints_complaint.id", ondelete="SET NULL"),
                                nullable=True)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow, index=True)
    response_due = db.Column(UTCDateTime, nullable=False)
    resolution_due = db.Column(UTCDateTime, nullable=False)
    responded_at = db.Column(UTCDateTime, nullable=True)  # first response: accepted
    resolved_at = db.Column(UTCDateTime, nullable=True)  # resolution recorded (to 待回访)
    closed_at = db.Column(UTCDateTime, nullable=True)
    description_ct = encrypted_column()
    customer_request_ct = encrypted_column()
    cause_ct = encrypted_column()
    measures_ct = encrypted_column()
    result_ct = encrypted_column()
    compensation_ct = encrypted_column()
    satisfaction = db.Column(db.Integer, nullable=True)  # 1-5, from the return visit
    visit_comment_ct = encrypted_column()
    visited_at = db.Column(UTCDateTime, nullable=True)
    archive_number = db.Column(db.String(20), nullable=True)  # the 投诉 document filed on closing
    version = db.Column(db.Integer, nullable=False)

    customer = db.relationship(Customer)
    department = db.relationship(Department)
    creator = db.relationship(User, foreign_keys=[created_by])
    handler = db.relationship(User, foreign_keys=[handler_id])
    duplicate_of = db.relationship("Complaint", remote_side=[id])
    steps = db.relationship("ComplaintStep", back_populates="complaint", cascade="all, delete-orphan",
                            passive_deletes=True, order_by="ComplaintStep.id")
    attachments = db.relationship("ComplaintAttachment", back_populates="complaint", cascade="all, delete-orphan",
                                  passive_deletes=True, order_by="ComplaintAttachment.id")

    __mapper_args__ = {"version_id_col": version}  # a stale form fails instead of overwriting

    description = Encrypted()
    customer_request = Encrypted()
    cause = Encrypted()
    measures = Encrypted()
    result = Encrypted()
    compensation = Encrypted()
    visit_comment = Encrypted()

    def data_key(self):
        return self.customer.data_key()

    @property
    def is_open(self):
        return self.status in OPEN_STATUSES


class ComplaintStep(db.Model):
    """One workflow step: who did what, when, from which status to which, with a comment."""

    __tablename__ = "complaints_step"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    complaint_id = db.Column(db.Integer, db.ForeignKey("complaints_complaint.id", ondelete="CASCADE"),
                             nullable=False, index=True)
    at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    actor_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    action = db.Column(db.String(16), nullable=False)
    from_status = db.Column(db.String(16), nullable=True)
    to_status = db.Column(db.String(16), nullable=True)
    comment_ct = encrypted_column()

    complaint = db.relationship(Complaint, back_populates="steps")
    actor = db.relationship(User)

    comment = Encrypted()

    def data_key(self):
        return self.complaint.customer.data_key()


class ComplaintAttachment(db.Model):
    """A file of a complaint: content-checked, encrypted on disk under a random name."""

    __tablename__ = "complaints_attachment"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    complaint_id = db.Column(db.Integer, db.ForeignKey("complaints_complaint.id", ondelete="CASCADE"),
                             nullable=False, index=True)
    stored_name = db.Column(db.String(64), nullable=False, unique=True)
    filename_ct = encrypted_column()
    kind = db.Column(db.String(8), nullable=False)
    size = db.Column(db.Integer, nullable=False)
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    complaint = db.relationship(Complaint, back_populates="attachments")

    filename = Encrypted()

    def data_key(self):
        return self.complaint.customer.data_key()

    def aad(self, field):
        return f"{self.__tablename__}|{field}|{self.uid}"


ALL = (Policy, Complaint, ComplaintStep, ComplaintAttachment)
