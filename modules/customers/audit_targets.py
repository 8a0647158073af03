"""Customers on the audit trail page: shown by customer number, found by (the end of) it."""
from sqlalchemy import select

from core.api import AuditTarget, db

from .models import Customer


def describe(ids):
    numbers = [int(i) for i in ids if str(i).isdigit()]
    rows = db.session.execute(select(Customer.id, Customer.number).where(Customer.id.in_(numbers)))
    return {str(customer_id): number for customer_id, number in rows}


def find(text):
    """A full customer number, or its last digits ("301" finds KH-2026-000301)."""
    text = (text or "").strip().upper()
    if not text:
        return []
    stmt = select(Customer.id).where(db.or_(Customer.number == text,
                                            Customer.number.endswith(text, autoescape=True)))
    return [str(i) for i in db.session.execute(stmt.limit(200)).scalars()]


def audit_targets():
    return [AuditTarget("customers_customer", {"zh_CN": "客户", "en": "Customer"}, describe, find)]
