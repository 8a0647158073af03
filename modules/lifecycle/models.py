"""Tables of the lifecycle module. None holds a personal value: customers are named by id and
number, policies by status and years."""
from core.api import UTCDateTime, db, utcnow


class Policy(db.Model):
    """The retention period of customers of one status, set by the security officer; without a
    row the default of services.DEFAULT_YEARS applies. ``years`` None: kept while in that status."""

    __tablename__ = "lifecycle_policy"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    status = db.Column(db.String(16), nullable=False, unique=True)
    years = db.Column(db.Integer, nullable=True)
    changed_by = db.Column(db.String(64), nullable=False, default="")
    changed_at = db.Column(UTCDateTime, nullable=False, default=utcnow)


class Hold(db.Model):
    """A legal hold (法律保全) on a customer: no destruction while it is not released."""

    __tablename__ = "lifecycle_hold"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    reason = db.Column(db.String(200), nullable=False)
    set_by = db.Column(db.String(64), nullable=False)
    set_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    released_by = db.Column(db.String(64), nullable=True)
    released_at = db.Column(UTCDateTime, nullable=True)


class Run(db.Model):
    """One destruction run (page or `kehu retention run`): what its certificate shows."""

    __tablename__ = "lifecycle_run"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    number = db.Column(db.String(20), nullable=False, unique=True)
    at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    actor = db.Column(db.String(64), nullable=False)
    destroyed = db.Column(db.Integer, nullable=False, default=0)
    held = db.Column(db.Integer, nullable=False, default=0)

    tombstones = db.relationship("Tombstone", order_by="Tombstone.id", back_populates="run")


class Tombstone(db.Model):
    """What stays of a destroyed customer: its number, status and department for statistics, when,
    under which policy and by whom. No personal value."""

    __tablename__ = "lifecycle_tombstone"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, nullable=False, unique=True)  # no FK: outlives the row
    customer_number = db.Column(db.String(20), nullable=False)
    kind = db.Column(db.String(8), nullable=False)
    status = db.Column(db.String(16), nullable=False)
    department_id = db.Column(db.Integer, nullable=True)
    policy = db.Column(db.String(64), nullable=False)
    destroyed_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    actor = db.Column(db.String(64), nullable=False)
    run_id = db.Column(db.Integer, db.ForeignKey("lifecycle_run.id"), nullable=True, index=True)

    run = db.relationship(Run, back_populates="tombstones")


class SubjectRequest(db.Model):
    """A data-subject request (PIPL arts. 44-47): see/copy, correct or delete the customer's data,
    due 15 working days after it was received. Holds no personal value (the note is for the
    handling staff: what was asked, never the data itself)."""

    __tablename__ = "lifecycle_request"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    number = db.Column(db.String(20), nullable=False, unique=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers_customer.id", ondelete="CASCADE"),
                            nullable=False, index=True)
    kind = db.Column(db.String(8), nullable=False)  # copy / correct / delete
    status = db.Column(db.String(12), nullable=False, default="open", index=True)  # open/done/refused
    received_on = db.Column(db.Date, nullable=False)
    due_on = db.Column(db.Date, nullable=False, index=True)
    channel = db.Column(db.String(32), nullable=False, default="")
    outcome = db.Column(db.String(200), nullable=False, default="")
    created_by = db.Column(db.String(64), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    closed_by = db.Column(db.String(64), nullable=True)
    closed_at = db.Column(UTCDateTime, nullable=True)


ALL = (Policy, Hold, Run, Tombstone, SubjectRequest)
