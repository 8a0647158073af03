"""Tables of the customer register. Personal fields are stored per their information class:
public ones in plain columns, L1-L3 as AES-GCM ciphertext under the customer's own data key
(``<field>_ct``), with a keyed blind index (``<field>_bidx``) where exact search is needed."""
import uuid

from sqlalchemy import UniqueConstraint

from core import crypto
from core.db import db
from core.models import UTCDateTime, utcnow

from .fields import CONTACT_FIELDS, FIELDS


class Sealed:
    """Attribute access to an encrypted field: reading decrypts, writing encrypts and indexes.

    The ciphertext is bound (AAD) to table, field and the row's uid, so a value copied to
    another row or column does not decrypt. ``None`` or "" clears the field."""

    def __init__(self, spec):
        self.spec = spec

    def __set_name__(self, owner, name):
        self.name = name
        self.ct = f"{name}_ct"
        self.bidx = f"{name}_bidx" if self.spec.search_domain else None

    def aad(self, obj):
        return f"{obj.__tablename__}|{self.name}|{obj.uid}"

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        token = getattr(obj, self.ct)
        if token is None:
            return None
        return crypto.decrypt(obj.data_key(), token, self.aad(obj))

    def __set__(self, obj, value):
        if obj.uid is None:
            obj.uid = uuid.uuid4().hex
        if value is None or value == "":
            setattr(obj, self.ct, None)
            if self.bidx:
                setattr(obj, self.bidx, None)
            return
        setattr(obj, self.ct, crypto.encrypt(obj.data_key(), value, self.aad(obj)))
        if self.bidx:
            setattr(obj, self.bidx, crypto.blind_index(self.spec.search_domain, value))


def _ct(length=1024):
    return db.Column(db.Text, nullable=True)


def _bidx():
    return db.Column(db.String(24), nullable=True, index=True)


class Customer(db.Model):
    __tablename__ = "customers_customer"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    number = db.Column(db.String(20), nullable=False, unique=True)
    kind = db.Column(db.String(8), nullable=False)  # person / org
    status = db.Column(db.String(16), nullable=False, default="prospect", index=True)
    status_changed_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    source = db.Column(db.String(16), nullable=True)
    owner_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=False, index=True)
    tags = db.Column(db.String(200), nullable=False, default="")
    subject_key_id = db.Column(db.Integer, db.ForeignKey("core_subject_key.id", ondelete="SET NULL"),
                               nullable=True)
    completeness = db.Column(db.Integer, nullable=False, default=0, index=True)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = db.Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    version = db.Column(db.Integer, nullable=False)

    # public organisation fields, plain
    company_name = db.Column(db.String(200), nullable=True, index=True)
    credit_code = db.Column(db.String(18), nullable=True, index=True)
    company_address = db.Column(db.String(300), nullable=True)
    postcode = db.Column(db.String(6), nullable=True)
    fax = db.Column(db.String(32), nullable=True)
    industry = db.Column(db.String(100), nullable=True)
    business_scope = db.Column(db.Text, nullable=True)
    credit_rating = db.Column(db.String(16), nullable=True)

    # encrypted fields
    name_ct, name_bidx = _ct(), _bidx()
    gender_ct = _ct()
    birth_date_ct = _ct()
    email_ct = _ct()
    id_number_ct, id_number_bidx = _ct(), _bidx()
    bank_account_ct = _ct()
    home_address_ct = _ct()
    emergency_contact_ct = _ct()
    legal_rep_ct = _ct()
    phone_ct, phone_bidx = _ct(), _bidx()
    phone2_ct, phone2_bidx = _ct(), _bidx()
    notes_ct = _ct()

    name = Sealed(FIELDS["name"])
    gender = Sealed(FIELDS["gender"])
    birth_date = Sealed(FIELDS["birth_date"])
    email = Sealed(FIELDS["email"])
    id_number = Sealed(FIELDS["id_number"])
    bank_account = Sealed(FIELDS["bank_account"])
    home_address = Sealed(FIELDS["home_address"])
    emergency_contact = Sealed(FIELDS["emergency_contact"])
    legal_rep = Sealed(FIELDS["legal_rep"])
    phone = Sealed(FIELDS["phone"])
    phone2 = Sealed(FIELDS["phone2"])
    notes = Sealed(FIELDS["notes"])

    subject_key = db.relationship(crypto.SubjectKey)
    owner = db.relationship("User", foreign_keys=[owner_id])
    department = db.relationship("Department")

    __mapper_args__ = {"version_id_col": version}  # a stale edit fails instead of overwriting

    def data_key(self):
        if self.subject_key is None:
            if self.id is not None and self.subject_key_id is None:
                raise crypto.DecryptionError(f"customer {self.id} has no data key (destroyed)")
            self.subject_key = crypto.new_subject_key()
        return self.subject_key

    @property
    def display_name(self):
        """Company name of an organisation, the (L1) name of an individual."""
        return self.company_name if self.kind == "org" else self.name

    def __str__(self):
        return f"{self.number} {self.display_name or ''}"


