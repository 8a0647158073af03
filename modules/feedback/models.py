"""Tables of the feedback module (feedback_*).

A template (客户信息反馈表) belongs to a department and a customer type; its questions are edited
as a draft and published as numbered versions that never change afterwards, so a filled form
always reads with the questions it was filled against. Answers, follow-up problems, actions and
results are personal data: AES-GCM ciphertext under the customer's data key. One-time links keep
only the SHA-256 of their token. Times are UTC.
"""
import uuid

from core.api import Department, Encrypted, User, UTCDateTime, db, encrypted_column, utcnow
from modules.customers import Customer

FIELD_KINDS = {
    "short": {"zh_CN": "单行文本", "en": "Short text"},
    "long": {"zh_CN": "多行文本", "en": "Long text"},
    "single": {"zh_CN": "单选", "en": "Single choice"},
    "multi": {"zh_CN": "多选", "en": "Multiple choice"},
    "rating": {"zh_CN": "评分（1-5）", "en": "Rating (1-5)"},
    "date": {"zh_CN": "日期", "en": "Date"},
    "yesno": {"zh_CN": "是/否", "en": "Yes/no"},
    "number": {"zh_CN": "数字", "en": "Number"},
}
CHOICE_KINDS = ("single", "multi")
ANY = {"zh_CN": "不限", "en": "Any"}
GRADES = {"important": {"zh_CN": "重要", "en": "Important"}, "ordinary": {"zh_CN": "一般", "en": "Ordinary"}}


class Template(db.Model):
    """A feedback template of a department for one customer type; ``draft`` holds the questions
    being edited (JSON), published versions are rows of :class:`TemplateVersion`."""

    __tablename__ = "feedback_template"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=False, index=True)
    name = db.Column(db.String(100), nullable=False)
    customer_kind = db.Column(db.String(8), nullable=False, default="")  # "" any, person, org
    customer_status = db.Column(db.String(16), nullable=False, default="")  # "" any, prospect, active, lost
    grade = db.Column(db.String(16), nullable=False, default="")  # "" any, important, ordinary
    draft = db.Column(db.Text, nullable=False, default="[]")
    active = db.Column(db.Boolean, nullable=False, default=True)
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = db.Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)

    department = db.relationship(Department)
    versions = db.relationship("TemplateVersion", back_populates="template", order_by="TemplateVersion.number",
                               cascade="all, delete-orphan", passive_deletes=True)

    @property
    def latest(self):
        return self.versions[-1] if self.versions else None


class TemplateVersion(db.Model):
    """One published version of a template: its title and questions, frozen."""

    __tablename__ = "feedback_template_version"
    __table_args__ = (db.UniqueConstraint("template_id", "number"), {"sqlite_autoincrement": True})

    id = db.Column(db.Integer, primary_key=True)
    template_id = db.Column(db.Integer, db.ForeignKey("feedback_template.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    number = db.Column(db.Integer, nullable=False)
    title = db.Column(db.String(100), nullable=False)
    questions = db.Column(db.Text, nullable=False)  # JSON list of question dicts
    published_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    published_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    template = db.relationship(Template, back_populates="versions")

    @property
    def question_list(self):
        import json
        return json.loads(self.questions)


class Response(db.Model):
    """A filled feedback form of a customer against one template version."""

    __tablename__ = "feedback_response"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=False, index=True)
    version_id = db.Column(db.Integer, db.ForeignKey("feedback_template_version.id"), nullable=False, index=True)
    owner_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    filled_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)  # None: the customer
    by_customer = db.Column(db.Boolean, nullable=False, default=False)
    seen_at = db.Column(UTCDateTime, nullable=True)  # the owner opened a form the customer filled
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow, index=True)
    answers_ct = encrypted_column()

    customer = db.relationship(Customer)
    version = db.relationship(TemplateVersion)
    owner = db.relationship(User, foreign_keys=[owner_id])
    filler = db.relationship(User, foreign_keys=[filled_by])
    plans = db.relationship("Plan", back_populates="response", order_by="Plan.id")

    answers = Encrypted()

    def data_key(self):
        return self.customer.data_key()


class Link(db.Model):
    """A one-time link for a customer to fill one template version; only the token's hash."""

    __tablename__ = "feedback_link"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    token_hash = db.Column(db.String(64), nullable=False, unique=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=False)
    version_id = db.Column(db.Integer, db.ForeignKey("feedback_template_version.id"), nullable=False)
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    expires_at = db.Column(UTCDateTime, nullable=False)
    used_at = db.Column(UTCDateTime, nullable=True)
    response_id = db.Column(db.Integer, db.ForeignKey("feedback_response.id", ondelete="SET NULL"), nullable=True)

    customer = db.relationship(Customer)
    version = db.relationship(TemplateVersion)
    creator = db.relationship(User)


class Hit(db.Model):
    """One request to a public link page, for rate limiting (per token hash and per address)."""

    __tablename__ = "feedback_hit"

    id = db.Column(db.Integer, primary_key=True)
    key = db.Column(db.String(80), nullable=False, index=True)
    at = db.Column(UTCDateTime, nullable=False, default=utcnow, index=True)


class Plan(db.Model):
    """A follow-up plan (客户跟踪计划) recorded from a filled form: the problems found."""

    __tablename__ = "feedback_plan"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    response_id = db.Column(db.Integer, db.ForeignKey("feedback_response.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    problems_ct = encrypted_column()

    response = db.relationship(Response, back_populates="plans")
    actions = db.relationship("Action", back_populates="plan", order_by="Action.due_on",
                              cascade="all, delete-orphan", passive_deletes=True)

    problems = Encrypted()

    def data_key(self):
        return self.response.customer.data_key()


class Action(db.Model):
    """One action of a follow-up plan: who does it by when, and the result once completed."""

    __tablename__ = "feedback_action"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    plan_id = db.Column(db.Integer, db.ForeignKey("feedback_plan.id", ondelete="CASCADE"), nullable=False, index=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=False, index=True)
    owner_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    due_on = db.Column(db.Date, nullable=False, index=True)
    done_at = db.Column(UTCDateTime, nullable=True)
    done_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    description_ct = encrypted_column()
    result_ct = encrypted_column()

    plan = db.relationship(Plan, back_populates="actions")
    owner = db.relationship(User, foreign_keys=[owner_id])

    description = Encrypted()
    result = Encrypted()

    def data_key(self):
        return self.plan.response.customer.data_key()


ALL = (Template, TemplateVersion, Response, Link, Hit, Plan, Action)
