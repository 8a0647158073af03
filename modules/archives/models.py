"""Tables of the customer archives (archives_*).

A document's metadata (type, title, date, amount, keeper, storage place of the paper original)
is plain; an attachment's content and original file name are AES-GCM ciphertext under the
customer's data key, so destroying that key makes them unreadable everywhere. The content lives
in the instance upload folder under a random name, never in the database.
"""
import uuid
from decimal import Decimal

from core.api import User, UTCDateTime, crypto, db, utcnow
from modules.customers import Customer

DOC_TYPES = {
    "basic_info": {"zh_CN": "基本信息表", "en": "Basic information form"},
    "contract": {"zh_CN": "合同", "en": "Contract"},
    "order": {"zh_CN": "订单", "en": "Order"},
    "invoice": {"zh_CN": "发票", "en": "Invoice"},
    "payment": {"zh_CN": "付款凭证", "en": "Payment voucher"},
    "complaint": {"zh_CN": "投诉记录", "en": "Complaint record"},
    "after_sales": {"zh_CN": "售后记录", "en": "After-sales record"},
    "other": {"zh_CN": "其他", "en": "Other"},
}
# Types whose documents carry an amount; for the others the amount field must stay empty.
AMOUNT_TYPES = ("contract", "order", "invoice", "payment")

REQUEST_KINDS = {
    "view": {"zh_CN": "查阅", "en": "View"},
    "borrow": {"zh_CN": "借阅（纸质原件）", "en": "Borrow (paper originals)"},
}
REQUEST_STATUSES = {
    "pending": {"zh_CN": "待审批", "en": "Pending"},
    "approved": {"zh_CN": "已批准", "en": "Approved"},
    "refused": {"zh_CN": "已拒绝", "en": "Refused"},
    "withdrawn": {"zh_CN": "已撤回", "en": "Withdrawn"},
}

ATTACHMENT_KINDS = {
    # kind: (MIME type, file name extensions accepted, label)
    "pdf": ("application/pdf", (".pdf",), "PDF"),
    "jpeg": ("image/jpeg", (".jpg", ".jpeg"), "JPEG"),
    "png": ("image/png", (".png",), "PNG"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", (".docx",), "Word (DOCX)"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (".xlsx",), "Excel (XLSX)"),
}


class Document(db.Model):
    """One numbered document of a customer's archive (DA-2026-000045)."""

    __tablename__ = "archives_document"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused

    id = db.Column(db.Integer, primary_key=True)
    number = db.Column(db.String(20), nullable=False, unique=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    doc_type = db.Column(db.String(16), nullable=False, index=True)
    title = db.Column(db.String(200), nullable=False)
    doc_date = db.Column(db.Date, nullable=False)
    amount_fen = db.Column(db.BigInteger, nullable=True)  # in fen (分): exact, no floats
    keeper_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    storage_location = db.Column(db.String(200), nullable=False, default="")
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = db.Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    version = db.Column(db.Integer, nullable=False)

    customer = db.relationship(Customer)
    keeper = db.relationship(User, foreign_keys=[keeper_id])
    creator = db.relationship(User, foreign_keys=[created_by])
    attachments = db.relationship("Attachment", back_populates="document", cascade="all, delete-orphan",
                                  passive_deletes=True, order_by="Attachment.id")

    __mapper_args__ = {"version_id_col": version}  # a stale edit form fails instead of overwriting

    @property
    def has_amount(self):
        return self.doc_type in AMOUNT_TYPES

    @property
    def amount(self):
        """The amount in yuan as a Decimal, or None."""
        if self.amount_fen is None:
            return None
        return (Decimal(self.amount_fen) / 100).quantize(Decimal("0.01"))

    @property
    def amount_text(self):
        return "" if self.amount is None else f"{self.amount:,.2f}"


class Attachment(db.Model):
    """An uploaded file of a document: encrypted on disk under a random name."""

    __tablename__ = "archives_attachment"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    document_id = db.Column(db.Integer, db.ForeignKey("archives_document.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    stored_name = db.Column(db.String(64), nullable=False, unique=True)
    filename_ct = db.Column(db.Text, nullable=False)  # the user's file name, sanitised, encrypted
    kind = db.Column(db.String(8), nullable=False)  # a key of ATTACHMENT_KINDS, from the content
    size = db.Column(db.Integer, nullable=False)
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    document = db.relationship(Document, back_populates="attachments")
    creator = db.relationship(User)

    def data_key(self):
        return self.document.customer.data_key()

    def aad(self, field):
        """Binds the file's content to this attachment, as Encrypted binds its fields."""
        return f"{self.__tablename__}|{field}|{self.uid}"

    filename = crypto.Encrypted()  # the user's file name, sanitised

    @property
    def mimetype(self):
        return ATTACHMENT_KINDS[self.kind][0]


class AccessRequest(db.Model):
    """A request by staff outside the customer's remit to view the archive or borrow its paper
    originals until a date. Approved access ends by itself after ``until`` (checked on every
    access) or, for a borrowing, when the originals are returned."""

    __tablename__ = "archives_request"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    requester_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    kind = db.Column(db.String(8), nullable=False)  # view / borrow
    purpose = db.Column(db.String(500), nullable=False)
    until = db.Column(db.Date, nullable=False)  # last day of access; return date of a borrowing
    status = db.Column(db.String(12), nullable=False, default="pending", index=True)
    requested_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    decided_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    decided_at = db.Column(UTCDateTime, nullable=True)
    decision_reason = db.Column(db.String(500), nullable=False, default="")
    returned_at = db.Column(UTCDateTime, nullable=True)
    returned_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    expired_at = db.Column(UTCDateTime, nullable=True)  # when the lapse was noticed and audited

    customer = db.relationship(Customer)
    requester = db.relationship(User, foreign_keys=[requester_id])
    decider = db.relationship(User, foreign_keys=[decided_by])
    returner = db.relationship(User, foreign_keys=[returned_by])


ALL = (Document, Attachment, AccessRequest)
