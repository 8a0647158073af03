"""Consent as the register enforces it: before collection and before use.

`collection_errors` is the one rule every path that stores a customer's fields goes through
(the form, the edit form, the import, other modules calling the services): a field of
fields.COLLECTION_PURPOSES may only be stored while an active consent covers one of its purposes,
an ID number or bank account only with the separate consent to sensitive data as well.

`allows(customer, purpose)` is what a module asks before it processes a customer for a purpose
it declared with ``reg.purposes(...)``; `allowed_clause(purpose)` is the same as a SQL condition
on customers, for processing in bulk (grading, exports)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from .fields import COLLECTION_PURPOSES, FIELDS, L2, PURPOSES
from .models import Consent, Customer

SENSITIVE_MESSAGE = _l("An ID number or bank account may only be recorded with the customer's separate "
                       "consent to processing sensitive personal information (PIPL art. 29).")


def _declared(purpose):
    from core.api import declared_purposes
    if purpose not in PURPOSES:
        raise ValueError(f"unknown consent purpose {purpose!r}")
    if purpose not in declared_purposes():
        raise ValueError(f"purpose {purpose!r} is processed by no module: declare it with reg.purposes(...)")


def allows(customer, purpose):
    """Does an active (not withdrawn) consent of the customer cover ``purpose``? A module asks
    this before processing the customer for a purpose it declared."""
    _declared(purpose)
    return any(c.active and purpose in c.purpose_list for c in customer.consents)


def allowed_clause(purpose):
    """SQL condition on Customer: an active consent covers ``purpose`` (for processing in bulk)."""
    _declared(purpose)
    return Customer.id.in_(select(Consent.customer_id).where(
        Consent.withdrawn_at.is_(None), Consent.purposes.contains(purpose)))


def needs_consent(values):
    """The fields of ``values`` (field name -> value) that need a consent before they are stored."""
    return [name for name in COLLECTION_PURPOSES if values.get(name)]


def _label(purposes):
    from core.api import pick
    return " / ".join(pick(PURPOSES[p]) for p in purposes)


def collection_errors(values, consents=(), new_consent=None):
    """{field: message} of the fields in ``values`` that may not be stored: those without an
    active consent (among ``consents``, the customer's, or ``new_consent``, the cleaned consent
    recorded together with them) covering their purpose, and L2 fields without the separate
    consent to sensitive data. The message names the missing consent; empty when all is covered.
    Also ``consent_purposes`` / ``consent_sensitive`` keys for the consent part of a form."""
    active = [(set(c.purpose_list), bool(c.sensitive)) for c in consents if c.active]
    if new_consent:
        active.append((set(new_consent.get("purposes") or ()), bool(new_consent.get("sensitive"))))
    errors = {}
    for name in needs_consent(values):
        purposes = COLLECTION_PURPOSES[name]
        if FIELDS[name].level == L2 and not any(sensitive for _granted, sensitive in active):
            errors[name] = SENSITIVE_MESSAGE
            errors.setdefault("consent_sensitive", SENSITIVE_MESSAGE)
        elif not any(granted & set(purposes) for granted, _sensitive in active):
            errors[name] = _l("Needs the customer's consent to \"%(purpose)s\" first.",
                              purpose=_label(purposes[:1]))
            errors.setdefault("consent_purposes", errors[name])
    return errors


def covers_collection(customer):
    """Do the customer's consents cover every field of COLLECTION_PURPOSES (sensitive ones too)?"""
    return not collection_errors({name: True for name in COLLECTION_PURPOSES}, customer.consents)
