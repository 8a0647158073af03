"""The one table of the visits module. A visit refers to its customer by foreign key; the free-text
notes are AES-GCM ciphertext under the customer's data key (destroying the customer's key makes
them unreadable everywhere), the rest is plain."""
import uuid

from core.api import Encrypted, User, UTCDateTime, db, encrypted_column, utcnow
from modules.customers import Customer

# The ways of contact, in the order the form offers them.
CHANNELS = {
    "onsite": {"zh_CN": "上门拜访", "en": "On-site visit"},
    "phone": {"zh_CN": "电话", "en": "Phone call"},
    "wechat": {"zh_CN": "微信", "en": "WeChat"},
    "video": {"zh_CN": "视频会议", "en": "Video meeting"},
    "inbound": {"zh_CN": "来访", "en": "Customer came to us"},
    "other": {"zh_CN": "其他", "en": "Other"},
}

PURPOSE_MAX = 100
NEXT_STEP_MAX = 200
NOTES_MAX = 5000


class Visit(db.Model):
    """A visit or call to a customer. ``author`` logged it; ``owner`` follows up the next contact
    (the author at first, the colleague after a handover)."""

    __tablename__ = "visits_visit"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    visited_on = db.Column(db.Date, nullable=False, index=True)  # the company's calendar date
    channel = db.Column(db.String(16), nullable=False)
    purpose = db.Column(db.String(PURPOSE_MAX), nullable=False)
    notes_ct = encrypted_column()
    next_step = db.Column(db.String(NEXT_STEP_MAX), nullable=True)
    next_contact_on = db.Column(db.Date, nullable=True, index=True)
    author_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    owner_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = db.Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    version = db.Column(db.Integer, nullable=False)

    notes = Encrypted()  # L1, like the customer's name

    customer = db.relationship(Customer)
    author = db.relationship(User, foreign_keys=[author_id])
    owner = db.relationship(User, foreign_keys=[owner_id])

    __mapper_args__ = {"version_id_col": version}  # a stale edit form fails instead of overwriting

    def data_key(self):
        return self.customer.data_key()

    @property
    def channel_label(self):
        return CHANNELS.get(self.channel, {"zh_CN": self.channel, "en": self.channel})


ALL = (Visit,)