class Contact(db.Model):
    """A person at an organisation customer; encrypted under the organisation's data key."""

    __tablename__ = "customers_contact"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    title = db.Column(db.String(100), nullable=True)
    name_ct, name_bidx = _ct(), _bidx()
    phone_ct, phone_bidx = _ct(), _bidx()
    email_ct = _ct()
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    name = Sealed(CONTACT_FIELDS["name"])
    phone = Sealed(CONTACT_FIELDS["phone"])
    email = Sealed(CONTACT_FIELDS["email"])

    customer = db.relationship(Customer, backref=db.backref("contacts", cascade="all, delete-orphan",
                                                            passive_deletes=True, order_by="Contact.id"))

    def data_key(self):
        return self.customer.data_key()


class Share(db.Model):
    """A customer explicitly shared with a colleague (who then sees and edits it)."""

    __tablename__ = "customers_share"
    __table_args__ = (UniqueConstraint("customer_id", "user_id"),)

    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    user_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False, index=True)
    granted_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    granted_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    user = db.relationship("User", foreign_keys=[user_id])


class StatusChange(db.Model):
    __tablename__ = "customers_status_change"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    from_status = db.Column(db.String(16), nullable=True)
    to_status = db.Column(db.String(16), nullable=False)
    reason = db.Column(db.String(500), nullable=False, default="")
    changed_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    changed_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    customer = db.relationship(Customer, backref=db.backref(
        "status_changes", order_by="StatusChange.id", cascade="all, delete-orphan", passive_deletes=True))
    user = db.relationship("User")


class Consent(db.Model):
    """What the customer agreed to at collection (PIPL art. 14, 29). Append-only: a withdrawal
    stamps the record once; it is never edited otherwise or deleted while the customer exists."""

    __tablename__ = "customers_consent"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    purposes = db.Column(db.String(200), nullable=False)  # comma-separated keys of fields.PURPOSES
    scope = db.Column(db.String(500), nullable=False, default="")  # which data, in the customer's words
    sensitive = db.Column(db.Boolean, nullable=False, default=False)  # separate consent (单独同意)
    channel = db.Column(db.String(16), nullable=False)
    notice_version = db.Column(db.String(32), nullable=False, default="")
    recorded_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    recorded_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    withdrawn_at = db.Column(UTCDateTime, nullable=True)
    withdrawn_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    withdraw_reason = db.Column(db.String(500), nullable=True)

    customer = db.relationship(Customer, backref=db.backref(
        "consents", order_by="Consent.id", cascade="all, delete-orphan", passive_deletes=True))
    recorder = db.relationship("User", foreign_keys=[recorded_by])

    @property
    def purpose_list(self):
        return [p for p in self.purposes.split(",") if p]

    @property
    def active(self):
        return self.withdrawn_at is None


class Transaction(db.Model):
    """A transaction or service record of a customer. Amount and product stay plain so that
    grading can sum them; the free-text notes are encrypted (L1)."""

    __tablename__ = "customers_transaction"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    kind = db.Column(db.String(16), nullable=False, default="transaction")  # transaction / service
    occurred_on = db.Column(db.Date, nullable=False, index=True)
    amount = db.Column(db.Numeric(14, 2), nullable=True)
    product = db.Column(db.String(200), nullable=False, default="")
    channel = db.Column(db.String(32), nullable=False, default="")
    notes_ct = _ct()
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    notes = Sealed(FIELDS["notes"])

    customer = db.relationship(Customer, backref=db.backref(
        "transactions", order_by="Transaction.occurred_on.desc()", cascade="all, delete-orphan",
        passive_deletes=True, lazy="dynamic"))

    def data_key(self):
        return self.customer.data_key()


ALL = (Customer, Contact, Share, StatusChange, Consent, Transaction)
