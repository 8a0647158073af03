"""Data quality: duplicate checks through the blind indexes, and completeness of a record.

A duplicate check answers "does a customer with this phone / ID number exist?" company-wide,
so outside the actor's remit it is an oracle: there it says only that a matching customer may
exist (never who holds it, in which department, or which field matched), every such match is
audited, and after CUSTOMERS_DUPLICATE_PROBE_LIMIT matches in CUSTOMERS_DUPLICATE_PROBE_WINDOW
minutes the actor's checks are refused until the window has passed."""
from __future__ import annotations

import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from core.api import audit, crypto, db, module_setting, pick, scoped, utcnow, validation

from .fields import FIELDS, REQUIRED_FOR_COMPLETENESS
from .models import Customer

# Strongest reason first: a customer matching on several grounds is reported once, with the first.
REASONS = {
    "id_number": _l("Same ID number"),
    "credit_code": _l("Same unified social credit code"),
    "name_phone": _l("Same name and phone"),
    "phone": _l("Same phone"),
    "company_name": _l("Same company name"),
}
MAX_MATCHES = 20
ELSEWHERE_ACTION = "customers.customer.duplicate_elsewhere"
PROBE_LIMIT = 10  # matches outside the remit per window (CUSTOMERS_DUPLICATE_PROBE_LIMIT)
PROBE_WINDOW_MINUTES = 60  # CUSTOMERS_DUPLICATE_PROBE_WINDOW
ELSEWHERE_MESSAGE = _l("A matching customer may exist outside your remit. Your department head can "
                       "check it before a new record is created.")
PROBE_LIMIT_MESSAGE = _l("Too many of your duplicate checks matched customers outside your remit "
                         "recently; new records can be checked again later. Your department head can help.")


def _normalised(func, value):
    if value is None or not str(value).strip():
        return None
    try:
        return func(str(value))
    except validation.ValidationError:
        return None


def find_duplicates(actor, *, phone=None, id_number=None, credit_code=None, name=None, exclude_id=None):
    """Existing customers, company-wide, that look like the one described: same phone, ID
    number or credit code, or same name plus phone (and, for organisations, the same company
    name). Returns [(Customer, reason)] with reason a key of REASONS, strongest first.

    Encrypted values are matched through their blind indexes and re-checked after decryption.
    The caller shows only customers in the actor's remit (`split_by_remit`); the others are
    reported without their data.
    """
    phone = _normalised(validation.phone, phone)
    id_number = _normalised(validation.id_number, id_number)
    credit_code = _normalised(validation.credit_code, credit_code)
    name = _normalised(validation.clean_text, name)
    clauses = []
    if id_number:
        clauses.append(Customer.id_number_bidx.in_(crypto.blind_index_candidates(FIELDS["id_number"].search_domain,
                                                                          id_number)))
    if credit_code:
        clauses.append(Customer.credit_code == credit_code)
    if phone:
        digests = crypto.blind_index_candidates(FIELDS["phone"].search_domain, phone)
        clauses += [Customer.phone_bidx.in_(digests), Customer.phone2_bidx.in_(digests)]
    if name:
        clauses.append(Customer.company_name == name)
    if not clauses:
        return []
    stmt = select(Customer).where(or_(*clauses)).order_by(Customer.id).limit(MAX_MATCHES * 2)
    if exclude_id is not None:
        stmt = stmt.where(Customer.id != exclude_id)
    found = []
    for customer in db.session.scalars(stmt):
        reason = _reason(customer, phone, id_number, credit_code, name)
        if reason:
            found.append((customer, reason))
    order = list(REASONS)
    found.sort(key=lambda pair: (order.index(pair[1]), -pair[0].id))
    return found[:MAX_MATCHES]


def _reason(customer, phone, id_number, credit_code, name):
    """Re-check a candidate on the decrypted values (a truncated index can collide)."""
    if id_number and customer.kind == "person" and customer.id_number == id_number:
        return "id_number"
    if credit_code and customer.credit_code == credit_code:
        return "credit_code"
    if phone and phone in (customer.phone, customer.phone2 if customer.kind == "person" else None):
        return "name_phone" if name and name == customer.display_name else "phone"
    if name and customer.kind == "org" and customer.company_name == name:
        return "company_name"
    return None


def split_by_remit(actor, matches):
    """([(customer, reason)] the actor may open, [(customer, reason)] held by others)."""
    ids = [c.id for c, _reason in matches]
    visible = set(db.session.scalars(scoped(select(Customer.id), actor, Customer)
                                     .where(Customer.id.in_(ids)))) if ids else set()
    return ([m for m in matches if m[0].id in visible], [m for m in matches if m[0].id not in visible])


def probes_left(actor):
    """How many more matches outside the remit the actor's duplicate checks may meet in the
    current window (0: refuse the check)."""
    limit = int(module_setting("customers", "duplicate_probe_limit", PROBE_LIMIT))
    minutes = int(module_setting("customers", "duplicate_probe_window", PROBE_WINDOW_MINUTES))
    since = utcnow() - datetime.timedelta(minutes=minutes)
    return max(limit - audit.count(ELSEWHERE_ACTION, actor=actor, since=since), 0)


def record_elsewhere(actor, others, *, via):
    """Audit each match outside the remit (the customer is named in the trail, for the security
    officer, never on the page); ``via`` says which check found it ("form", "import")."""
    for customer_id, reason in others:
        audit.record(ELSEWHERE_ACTION, target_type="customers_customer", target_id=customer_id,
                     actor=actor, reason=reason, via=via)


def missing_fields(customer):
    """Names of the fields a complete record of this kind holds but this one lacks."""
    return [name for name in REQUIRED_FOR_COMPLETENESS[customer.kind]
            if getattr(customer, name) in (None, "")]


def score_of(kind, values):
    """Completeness 0-100 of a kind of record from a dict of its (clean) values."""
    required = REQUIRED_FOR_COMPLETENESS[kind]
    filled = sum(1 for name in required if values.get(name) not in (None, ""))
    return round(100 * filled / len(required))


def completeness(customer):
    """(score 0-100, labels of the missing fields) per fields.REQUIRED_FOR_COMPLETENESS."""
    missing = missing_fields(customer)
    required = REQUIRED_FOR_COMPLETENESS[customer.kind]
    score = round(100 * (len(required) - len(missing)) / len(required))
    return score, [pick(FIELDS[name].label) for name in missing]
