"""Readable numbers that are unique and never reused: KH-2026-000123, DA-2026-000045."""
from sqlalchemy import UniqueConstraint, select
from sqlalchemy.exc import IntegrityError

from core.db import db
from core.models import utcnow


class Sequence(db.Model):
    __tablename__ = "core_sequence"
    __table_args__ = (UniqueConstraint("prefix", "year"),)

    id = db.Column(db.Integer, primary_key=True)
    prefix = db.Column(db.String(16), nullable=False)
    year = db.Column(db.Integer, nullable=False)
    last = db.Column(db.Integer, nullable=False, default=0)


def next_number(prefix, width=6):
    """The next number for ``prefix`` this year, in the caller's transaction.

    The counter row is locked (FOR UPDATE on PostgreSQL; SQLite transactions already hold the
    write lock), so concurrent creators never get the same number, and a deleted record's
    number is never handed out again because the counter only grows."""
    year = utcnow().year
    stmt = select(Sequence).where(Sequence.prefix == prefix, Sequence.year == year).with_for_update()
    row = db.session.execute(stmt).scalar_one_or_none()
    if row is None:
        try:  # two first-of-the-year creators: one insert wins, the other reads it
            with db.session.begin_nested():
                db.session.add(Sequence(prefix=prefix, year=year, last=0))
        except IntegrityError:
            pass
        row = db.session.execute(stmt).scalar_one()
    row.last += 1
    db.session.flush()
    return f"{prefix}-{year}-{row.last:0{width}d}"


def next_numbers(prefix, count, width=6):
    """``count`` consecutive numbers for ``prefix`` at once (an import's batch): one counter
    update instead of one per record, with the same guarantees as ``next_number``."""
    if count <= 0:
        return []
    first = next_number(prefix, width)  # locks (or creates) the counter row and takes one
    _prefix, year, start = first.rsplit("-", 2)
    year, start = int(year), int(start)
    stmt = select(Sequence).where(Sequence.prefix == prefix, Sequence.year == year)
    row = db.session.execute(stmt).scalar_one()
    row.last = start + count - 1
    db.session.flush()
    return [f"{prefix}-{year}-{n:0{width}d}" for n in range(start, start + count)]
