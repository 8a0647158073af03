"""Tables of the customer register. Personal fields are stored per their information class:
public ones in plain columns, L1-L3 as AES-GCM ciphertext under the customer's own data key
(``<field>_ct``), with a keyed blind index (``<field>_bidx``) where exact search is needed."""
import uuid

from sqlalchemy import DDL, Index, UniqueConstraint, event, func

from core.api import Encrypted, UTCDateTime, blind_index_column, crypto, db, encrypted_column, utcnow

from . import search
from .fields import CONTACT_FIELDS, FIELDS


class Searchable(Encrypted):
    """An encrypted field that also keeps its truncated partial-search indexes (search.PARTIAL)
    up to date whenever it is written: ``<key>_bidx`` columns, a few bits each."""

    def __set__(self, obj, value):
        super().__set__(obj, value)
        search.set_partial_indexes(obj, self.name, value)


def _reversed_number(context):
    return (context.get_current_parameters().get("number") or "")[::-1]


class Customer(db.Model):
    __tablename__ = "customers_customer"
    __table_args__ = (
        # the list's keyset pages (a remit, newest first) walk these in order and stop after a
        # page; with the owner or department alone PostgreSQL fetched and sorted the whole remit.
        # A salesperson's remit is their own customers of their department: both in the index,
        # so its page and its capped count read the index alone (customers_0007)
        Index("ix_customers_customer_department_id_id", "department_id", "id"),
        Index("ix_customers_customer_owner_id_department_id_id", "owner_id", "department_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    number = db.Column(db.String(20), nullable=False, unique=True)
    # the number reversed: a search by its tail ("301") is an indexed prefix range (search.py)
    number_rev = db.Column(db.String(20), nullable=True, index=True, default=_reversed_number)
    kind = db.Column(db.String(8), nullable=False)  # person / org
    status = db.Column(db.String(16), nullable=False, default="prospect", index=True)
    status_changed_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    source = db.Column(db.String(16), nullable=True)
    owner_id = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)  # indexed with id
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=False)  # the same
    tags = db.Column(db.String(200), nullable=False, default="")
    subject_key_id = db.Column(db.Integer, db.ForeignKey("core_subject_key.id", ondelete="SET NULL"),
                               nullable=True)
    completeness = db.Column(db.Integer, nullable=False, default=0, index=True)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = db.Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow, index=True)
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
    name_ct, name_bidx = encrypted_column(), blind_index_column()
    gender_ct = encrypted_column()
    birth_date_ct = encrypted_column()
    email_ct = encrypted_column()
    id_number_ct, id_number_bidx = encrypted_column(), blind_index_column()
    bank_account_ct = encrypted_column()
    home_address_ct = encrypted_column()
    emergency_contact_ct = encrypted_column()
    legal_rep_ct = encrypted_column()
    phone_ct, phone_bidx = encrypted_column(), blind_index_column()
    phone2_ct, phone2_bidx = encrypted_column(), blind_index_column()
    notes_ct = encrypted_column()
    # truncated blind indexes of transformed values, for partial search (search.py); each value
    # stands for a bucket of many customers
    name_head_bidx, name_head2_bidx, name_tail2_bidx = (blind_index_column(), blind_index_column(),
                                                        blind_index_column())
    phone_tail_bidx, phone2_tail_bidx = blind_index_column(), blind_index_column()
    id_number_tail_bidx = blind_index_column()

    name = Searchable(FIELDS["name"].search_domain)
    gender = Encrypted(FIELDS["gender"].search_domain)
    birth_date = Encrypted(FIELDS["birth_date"].search_domain)
    email = Encrypted(FIELDS["email"].search_domain)
    id_number = Searchable(FIELDS["id_number"].search_domain)
    bank_account = Encrypted(FIELDS["bank_account"].search_domain)
    home_address = Encrypted(FIELDS["home_address"].search_domain)
    emergency_contact = Encrypted(FIELDS["emergency_contact"].search_domain)
    legal_rep = Encrypted(FIELDS["legal_rep"].search_domain)
    phone = Searchable(FIELDS["phone"].search_domain)
    phone2 = Searchable(FIELDS["phone2"].search_domain)
    notes = Encrypted(FIELDS["notes"].search_domain)

    # joined: nearly every page that loads a customer decrypts a field of it, and the key was a
    # statement of its own after the customer's
    subject_key = db.relationship(crypto.SubjectKey, lazy="joined")
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


# Substring search on company names, PostgreSQL: a trigram index on lower(company_name)
# (search.company_name_clause). Not on the column itself: pg_trgm also answers "=", and the
# planner then chose it over the plain index for the duplicate checks of imports and new
# customers (2.9 ms instead of 0.05 ms a name at 15k customers, growing with the register).
# SQLite has its FTS5 trigram index below instead.
Index("ix_customers_customer_company_name_lower_trgm",
      func.lower(Customer.__table__.c.company_name).label("company_name_lower"),
      postgresql_using="gin", postgresql_ops={"company_name_lower": "gin_trgm_ops"}).ddl_if(dialect="postgresql")
# the trigram operator class must exist before the table (create_all in tests; the migration
# creates it too)
event.listen(Customer.__table__, "before_create",
             DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))
# SQLite's trigram index on company names (search.FTS_DDL), made with the table by create_all
for _statement in search.FTS_DDL:
    event.listen(Customer.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
event.listen(Customer.__table__, "before_drop",
             DDL(f"DROP TABLE IF EXISTS {search.FTS_TABLE}").execute_if(dialect="sqlite"))


class Contact(db.Model):
    """A person at an organisation customer; encrypted under the organisation's data key."""

    __tablename__ = "customers_contact"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    uid = db.Column(db.String(32), nullable=False, unique=True, default=lambda: uuid.uuid4().hex)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    title = db.Column(db.String(100), nullable=True)
    name_ct, name_bidx = encrypted_column(), blind_index_column()
    phone_ct, phone_bidx = encrypted_column(), blind_index_column()
    email_ct = encrypted_column()
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    name = Encrypted(CONTACT_FIELDS["name"].search_domain)
    phone = Encrypted(CONTACT_FIELDS["phone"].search_domain)
    email = Encrypted(CONTACT_FIELDS["email"].search_domain)

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
    notes_ct = encrypted_column()
    created_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    # a correction keeps the record (last one: who, when, why; every one is in the audit trail);
    # a voided record stays visible, struck through, and counts in no total
    corrected_at = db.Column(UTCDateTime, nullable=True)
    corrected_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    correction_reason = db.Column(db.String(500), nullable=True)
    voided_at = db.Column(UTCDateTime, nullable=True)
    voided_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    void_reason = db.Column(db.String(500), nullable=True)

    notes = Encrypted(FIELDS["notes"].search_domain)

    customer = db.relationship(Customer, backref=db.backref(
        "transactions", order_by="Transaction.occurred_on.desc()", cascade="all, delete-orphan",
        passive_deletes=True, lazy="dynamic"))

    def data_key(self):
        return self.customer.data_key()

    @property
    def voided(self):
        return self.voided_at is not None


ALL = (Customer, Contact, Share, StatusChange, Consent, Transaction)
