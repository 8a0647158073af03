"""Domain services of the customer register.

Plain functions that take the acting user explicitly, check their input, write one audit entry
per change (field names, never values) and leave committing to the caller. The web pages, the
import and the CLI all go through them, so a rule holds everywhere or nowhere.

``actor`` is a ``core.models.User`` for people, or a string such as "cli:root" for commands.
"""
from __future__ import annotations

import datetime
import functools
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from flask import has_request_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, and_, bindparam, inspect, or_, select, update
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from core.api import (
    AnyActor,
    Department,
    User,
    actor_params,
    audit,
    bindable,
    can,
    crypto,
    db,
    module_setting,
    next_number,
    record_rule,
    utcnow,
    validation,
)

from .api import TimelineEvent
from .fields import (
    CHANNELS,
    CONTACT_FIELDS,
    CUSTOMER_KINDS,
    FIELDS,
    L2,
    L3,
    PURPOSES,
    SOURCES,
    STATUSES,
    is_masked,
    level_of,
)
from .models import Consent, Contact, Customer, Share, StatusChange, Transaction

NUMBER_PREFIX = "KH"
STAFF_ROLES = ("head", "sales", "service")
REVEAL_PERMISSIONS = {L2: "customers.reveal_l2", L3: "customers.reveal_l3"}
SENSITIVE_FIELDS = tuple(name for name, spec in FIELDS.items() if spec.level == L2)
TRANSACTION_KINDS = {
    "transaction": {"zh_CN": "交易记录", "en": "Transaction"},
    "service": {"zh_CN": "服务记录", "en": "Service record"},
    "refund": {"zh_CN": "退款", "en": "Refund"},  # stored negative; reduces the transaction total
}
TRANSACTION_CHANNELS = {
    "store": {"zh_CN": "门店", "en": "Store"}, "online": {"zh_CN": "线上", "en": "Online"},
    "phone": {"zh_CN": "电话", "en": "Phone"}, "visit": {"zh_CN": "上门", "en": "On site"},
    "other": {"zh_CN": "其他", "en": "Other"},
}
# Non-personal attributes a caller may set alongside the fields of fields.py.
EXTRA_KEYS = ("source", "tags", "status")
NOT_NULL_KEYS = ("tags",)  # cleared to "", not None (the column is NOT NULL)
MAX_TAGS = 200
MAX_REASON = 500
MAX_AMOUNT = Decimal("999999999999.99")


# --- errors ------------------------------------------------------------------------------------

class CustomerError(Exception):
    """A refused action; ``message`` is translated and safe to show."""

    def __init__(self, message=""):
        super().__init__(str(message))
        self.message = message

    def __str__(self):
        return str(self.message)


class InvalidData(CustomerError):
    """Input that cannot be saved; ``errors`` maps field names to messages (nothing was saved)."""

    def __init__(self, errors):
        super().__init__(_l("Please correct the marked fields."))
        self.errors = dict(errors)


class StaleEdit(CustomerError):
    """The record changed since the form was opened; nothing was saved."""

    def __init__(self, current_version=None):
        super().__init__(_l("A colleague changed this customer after you opened the form. Your changes "
                            "have not been saved: check the current values and save again."))
        self.current_version = current_version


class ConsentMissing(CustomerError):
    """Processing that needs a consent the customer has not given, or has withdrawn."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class NotAllowed(CustomerError):
    """The actor lacks ``permission`` (the web answers 403)."""

    def __init__(self, permission, message=None):
        super().__init__(message or _l("You are not allowed to do this."))
        self.permission = permission


class RevealLimit(CustomerError):
    """Too many reveals in the last hour (the web answers 429)."""


# --- cleaning ----------------------------------------------------------------------------------

def _as_text(value):
    """Form and file values as text: dates as ISO, whole floats from spreadsheets as integers."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _text(max_len, field_kind="name"):
    def clean(value):
        text = validation.clean_text(value, field_kind=field_kind)
        if len(text) > max_len:
            raise validation.ValidationError(_l("Too long: at most %(n)d characters.", n=max_len))
        return text
    return clean


def _gender(value):
    text = unicodedata.normalize("NFKC", value).strip().upper()
    mapping = {"M": "M", "F": "F", "男": "M", "女": "F", "MALE": "M", "FEMALE": "F"}
    if text not in mapping:
        raise validation.ValidationError(_l("Choose male (M) or female (F)."))
    return mapping[text]


def parse_date(value, *, not_before=datetime.date(1900, 1, 1)):
    """An ISO date (also 2024/01/31, 20240131, full-width digits), not in the future."""
    if isinstance(value, datetime.datetime):
        day = value.date()
    elif isinstance(value, datetime.date):
        day = value
    else:
        text = unicodedata.normalize("NFKC", str(value)).strip().replace("/", "-").replace(".", "-")
        if len(text) == 8 and text.isascii() and text.isdigit():
            text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
        try:
            day = datetime.date.fromisoformat(text)
        except ValueError:
            raise validation.ValidationError(_l("Invalid date: use the form 2024-01-31.")) from None
    if day > datetime.date.today():
        raise validation.ValidationError(_l("The date is in the future."))
    if day < not_before:
        raise validation.ValidationError(_l("The date is too far in the past."))
    return day


def _birth_date(value):
    return parse_date(value).isoformat()


def _phone(max_len=32):
    def clean(value):
        number = validation.phone(value)
        if len(number) > max_len:
            raise validation.ValidationError(_l("Too long: at most %(n)d characters.", n=max_len))
        return number
    return clean


CLEANERS = {
    "name": _text(100), "gender": _gender, "birth_date": _birth_date, "email": validation.email,
    "id_number": validation.id_number, "bank_account": validation.bank_account,
    "home_address": _text(300), "emergency_contact": _text(200),
    "company_name": _text(200), "credit_code": validation.credit_code, "legal_rep": _text(100),
    "company_address": _text(300), "postcode": validation.postcode, "fax": _phone(32),
    "industry": _text(100), "business_scope": _text(2000, "text"), "credit_rating": _text(16),
    "phone": _phone(), "phone2": _phone(), "notes": _text(2000, "text"),
}
REQUIRED = {"person": ("name",), "org": ("company_name",)}


def _clean_tags(value):
    parts = [validation.clean_text(p) for p in
             unicodedata.normalize("NFC", value).replace("，", ",").replace("、", ",").replace(";", ",").split(",")]
    tags = ",".join(dict.fromkeys(p for p in parts if p))
    if len(tags) > MAX_TAGS:
        raise validation.ValidationError(_l("Too long: at most %(n)d characters.", n=MAX_TAGS))
    return tags


def _clean_extra(key, value):
    if key == "tags":
        return _clean_tags(value)
    text = value.strip()
    choices = SOURCES if key == "source" else STATUSES
    if text not in choices:
        # also accept the Chinese or English label (import files use labels)
        by_label = {label: k for k, labels in choices.items() for label in labels.values()}
        if text not in by_label:
            raise validation.ValidationError(_l("Not one of the offered choices."))
        text = by_label[text]
    return text


def clean_customer_data(kind, data, *, partial=False):
    """Normalise and validate the fields of one customer of ``kind`` ("person" or "org").

    Returns ``(clean, errors)``: ``clean`` holds the canonical value of each key given (``None``
    for an empty value, meaning "clear the field"); ``errors`` maps field names to translated
    messages. Keys are the names of fields.py plus "source", "tags" and "status". With
    ``partial`` (editing), required fields are checked only when given.
    """
    clean, errors = {}, {}
    if kind not in CUSTOMER_KINDS:
        return {}, {"kind": _l("Choose individual or organisation.")}
    for key, raw in data.items():
        if key == "kind":
            continue
        text = _as_text(raw)
        spec = FIELDS.get(key)
        if spec is None and key not in EXTRA_KEYS:
            errors[key] = _l("Unknown field.")
            continue
        if spec is not None and kind not in spec.kinds:
            if text.strip():
                errors[key] = (_l("This field does not apply to an individual.") if kind == "person"
                               else _l("This field does not apply to an organisation."))
            continue
        if not text.strip():
            clean[key] = None
            continue
        try:
            clean[key] = CLEANERS[key](text) if spec is not None else _clean_extra(key, text)
        except validation.ValidationError as exc:
            errors[key] = exc.message
    for key in REQUIRED[kind]:
        if key not in errors and clean.get(key) is None and (key in data or not partial):
            errors[key] = _l("This field is required.")
    if kind == "person":
        _check_id_consistency(data, clean, errors)
    return clean, errors


def _check_id_consistency(data, clean, errors):
    """Birth date and gender must agree with the ID number; when empty they are taken from it."""
    number = clean.get("id_number")
    if not number:
        return
    born = f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
    gender = "M" if int(number[16]) % 2 else "F"
    if "birth_date" not in errors:
        if clean.get("birth_date") is None:
            clean["birth_date"] = born
        elif clean["birth_date"] != born:
            errors["birth_date"] = _l("The birth date does not match the ID number.")
    if "gender" not in errors:
        if clean.get("gender") is None:
            clean["gender"] = gender
        elif clean["gender"] != gender:
            errors["gender"] = _l("The gender does not match the ID number.")


def clean_contact_data(data):
    """(clean, errors) of a contact person of an organisation; name is required."""
    cleaners = {"name": _text(100), "title": _text(100), "phone": _phone(), "email": validation.email}
    clean, errors = {}, {}
    for key, raw in data.items():
        if key not in CONTACT_FIELDS:
            errors[key] = _l("Unknown field.")
            continue
        text = _as_text(raw)
        if not text.strip():
            clean[key] = None
            continue
        try:
            clean[key] = cleaners[key](text)
        except validation.ValidationError as exc:
            errors[key] = exc.message
    if clean.get("name") is None and "name" not in errors:
        errors["name"] = _l("This field is required.")
    return clean, errors


def clean_consent_data(data):
    """(clean, errors) of a consent: purposes (list), channel, scope, sensitive, notice_version."""
    errors = {}
    purposes = data.get("purposes") or []
    if isinstance(purposes, str):
        purposes = [p for p in purposes.split(",") if p]
    purposes = list(dict.fromkeys(p.strip() for p in purposes))
    if not purposes:
        errors["purposes"] = _l("Choose at least one purpose.")
    elif any(p not in PURPOSES for p in purposes):
        errors["purposes"] = _l("Not one of the offered choices.")
    channel = (data.get("channel") or "").strip()
    if channel not in CHANNELS:
        errors["channel"] = _l("Choose how the consent was given.")
    scope = ""
    try:
        scope = _text(500, "text")(_as_text(data.get("scope")))
    except validation.ValidationError as exc:
        errors["scope"] = exc.message
    notice = _as_text(data.get("notice_version")).strip() or notice_version()
    if len(notice) > 32:
        errors["notice_version"] = _l("Too long: at most %(n)d characters.", n=32)
    elif (published := _published_notices()) is not None and notice not in published[1]:
        errors["notice_version"] = _l("No privacy notice of version %(v)s has been published.", v=notice)
    clean = {"purposes": purposes, "channel": channel, "scope": scope,
             "sensitive": bool(data.get("sensitive")), "notice_version": notice}
    return clean, errors


def _published_notices():
    """(current version, [published versions]) from the module keeping the notice's texts
    (hook customers.privacy_notice), or None when none does."""
    from core.api import hooks
    for _module, answer in hooks.call("customers.privacy_notice", all_departments=True):
        if answer:
            return answer
    return None


def notice_version():
    """The version of the privacy notice currently shown to customers: the newest published text
    (hook customers.privacy_notice), else the setting."""
    published = _published_notices()
    if published is not None:
        return published[0]
    return str(module_setting("customers", "notice_version", "1.0"))


# --- owners ------------------------------------------------------------------------------------

def _is_user(actor):
    return isinstance(actor, User)


def _actor_id(actor):
    return actor.id if _is_user(actor) else None


def assignable_owners(actor):
    """Who the actor may make owner of a customer: staff themselves (their User); a head anyone
    active on the staff of the department (StaffMembers)."""
    if not _is_user(actor) or actor.role not in STAFF_ROLES:
        return []
    if actor.role != "head":
        return [actor]
    return department_staff(actor.department_id)


class StaffMember(NamedTuple):
    """A colleague as the pickers show them: what a select's option needs, without the User
    object and its password hash (the list asks on every request; loading the department's users
    as ORM objects was 1 % of a sales list and 3 % of a head's, by callgrind)."""
    id: int
    username: str
    display_name: str
    role: str

    def __str__(self):
        return self.display_name or self.username


def department_staff(department_id):
    """The department's active heads, sales and service staff, by name, as StaffMembers."""
    return [StaffMember(*row) for row in db.session.execute(_department_staff(), {"department": department_id})]


@functools.cache
def _department_staff():
    # built once per process: the list and the customer page ask on every request, and building
    # the select and its cache key cost more than running it
    return (select(User.id, User.username, User.display_name, User.role)
            .where(User.department_id == bindparam("department"), User.active.is_(True),
                   User.role.in_(STAFF_ROLES)).order_by(User.display_name, User.username))


def _resolve_owner(actor, owner, errors):
    if owner is None:
        if not _is_user(actor):
            errors["owner"] = _l("Choose the owner.")
            return None
        owner = actor
    elif not _is_user(owner):
        owner = db.session.get(User, int(owner)) if str(owner).isdigit() else None
    if owner is None or not owner.active or owner.role not in STAFF_ROLES or owner.department_id is None:
        errors["owner"] = _l("The owner must be an active sales, service or head user of a department.")
        return None
    if _is_user(actor):
        if actor.role not in STAFF_ROLES:
            errors["owner"] = _l("Only department staff hold customers.")
            return None
        if actor.role != "head" and owner.id != actor.id:
            errors["owner"] = _l("You can only make yourself the owner.")
            return None
        if owner.department_id != actor.department_id:
            errors["owner"] = _l("The owner must belong to your department.")
            return None
    return owner


# --- create and update -------------------------------------------------------------------------

def _set_fields(customer, clean):
    for key, value in clean.items():
        setattr(customer, key, value)


def _has_sensitive(values):
    return [name for name in SENSITIVE_FIELDS if values.get(name)]


def collection_consent_errors(values, consents=(), consent=None):
    """{field: message} of the personal fields in ``values`` that may not be stored for want of a
    consent covering their purpose (consent.collection_errors): the one rule of every path that
    collects (create, edit, import, other modules through these services)."""
    from .consent_rules import collection_errors
    return collection_errors(values, consents, consent)


def import_consent(values, channel):
    """The consent an import records for a row whose collection the importer confirmed (channel),
    or None when the row holds nothing that needs one."""
    from .consent_rules import needs_consent
    fields = needs_consent(values)
    if not channel or not fields:
        return None
    sensitive = bool(_has_sensitive(values))
    return {"purposes": ["service", "contract"], "channel": channel, "sensitive": sensitive,
            "scope": _("ID number and bank account (separate consent confirmed at import)") if sensitive
            else _("Personal details confirmed at import")}


def has_sensitive_consent(customer):
    return any(c.active and c.sensitive for c in customer.consents)


def create_customer(actor, data, *, owner=None, department=None, consent=None):
    """Create a customer from ``data`` (``data["kind"]`` is "person" or "org"; other keys as in
    `clean_customer_data`). Raises InvalidData with field errors; saves nothing then.

    ``owner`` (User or id) defaults to the actor; the department is the owner's (``department``,
    if given, must be it). ``consent`` (dict for `clean_consent_data`) records the customer's
    consent at collection; an ID number or bank account needs one with ``sensitive=True``
    (单独同意, PIPL art. 29). Duplicates are the caller's to check first (quality.find_duplicates).
    """
    from . import quality
    data = dict(data)
    kind = data.pop("kind", None)
    clean, errors = clean_customer_data(kind, data)
    if "kind" in errors:
        raise InvalidData(errors)
    owner = _resolve_owner(actor, owner, errors)
    if owner is not None and department is not None:
        dept_id = department.id if isinstance(department, Department) else int(department)
        if dept_id != owner.department_id:
            errors["department"] = _l("The department of a customer is its owner's department.")
    consent_clean = None
    if consent is not None and (consent.get("purposes") or consent.get("sensitive")):
        consent_clean, consent_errors = clean_consent_data(consent)
        errors.update({f"consent_{k}": v for k, v in consent_errors.items()})
    for name, message in collection_consent_errors(clean, (), consent_clean).items():
        errors.setdefault(name, message)
    if errors:
        raise InvalidData(errors)
    status = clean.pop("status", None) or "prospect"
    customer = Customer(kind=kind, number=next_number(NUMBER_PREFIX), status=status,
                        status_changed_at=utcnow(), owner_id=owner.id, department_id=owner.department_id,
                        source=clean.pop("source", None), tags=clean.pop("tags", None) or "")
    customer.data_key()  # every customer has its data key, even before a field is encrypted under it
    _set_fields(customer, clean)
    customer.completeness = quality.score_of(kind, clean)
    db.session.add(customer)
    db.session.flush()
    db.session.add(StatusChange(customer_id=customer.id, from_status=None, to_status=status,
                                changed_by=_actor_id(actor), changed_at=customer.status_changed_at))
    audit.record("customers.customer.created", target=customer, actor=actor, kind=kind,
                 fields=sorted(k for k, v in clean.items() if v is not None),
                 owner_id=owner.id)
    if consent_clean is not None:
        _add_consent(actor, customer, consent_clean, recorder=owner)
    db.session.flush()
    return customer


def update_customer(actor, customer, data, expected_version, *, owner=None, consent=None):
    """Apply the keys of ``data`` (as in `clean_customer_data`; absent keys stay unchanged).

    Raises StaleEdit when ``expected_version`` is not the customer's version (a colleague saved
    in between) and InvalidData with field errors; nothing is saved then. Returns the names of
    the changed fields (audited, never their values).
    """
    from . import quality
    try:
        expected = int(expected_version)
    except (TypeError, ValueError):
        raise StaleEdit(customer.version) from None
    if expected != customer.version:
        raise StaleEdit(customer.version)
    data = dict(data)
    data.pop("kind", None)
    status_given = "status" in data
    data.pop("status", None)
    clean, errors = clean_customer_data(customer.kind, data, partial=True)
    if status_given:  # a status goes through change_status (history and reason)
        errors["status"] = _l("Change the status with the status action.")
    if owner is not None and str(getattr(owner, "id", owner)) == str(customer.owner_id):
        owner = None  # unchanged (even if the owner has left meanwhile: the handover moves them)
    if owner is not None:
        new_owner = _resolve_owner(actor, owner, errors)
        if (new_owner is not None and _is_user(actor) and actor.role != "head"
                and new_owner.id != customer.owner_id):
            errors["owner"] = _l("Only the department head reassigns customers.")
    else:
        new_owner = None
    changed = []
    for key, value in clean.items():
        current = getattr(customer, key)
        if (current or None) != value:
            changed.append(key)
    consent_clean = None
    if consent is not None and (consent.get("purposes") or consent.get("sensitive")):
        consent_clean, consent_errors = clean_consent_data(consent)
        errors.update({f"consent_{k}": v for k, v in consent_errors.items()})
    for name, message in collection_consent_errors({k: clean[k] for k in changed}, customer.consents,
                                                   consent_clean).items():
        errors.setdefault(name, message)
    if errors:
        raise InvalidData(errors)
    for key in changed:
        value = clean[key]
        setattr(customer, key, "" if value is None and key in NOT_NULL_KEYS else value)
    if new_owner is not None and new_owner.id != customer.owner_id:
        customer.owner_id, customer.department_id = new_owner.id, new_owner.department_id
        changed.append("owner")
    if changed:
        customer.completeness = quality.completeness(customer)[0]
        customer.updated_at = utcnow()
        try:
            db.session.flush()
        except StaleDataError:
            db.session.rollback()
            raise StaleEdit() from None
        audit.record("customers.customer.updated", target=customer, actor=actor, fields=sorted(changed),
                     version=customer.version)
    if consent_clean is not None:
        _add_consent(actor, customer, consent_clean)
    return sorted(changed)


def change_status(actor, customer, status, reason=""):
    """Move the customer to 潜在/在册/流失; a reason is required for 流失 (lost)."""
    errors = {}
    if status not in STATUSES:
        errors["status"] = _l("Not one of the offered choices.")
    elif status == customer.status:
        errors["status"] = _l("The customer has this status already.")
    try:
        reason = _text(MAX_REASON, "text")(_as_text(reason))
    except validation.ValidationError as exc:
        errors["reason"] = exc.message
    if status == "lost" and not reason and "reason" not in errors:
        errors["reason"] = _l("State why the customer was lost.")
    if errors:
        raise InvalidData(errors)
    change = StatusChange(customer_id=customer.id, from_status=customer.status, to_status=status,
                          reason=reason, changed_by=_actor_id(actor), changed_at=utcnow())
    db.session.add(change)
    customer.status, customer.status_changed_at = status, change.changed_at
    customer.updated_at = change.changed_at
    try:
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise StaleEdit() from None
    audit.record("customers.customer.status_changed", target=customer, actor=actor,
                 from_status=change.from_status, to_status=status, reason_given=bool(reason))
    return change


# --- reveal ------------------------------------------------------------------------------------

def revealable(customer, field):
    spec = FIELDS.get(field)
    return spec is not None and customer.kind in spec.kinds and is_masked(customer, field)


def reveal(actor, customer, field, reason=None):
    """The clear value of a masked (L2/L3) field. L2 needs customers.reveal_l2; L3 needs
    customers.reveal_l3 and a stated reason. Each reveal is audited with the field name and
    the reason, never the value, and limited per hour (config CUSTOMERS_REVEAL_LIMIT)."""
    if not revealable(customer, field):
        raise InvalidData({"field": _l("This field cannot be revealed.")})
    level = level_of(customer, field)  # a birth date from the ID number is revealed as the ID is
    permission = REVEAL_PERMISSIONS[level]
    if not _is_user(actor) or not can(actor, permission):
        raise NotAllowed(permission)
    try:
        reason = _text(200)(_as_text(reason))
    except validation.ValidationError as exc:
        raise InvalidData({"reason": exc.message}) from None
    if level == L3 and not reason:
        raise InvalidData({"reason": _l("State why you need to see this information.")})
    limit = int(module_setting("customers", "reveal_limit", 60))
    since = utcnow() - datetime.timedelta(hours=1)
    recent = audit.count("customers.field.revealed", actor=actor, since=since)
    if recent >= limit:
        raise RevealLimit(_l("You have revealed too many values in the last hour; try again later."))
    value = getattr(customer, field)
    audit.record("customers.field.revealed", target=customer, actor=actor, field=field,
                 level=f"L{level}", reason=reason)
    return value


# --- exact search by an L2 value ---------------------------------------------------------------

SENSITIVE_SEARCH_ACTION = "customers.customer.searched_sensitive"
SENSITIVE_SEARCH_LIMIT = 20  # per window (CUSTOMERS_SENSITIVE_SEARCH_LIMIT)
SENSITIVE_SEARCH_WINDOW_MINUTES = 60  # CUSTOMERS_SENSITIVE_SEARCH_WINDOW


class SearchLimit(CustomerError):
    """Too many exact searches by an L2 value in the window (the web answers 429)."""


def count_sensitive_search(actor, kinds):
    """An exact search by an L2 value (an ID number: bank accounts have no search index) answers
    "is this number a customer of mine?", so each is audited with the actor's running count in
    the window, and once the limit is reached further ones are refused (audited) until the
    window has passed. Returns the count including this search; raises SearchLimit."""
    limit = int(module_setting("customers", "sensitive_search_limit", SENSITIVE_SEARCH_LIMIT))
    minutes = int(module_setting("customers", "sensitive_search_window", SENSITIVE_SEARCH_WINDOW_MINUTES))
    since = utcnow() - datetime.timedelta(minutes=minutes)
    used = audit.count(SENSITIVE_SEARCH_ACTION, actor=actor, since=since)
    if used >= limit:
        audit.record("customers.customer.searched", actor=actor, result="refused",
                     target_type="customers_customer", query_kinds=list(kinds), reason="sensitive_search_limit")
        raise SearchLimit(_l("You have searched by ID number too often recently; try again in %(minutes)d "
                             "minutes or ask your department head.", minutes=minutes))
    audit.record(SENSITIVE_SEARCH_ACTION, actor=actor, target_type="customers_customer",
                 query_kinds=list(kinds), count=used + 1, limit=limit)
    return used + 1


# --- consent -----------------------------------------------------------------------------------

def consent_details(consent_id, clean):
    """What the audit trail says of a consent recorded (its own entry, or an imported customer's
    created entry): the consent's id and what it covers."""
    return {"consent_id": consent_id, "purposes": clean["purposes"], "sensitive": clean["sensitive"],
            "channel": clean["channel"], "notice_version": clean["notice_version"]}


def _add_consent(actor, customer, clean, recorder=None):
    recorder_id = _actor_id(actor) or getattr(recorder, "id", None) or customer.owner_id
    consent = Consent(customer_id=customer.id, purposes=",".join(clean["purposes"]), scope=clean["scope"],
                      sensitive=clean["sensitive"], channel=clean["channel"],
                      notice_version=clean["notice_version"], recorded_by=recorder_id, recorded_at=utcnow())
    db.session.add(consent)
    db.session.flush()
    if consent not in customer.consents:
        customer.consents.append(consent)
    audit.record("customers.consent.recorded", target=customer, actor=actor, **consent_details(consent.id, clean))
    return consent


def record_consent(actor, customer, purposes, scope, channel, sensitive=False, notice_version=None):
    """Record what the customer agreed to (PIPL art. 14): purposes (keys of fields.PURPOSES),
    the scope in the customer's words, the channel, whether it includes the separate consent to
    sensitive personal information (art. 29), and the version of the notice shown."""
    clean, errors = clean_consent_data({"purposes": purposes, "scope": scope, "channel": channel,
                                        "sensitive": sensitive, "notice_version": notice_version})
    if errors:
        raise InvalidData(errors)
    consent = _add_consent(actor, customer, clean)
    customer_changed(actor, customer, "consent")  # e.g. graded once analysis is agreed to
    return consent


def withdraw_consent(actor, consent, reason):
    """Withdraw a consent with immediate effect; history is kept. Withdrawing the last separate
    consent to sensitive data erases the customer's sensitive fields (PIPL art. 47). Returns the
    names of erased fields."""
    try:
        reason = _text(MAX_REASON, "text")(_as_text(reason))
    except validation.ValidationError as exc:
        raise InvalidData({"reason": exc.message}) from None
    if not reason:
        raise InvalidData({"reason": _l("State the reason for the withdrawal.")})
    if not consent.active:
        raise InvalidData({"consent": _l("This consent has been withdrawn already.")})
    consent.withdrawn_at, consent.withdrawn_by, consent.withdraw_reason = utcnow(), _actor_id(actor), reason
    customer = consent.customer
    audit.record("customers.consent.withdrawn", target=customer, actor=actor, consent_id=consent.id,
                 purposes=consent.purpose_list, sensitive=consent.sensitive)
    erased = []
    if consent.sensitive and not has_sensitive_consent(customer):
        erased = [name for name in SENSITIVE_FIELDS if getattr(customer, name)]
        for name in erased:
            setattr(customer, name, None)
        if erased:
            from . import quality
            customer.completeness = quality.completeness(customer)[0]
            customer.updated_at = utcnow()
            audit.record("customers.customer.sensitive_erased", target=customer, actor=actor,
                         fields=erased, consent_id=consent.id)
            rekey_customer(actor, customer, reason="sensitive_erased")
    db.session.flush()
    customer_changed(actor, customer, "consent")  # what was derived for a withdrawn purpose goes
    return erased


def reencrypt(obj, old_key, new_key):
    """Re-encrypt every encrypted field of one row from old_key to new_key. Returns how many values moved."""
    return crypto.rekey_fields(obj, old_key, new_key)


def rekey_customer(actor, customer, *, reason):
    """Give the customer a new data key and destroy the old one, so that an erased value is gone
    from every older copy too (a database page, a file copy, a backup): what remains is
    re-encrypted under the new key, the customer's contacts and records as well, and every
    module re-encrypts its own rows and files through the hook customers.rekey. Audited with
    counts, never values. The caller commits."""
    from core.api import hooks
    old_key = customer.data_key()
    new_key = crypto.new_subject_key()
    db.session.flush()
    counts = {"customer": reencrypt(customer, old_key, new_key)}
    counts["contacts"] = sum(reencrypt(c, old_key, new_key) for c in customer.contacts)
    counts["transactions"] = sum(reencrypt(t, old_key, new_key) for t in customer.transactions)
    for module, moved in hooks.call("customers.rekey", customer, old_key, new_key, all_departments=True):
        counts[module] = int(moved or 0)
    customer.subject_key = new_key
    db.session.flush()
    old_id, new_id = old_key.id, new_key.id
    crypto.destroy_subject_key(old_key)
    audit.record("customers.customer.rekeyed", target=customer, actor=actor, reason=reason,
                 old_key_id=old_id, new_key_id=new_id,
                 reencrypted=sorted(f"{k}={v}" for k, v in counts.items()))
    return counts


def reencrypt_under_suite():
    """core.reencrypt (`kehu keys rotate --crypto sm`): what modules keep under a customer's key
    outside Encrypted fields (archives' files) follows the instance's new cipher suite through
    customers.rekey, called with the customer's own key as old and new key: the data key stays,
    only the cipher changes. The register's own fields are Encrypted fields, which core
    re-encrypts. Returns counts per module."""
    from core.api import hooks
    contributions = hooks.contributions("customers.rekey", all_departments=True)
    counts = {}
    if not contributions:
        return counts
    ids = db.session.scalars(select(Customer.id).where(Customer.subject_key_id.isnot(None))
                             .order_by(Customer.id)).all()
    for customer_id in ids:
        customer = db.session.get(Customer, customer_id)
        key = customer.data_key()
        for module, func in contributions:
            name = f"{module}_reencrypted"
            counts[name] = counts.get(name, 0) + int(func(customer, key, key) or 0)
    return counts


def has_consent(customer, purpose, sensitive=False):
    """Does an active (not withdrawn) consent cover ``purpose`` (and sensitive data, if asked)?"""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown consent purpose {purpose!r}")
    return any(c.active and purpose in c.purpose_list and (c.sensitive or not sensitive)
               for c in customer.consents)


def require_consent(customer, purpose, sensitive=False):
    """Return the covering consent, or raise ConsentMissing with the reason to show (e.g. the
    marketing export refuses a customer who withdrew consent to marketing)."""
    from core.api import pick
    if has_consent(customer, purpose, sensitive):
        return next(c for c in reversed(customer.consents)
                    if c.active and purpose in c.purpose_list and (c.sensitive or not sensitive))
    label = pick(PURPOSES[purpose])
    withdrawn = [c for c in customer.consents if not c.active and purpose in c.purpose_list]
    if withdrawn:
        when = withdrawn[-1].withdrawn_at.date().isoformat()
        raise ConsentMissing(_("%(number)s: the customer withdrew consent to \"%(purpose)s\" on %(date)s.",
                               number=customer.number, purpose=label, date=when))
    raise ConsentMissing(_("%(number)s: no consent to \"%(purpose)s\" has been recorded.",
                           number=customer.number, purpose=label))


# --- contacts ----------------------------------------------------------------------------------

def add_contact(actor, customer, data):
    """A contact person of an organisation."""
    if customer.kind != "org":
        raise InvalidData({"name": _l("Only organisations have contacts.")})
    clean, errors = clean_contact_data(data)
    if errors:
        raise InvalidData(errors)
    contact = Contact(customer=customer)
    db.session.add(contact)  # before the fields: encrypting loads the data key (autoflush)
    for key, value in clean.items():
        setattr(contact, key, value)
    db.session.flush()
    audit.record("customers.contact.created", target=customer, actor=actor, contact_id=contact.id,
                 fields=sorted(k for k, v in clean.items() if v is not None))
    return contact


def update_contact(actor, contact, data):
    clean, errors = clean_contact_data(data)
    if errors:
        raise InvalidData(errors)
    changed = [k for k, v in clean.items() if (getattr(contact, k) or None) != v]
    for key in changed:
        setattr(contact, key, clean[key])
    if changed:
        db.session.flush()
        audit.record("customers.contact.updated", target=contact.customer, actor=actor,
                     contact_id=contact.id, fields=sorted(changed))
    return changed


def remove_contact(actor, contact):
    customer = contact.customer
    contact_id = contact.id
    customer.contacts.remove(contact)
    db.session.delete(contact)
    db.session.flush()
    audit.record("customers.contact.deleted", target=customer, actor=actor, contact_id=contact_id)


def contact_of(customer, contact_id):
    """A contact of this customer, or None (never one of another customer)."""
    return db.session.scalar(select(Contact).where(Contact.id == contact_id,
                                                   Contact.customer_id == customer.id))


# --- transactions and service records ----------------------------------------------------------

def _amount(value):
    text = unicodedata.normalize("NFKC", value).strip().replace(",", "").lstrip("¥").strip()
    try:
        amount = Decimal(text).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise validation.ValidationError(_l("Invalid amount: use a number such as 1280.50.")) from None
    if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
        raise validation.ValidationError(_l("Invalid amount: use a number such as 1280.50."))
    return amount


def _signed_amount(kind, amount):
    """A refund is typed as the sum paid back (with or without a minus sign) and stored negative;
    any other record takes no negative amount."""
    if kind == "refund":
        if amount == 0:
            raise validation.ValidationError(_l("A refund needs an amount above 0."))
        return -abs(amount)
    if amount < 0:
        raise validation.ValidationError(
            _l("The amount cannot be negative: record money paid back as a refund."))
    return amount


def clean_transaction_data(data):
    """(clean, errors) of a transaction or service record: kind, occurred_on, amount, product,
    channel, notes. A transaction needs an amount; a service record may have none."""
    clean, errors = {}, {}
    kind = _as_text(data.get("kind")).strip() or "transaction"
    if kind not in TRANSACTION_KINDS:
        errors["kind"] = _l("Not one of the offered choices.")
    clean["kind"] = kind
    occurred = _as_text(data.get("occurred_on")).strip()
    if not occurred:
        errors["occurred_on"] = _l("This field is required.")
    else:
        try:
            clean["occurred_on"] = parse_date(data.get("occurred_on"), not_before=datetime.date(1990, 1, 1))
        except validation.ValidationError as exc:
            errors["occurred_on"] = exc.message
    amount = _as_text(data.get("amount")).strip()
    clean["amount"] = None
    if amount:
        try:
            clean["amount"] = _signed_amount(kind, _amount(amount))
        except validation.ValidationError as exc:
            errors["amount"] = exc.message
    elif kind == "transaction":
        errors["amount"] = _l("A transaction needs an amount.")
    elif kind == "refund":
        errors["amount"] = _l("A refund needs an amount.")
    try:
        clean["product"] = _text(200)(_as_text(data.get("product")))
        if not clean["product"]:
            errors["product"] = _l("This field is required.")
    except validation.ValidationError as exc:
        errors["product"] = exc.message
    channel = _as_text(data.get("channel")).strip()
    if channel and channel not in TRANSACTION_CHANNELS:
        errors["channel"] = _l("Not one of the offered choices.")
    clean["channel"] = channel
    try:
        clean["notes"] = _text(2000, "text")(_as_text(data.get("notes"))) or None
    except validation.ValidationError as exc:
        errors["notes"] = exc.message
    return clean, errors


def add_transaction(actor, customer, data):
    """Record a transaction or service of the customer (amount and product stay plain for
    grading; notes are encrypted)."""
    clean, errors = clean_transaction_data(data)
    if errors:
        raise InvalidData(errors)
    if not _is_user(actor):
        raise NotAllowed("customers.edit", _l("Transactions are recorded by a signed-in user."))
    record = Transaction(customer=customer, kind=clean["kind"], occurred_on=clean["occurred_on"],
                         amount=clean["amount"], product=clean["product"], channel=clean["channel"],
                         created_by=actor.id)
    db.session.add(record)  # before the notes: encrypting loads the data key (autoflush)
    record.notes = clean["notes"]
    db.session.flush()
    audit.record("customers.transaction.created", target=customer, actor=actor, transaction_id=record.id,
                 kind=record.kind, fields=sorted(k for k in ("amount", "product", "channel", "notes")
                                                 if clean.get(k)))
    customer_changed(actor, customer, "transaction")
    return record


def _clean_reason(data, errors):
    try:
        reason = _text(500, "text")(_as_text(data.get("reason")))
    except validation.ValidationError as exc:
        errors["reason"] = exc.message
        return ""
    if not reason:
        errors["reason"] = _l("This field is required.")
    return reason


def transaction_of(customer, transaction_id):
    """A record of this customer, or None (never one of another customer)."""
    return db.session.scalar(select(Transaction).where(Transaction.id == transaction_id,
                                                       Transaction.customer_id == customer.id))


def correct_transaction(actor, record, data):
    """Correct a record in place, with a reason (required). The audit entry names the changed
    fields, the old and new kind, date and amount (business figures, no personal data) and the
    reason; notes are named, never copied. A voided record cannot be corrected."""
    clean, errors = clean_transaction_data(data)
    reason = _clean_reason(data, errors)
    if record.voided:
        errors["reason"] = _l("A voided record cannot be corrected.")
    if errors:
        raise InvalidData(errors)
    if not _is_user(actor):
        raise NotAllowed("customers.edit", _l("Transactions are recorded by a signed-in user."))
    before = {"kind": record.kind, "occurred_on": record.occurred_on, "amount": record.amount,
              "product": record.product, "channel": record.channel, "notes": record.notes or None}
    changed = sorted(k for k, v in before.items() if clean.get(k) != v)
    if not changed:
        raise InvalidData({"reason": _l("Nothing was changed.")})
    record.kind, record.occurred_on, record.amount = clean["kind"], clean["occurred_on"], clean["amount"]
    record.product, record.channel = clean["product"], clean["channel"]
    record.notes = clean["notes"]
    record.corrected_at, record.corrected_by, record.correction_reason = utcnow(), actor.id, reason
    db.session.flush()
    figures = {f"{k}_before": str(before[k]) if before[k] is not None else None
               for k in ("kind", "occurred_on", "amount") if k in changed}
    figures.update({f"{k}_after": str(clean[k]) if clean[k] is not None else None
                    for k in ("kind", "occurred_on", "amount") if k in changed})
    audit.record("customers.transaction.corrected", target=record.customer, actor=actor,
                 transaction_id=record.id, fields=changed, reason=reason, **figures)
    customer_changed(actor, record.customer, "transaction")
    return changed


def void_transaction(actor, record, data):
    """Void a record with a reason (required): it stays on the page, struck through, and counts
    in no total (grading regrades the customer)."""
    errors = {}
    reason = _clean_reason(data, errors)
    if record.voided:
        errors["reason"] = _l("This record is voided already.")
    if errors:
        raise InvalidData(errors)
    if not _is_user(actor):
        raise NotAllowed("customers.edit", _l("Transactions are recorded by a signed-in user."))
    record.voided_at, record.voided_by, record.void_reason = utcnow(), actor.id, reason
    db.session.flush()
    audit.record("customers.transaction.voided", target=record.customer, actor=actor,
                 transaction_id=record.id, kind=record.kind,
                 amount=str(record.amount) if record.amount is not None else None, reason=reason)
    customer_changed(actor, record.customer, "transaction")


def customer_changed(actor, customer, what):
    """Tell the modules enabled in the customer's department (hook customers.changed) that the
    customer was created or edited, a record of it added, corrected or voided, or a consent
    recorded or withdrawn, so what they derive from it (the grade) follows at once, in the same
    transaction."""
    from core.api import hooks
    hooks.call("customers.changed", customer, actor, what, department_id=customer.department_id)


def transactions(customer, *, kind=None, before=None, limit=50):
    """The customer's records, newest first (by date, then entry), keyset-paginated: ``before``
    is the (occurred_on, id) of the last record of the previous page."""
    stmt = select(Transaction).where(Transaction.customer_id == customer.id)
    if kind:
        stmt = stmt.where(Transaction.kind == kind)
    if before is not None:
        day, last_id = before
        stmt = stmt.where(or_(Transaction.occurred_on < day,
                              and_(Transaction.occurred_on == day, Transaction.id < last_id)))
    stmt = stmt.order_by(Transaction.occurred_on.desc(), Transaction.id.desc()).limit(limit)
    return db.session.scalars(stmt).all()


# --- sharing -----------------------------------------------------------------------------------

def can_manage_shares(actor, customer):
    return _is_user(actor) and (customer.owner_id == actor.id or
                                (actor.role == "head" and actor.department_id == customer.department_id))


def share_candidates(actor, customer, shares=None):
    """Colleagues of the customer's department the customer may be shared with (``shares``: its
    shares, when the caller has read them already)."""
    taken = {s.user_id for s in (shares_of(customer) if shares is None else shares)} | {customer.owner_id}
    return [u for u in department_staff(customer.department_id)
            if u.role in ("sales", "service") and u.id not in taken]


def read_history(customer):
    """Read the customer's status changes (with who made each) and consents, if not read yet, in
    one select each built once per process, as its loaded collections: the customer page shows
    both, and the lazy loads it made instead — one per collection and one per user who changed a
    status — cost more to set up than their statements."""
    unloaded = inspect(customer).unloaded
    for key, stmt in (("status_changes", _status_changes_of), ("consents", _consents_of)):
        if key in unloaded:
            set_committed_value(customer, key, db.session.scalars(stmt(), {"customer": customer.id}).all())


@functools.cache
def _status_changes_of():
    return (select(StatusChange).options(joinedload(StatusChange.user))
            .where(StatusChange.customer_id == bindparam("customer")).order_by(StatusChange.id))


@functools.cache
def _consents_of():
    return select(Consent).where(Consent.customer_id == bindparam("customer")).order_by(Consent.id)


def shares_of(customer):
    return db.session.scalars(select(Share).where(Share.customer_id == customer.id)
                              .options(selectinload(Share.user)).order_by(Share.id)).all()


def share_customer(actor, customer, user):
    """Let a colleague of the same department see and edit the customer (owner or head only)."""
    if not can_manage_shares(actor, customer):
        raise NotAllowed("customers.share", _l("Only the owner or the department head shares a customer."))
    if not _is_user(user):
        user = db.session.get(User, int(user)) if str(user).isdigit() else None
    if user is None or user.id not in {u.id for u in share_candidates(actor, customer)}:
        raise InvalidData({"user_id": _l("Choose an active colleague of the customer's department.")})
    share = Share(customer_id=customer.id, user_id=user.id, granted_by=actor.id, granted_at=utcnow())
    db.session.add(share)
    db.session.flush()
    audit.record("customers.customer.shared", target=customer, actor=actor, user_id=user.id)
    return share


def unshare_customer(actor, share):
    customer = db.session.get(Customer, share.customer_id)
    if not can_manage_shares(actor, customer):
        raise NotAllowed("customers.share", _l("Only the owner or the department head shares a customer."))
    user_id = share.user_id
    db.session.delete(share)
    db.session.flush()
    audit.record("customers.customer.unshared", target=customer, actor=actor, user_id=user_id)


# --- timeline ----------------------------------------------------------------------------------

TIMELINE_RECORDS = 20  # the newest transaction and service records on the timeline


def timeline_events(customer, records=None):
    """The register's own events of a customer: creation, status changes, consents, records.
    ``records``: the customer's newest records (``transactions``), at least TIMELINE_RECORDS of
    them when it has that many, when the caller has read them already."""
    from core.api import pick
    link = has_request_context()
    events = [TimelineEvent(customer.created_at, _("Customer created"))]
    for change in customer.status_changes:
        if change.from_status is None:
            continue
        events.append(TimelineEvent(change.changed_at, _("Status: %(old)s → %(new)s",
                                                         old=pick(STATUSES[change.from_status]),
                                                         new=pick(STATUSES[change.to_status])),
                                    detail=change.reason))
    for consent in customer.consents:
        purposes = "、".join(pick(PURPOSES[p]) for p in consent.purpose_list if p in PURPOSES)
        events.append(TimelineEvent(consent.recorded_at, _("Consent recorded") if not consent.sensitive
                                    else _("Consent recorded, including sensitive data"), detail=purposes))
        if consent.withdrawn_at is not None:
            events.append(TimelineEvent(consent.withdrawn_at, _("Consent withdrawn"), detail=purposes))
    records = transactions(customer, limit=TIMELINE_RECORDS) if records is None else records[:TIMELINE_RECORDS]
    for record in records:
        amount = f" ¥{record.amount:,.2f}" if record.amount is not None else ""
        events.append(TimelineEvent(record.occurred_on, pick(TRANSACTION_KINDS[record.kind]),
                                    detail=f"{record.product}{amount}",
                                    url=url_for("customers.transactions", customer_id=customer.id)
                                    if link else None))
    return events


def sort_key(event):
    """Timeline order: dates count as the start of their day (UTC); naive times as UTC."""
    at = event.at
    if isinstance(at, datetime.datetime):
        return at if at.tzinfo else at.replace(tzinfo=datetime.UTC)
    return datetime.datetime.combine(at, datetime.time.min, tzinfo=datetime.UTC)


# --- keys rotate -------------------------------------------------------------------------------

@dataclass
class _Indexed:
    model: type
    fields: tuple


def reindex(batch=500):
    """`kehu keys rotate` callback: recompute every blind index of customers and contacts
    under the new index key, in the rotation's transaction. Versions are not bumped (nothing a
    user sees changed), so open edit forms stay valid."""
    db.session.flush()  # the rotation's rewrapped data keys must not be lost to expiry
    counts = {}
    for spec in (_Indexed(Customer, ("name", "id_number", "phone", "phone2")),
                 _Indexed(Contact, ("name", "phone"))):
        model, table = spec.model, spec.model.__table__
        options = ([selectinload(Customer.subject_key)] if model is Customer
                   else [selectinload(Contact.customer).selectinload(Customer.subject_key)])
        last, done = 0, 0
        while True:
            rows = db.session.scalars(select(model).where(model.id > last).order_by(model.id)
                                      .limit(batch).options(*options)).all()
            if not rows:
                break
            params = []
            for row in rows:
                values = {"_id": row.id}
                for name in spec.fields:
                    sealed = model.__dict__[name]
                    value = getattr(row, name)
                    values[sealed.bidx] = (crypto.blind_index(sealed.search_domain, value)
                                           if value else None)
                params.append(values)
            db.session.execute(update(table).where(table.c.id == bindparam("_id")), params)
            for row in rows:
                db.session.expunge(row)
            done += len(rows)
            last = rows[-1].id
        counts[f"{table.name}_reindexed"] = done
    counts.update(reindex_partial(batch))
    return counts


def reindex_partial(batch=500):
    """The truncated partial-search indexes (search.py) of every customer, recomputed under the
    current index key: called by `reindex` (so `kehu keys rotate` rebuilds them) and usable
    after a change of their transforms. Decrypts one batch at a time; versions are not bumped."""
    from . import search
    table = Customer.__table__
    last, done = 0, 0
    while True:
        rows = db.session.scalars(select(Customer).where(Customer.id > last).order_by(Customer.id)
                                  .limit(batch).options(selectinload(Customer.subject_key))).all()
        if not rows:
            break
        params = []
        for row in rows:
            values = {"_id": row.id, "number_rev": row.number[::-1]}
            for field, keys in search.PARTIAL.items():
                try:
                    value = getattr(row, field) if getattr(row, f"{field}_ct") else None
                except crypto.DecryptionError:  # destroyed: its indexes were nulled with it
                    value = None
                for key in keys:
                    values[f"{key}_bidx"] = search.partial_index(key, value) if value else None
            params.append(values)
        db.session.execute(update(table).where(table.c.id == bindparam("_id")), params)
        for row in rows:
            db.session.expunge(row)
        done += len(rows)
        last = rows[-1].id
    return {"customers_customer_partial_reindexed": done}


# --- the customer list: remit branches, pages, counts, bulk actions ------------------------------

COUNT_CAP = 1000  # the list counts up to this many, then shows "1,000+"
BULK_MAX = 100  # customers per bulk action (a page at most)
LIST_SORTS = ("number", "company", "status", "owner", "completeness", "created", "updated")


def has_shares(actor):
    return _is_user(actor) and db.session.scalar(_a_share_of(), {"user": actor.id}) is not None


@functools.cache
def _a_share_of():  # built once per process, as _department_staff
    return select(Share.id).where(Share.user_id == bindparam("user")).limit(1)


class Remit:
    """The customers an actor may see, as one or two selects (``branches``) and the values of
    their bound parameters (``params``), with the selects a page or a count derives from them
    (``derived``), built once per Remit.

    Staff see their own customers OR those shared with them; that OR keeps an index from giving
    the list order, so the database would sort the whole remit for every page. Instead the own
    and the shared customers are two selects (each walks its index in id order) that
    `merged_rows` merges."""

    def __init__(self, branches, params=None, derived=None):
        self.branches = list(branches)
        self.params = params or {}
        self._derived = {} if derived is None else derived

    def where(self, *clauses):
        return Remit([b.where(*clauses) for b in self.branches], self.params)

    def map(self, change):
        """The same remit with ``change(select)`` applied to each branch (a module's filter)."""
        return Remit([change(b) for b in self.branches], self.params)

    def derived(self, key, build):
        """``[build(branch) for each branch]``, built once for ``key``."""
        stmts = self._derived.get(key)
        if stmts is None:
            stmts = self._derived[key] = [build(b) for b in self.branches]
        return stmts


@functools.lru_cache(maxsize=32)
def _kept_remit(rule, role, owner, shares):
    """The unfiltered list's branches under ``rule`` for a role, built once per process with
    their derived selects: on every list page, building them and their SQLAlchemy cache keys cost
    more than the database took to run them."""
    return Remit(_branches(AnyActor(role), role, (), owner, shares))


def _branches(actor, role, conditions, owner, shares):
    from .api import _shared_with, scoped_customers
    base = scoped_customers(actor).where(*conditions)
    if role not in ("sales", "service"):
        return [base]
    own = base.where(Customer.owner_id == actor.id)
    if owner == "me" or (owner != "shared" and not shares):
        return [own]
    shared = base.where(Customer.owner_id != actor.id, _shared_with(actor))
    return [shared] if owner == "shared" else [own, shared]


def remit_of(actor, conditions=(), owner=""):
    """The actor's visible customers as a Remit, each branch scoped by the record rule; the
    shared branch is left out when the actor has no shares. ``owner``: "me" or "shared" keeps one
    branch. Without ``conditions`` (the unfiltered list) the selects are built once per role."""
    staff = _is_user(actor) and actor.role in ("sales", "service")
    shares = staff and owner not in ("me", "shared") and has_shares(actor)
    if not conditions and _is_user(actor) and actor.role in STAFF_ROLES and bindable(actor, Customer):
        kept = _kept_remit(record_rule(Customer), actor.role, owner if staff else "", shares)
        return Remit(kept.branches, actor_params(actor), derived=kept._derived)
    return Remit(_branches(actor, actor.role if _is_user(actor) else None, conditions, owner, shares))


def _id_of(first):
    """The customer id of a row whose first column is the customer or its id."""
    return first if isinstance(first, int) else first.id


def _page_ids(descending, after):
    """The ids of a branch's next chunk, from the remit's (owner_id, id) or (department_id, id)
    index alone (the rows follow by id: asked in one go, PostgreSQL may walk the primary key
    instead, and skip every newer customer of other remits on the way)."""
    def build(branch):
        stmt = branch.with_only_columns(Customer.id)
        if after:
            stmt = stmt.where(Customer.id < bindparam("page_after") if descending
                              else Customer.id > bindparam("page_after"))
        return (stmt.order_by(Customer.id.desc() if descending else Customer.id.asc())
                .limit(bindparam("page_size", type_=Integer)))
    return build


def _page_rows(descending, after):
    """The rows of a branch's next chunk: the branch's own columns for the ids of _page_ids."""
    ids = _page_ids(descending, after)
    return lambda branch: branch.where(Customer.id.in_(ids(branch))).order_by(
        Customer.id.desc() if descending else Customer.id.asc())


def merged_rows(remit, *, descending=True, start=None, chunk=50, ids_only=False):
    """Rows of the union of the remit's branches in id order (newest first when
    ``descending``), after the id ``start``: each branch is read a chunk at a time in its own
    keyset order. A row's first column is the customer or its id; with ``ids_only`` a row is its
    id alone."""
    count = len(remit.branches)
    cursors = [start] * count
    buffers = [[] for _ in range(count)]
    done = [False] * count
    while True:
        for i in range(count):
            if buffers[i] or done[i]:
                continue
            after = cursors[i] is not None
            key = ("ids" if ids_only else "rows", descending, after)
            stmt = remit.derived(key, (_page_ids if ids_only else _page_rows)(descending, after))[i]
            params = {**remit.params, "page_size": chunk}
            if after:
                params["page_after"] = cursors[i]
            rows = db.session.execute(stmt, params).all()
            done[i] = len(rows) < chunk
            if rows:
                cursors[i] = _id_of(rows[-1][0])
                buffers[i] = list(reversed(rows))  # pop() from the end
        live = [i for i in range(count) if buffers[i]]
        if not live:
            return
        pick_ = (max if descending else min)(live, key=lambda i: _id_of(buffers[i][-1][0]))
        yield buffers[pick_].pop()


def keyset_page(remit, size, *, after=None, before=None):
    """(ids, has_prev, has_next) of one page of the default list (newest first)."""
    if before:
        rows = []
        for row in merged_rows(remit, descending=False, start=before, chunk=size + 1, ids_only=True):
            rows.append(row[0])
            if len(rows) > size:
                break
        has_prev, rows = len(rows) > size, rows[:size][::-1]
        return rows, has_prev, bool(rows)
    rows = []
    for row in merged_rows(remit, start=after, chunk=size + 1, ids_only=True):
        rows.append(row[0])
        if len(rows) > size:
            break
    return rows[:size], bool(after), len(rows) > size


@dataclass(frozen=True, slots=True)
class ListRow:
    """A customer as the list shows it, read as plain columns (list_rows): the name decrypted,
    the phone already masked (its plaintext is not kept), the owner's name."""

    id: int
    number: str
    kind: str
    status: str
    owner_id: int
    department_id: int
    display_name: str | None
    masked_phone: str | None
    owner: str
    completeness: int
    updated_at: datetime.datetime


@functools.cache
def _list_rows_statement():
    """Built once per process (its construction cost a third of the rows' own reading): the
    columns the list shows, the owner's name and the data key, for the expanding ``ids``."""
    return (select(Customer.id, Customer.uid, Customer.number, Customer.kind, Customer.status,
                   Customer.owner_id, Customer.department_id, Customer.company_name, Customer.name_ct,
                   Customer.phone_ct, Customer.completeness, Customer.updated_at,
                   crypto.SubjectKey.kek_id, crypto.SubjectKey.wrapped, User.display_name, User.username)
            .join(User, User.id == Customer.owner_id)
            .outerjoin(crypto.SubjectKey, crypto.SubjectKey.id == Customer.subject_key_id)
            .where(Customer.id.in_(bindparam("ids", expanding=True))))


def list_rows(ids):
    """The customers ``ids`` as ListRows, in that order: one select of the columns the list
    shows, names and phones decrypted without an ORM object per row or per data key."""
    if not ids:
        return []
    opener, table, found = crypto.BulkOpener(), Customer.__tablename__, {}
    name_field, phone_field = Customer.name, Customer.phone
    for (id_, uid, number, kind, status, owner_id, department_id, company_name, name_ct, phone_ct,
         completeness, updated_at, kek_id, wrapped, owner_name, username) in db.session.execute(
            _list_rows_statement(), {"ids": list(ids)}):
        name = company_name if kind == "org" else opener.read(name_field, table, uid, name_ct, kek_id, wrapped)
        phone = opener.read(phone_field, table, uid, phone_ct, kek_id, wrapped)
        found[id_] = ListRow(
            id=id_, number=number, kind=kind, status=status, owner_id=owner_id, department_id=department_id,
            display_name=name, masked_phone=validation.mask_phone(phone) if phone else None,
            owner=owner_name or username, completeness=completeness, updated_at=updated_at)
    return [found[i] for i in ids if i in found]


def search_page(remit, q, sure, candidates, size, *, after=None, scan_limit=None):
    """One page of a search: the ids of the customers matching ``sure`` (exact clauses, no
    decryption) or one of the ``candidates`` (truncated partial-search indexes), the latter
    confirmed by decrypting their own fields (search.confirms), in list order until the page is
    full. Only candidates are loaded as Customer objects (with their data keys).

    Returns (ids, next_after, scanned_out): ``next_after`` continues the search; when
    ``scanned_out`` the candidate budget (search.SCAN_LIMIT) ran out before the page was full."""
    from sqlalchemy import false

    from . import search
    scan_limit = scan_limit or search.SCAN_LIMIT
    sure_clause = or_(*sure) if sure else false()
    where = or_(sure_clause, *[clause for _key, clause in candidates])
    chunk = min(max(size * 3, 60), 200)
    if candidates:
        matching = remit.map(lambda b: b.where(where).add_columns(sure_clause.label("sure"))
                             .options(selectinload(Customer.subject_key)))
        rows = merged_rows(matching, start=after, chunk=chunk)
    else:  # every match is sure: the ids alone
        rows = ((row[0], True) for row in merged_rows(remit.where(where), start=after,
                                                      chunk=chunk, ids_only=True))
    kept, scanned, last_id = [], 0, None
    for first, is_sure in rows:
        last_id = _id_of(first)
        if is_sure:
            kept.append(last_id)
        else:
            scanned += 1
            if search.confirms(first, q):
                kept.append(last_id)
        if len(kept) > size:
            return kept[:size], kept[size - 1], False
        if scanned >= scan_limit:
            return kept, last_id, True
    return kept, None, False


def count_capped(remit, cap=None):
    """(count, capped): how many customers the remit holds, counting at most ``cap`` + 1
    (COUNT_CAP): the figure costs a bounded index walk however large the register."""
    from sqlalchemy import func
    cap = COUNT_CAP if cap is None else cap

    def build(branch):
        # in id order, as the page itself: the planner then walks the remit's index and stops at
        # the cap; unordered, PostgreSQL read all of a salesperson's customers into a bitmap first
        # (8.6 ms for 10,000 at 100k, growing with the register)
        sub = (branch.with_only_columns(Customer.id).order_by(Customer.id.desc())
               .limit(bindparam("count_limit", type_=Integer)).subquery())
        return select(func.count()).select_from(sub)

    total = 0
    for stmt in remit.derived(("count",), build):
        total += db.session.scalar(stmt, {**remit.params, "count_limit": cap + 1 - total}) or 0
        if total > cap:
            return cap, True
    return total, False


def sorted_statement(stmt, key, descending):
    """``stmt`` ordered by a built-in column of the list (LIST_SORTS): only columns stored in
    clear, so no row is decrypted to sort."""
    columns = {"number": Customer.id, "created": Customer.id, "company": Customer.company_name,
               "status": Customer.status, "completeness": Customer.completeness,
               "updated": Customer.updated_at}
    if key == "owner":
        owner = db.aliased(User)
        stmt = stmt.join(owner, owner.id == Customer.owner_id)
        column = owner.display_name
    else:
        column = columns[key]
    order = column.desc() if descending else column.asc()
    if key == "company":
        order = order.nulls_last()
    return stmt.order_by(order, Customer.id.desc() if descending else Customer.id.asc())


class BulkError(CustomerError):
    """A bulk action that cannot run at all (nothing was changed)."""


def _bulk_customers(actor, ids):
    from .api import scoped_customers
    ids = sorted({int(i) for i in ids if str(i).isdigit()})
    if not ids:
        raise BulkError(_l("Select at least one customer."))
    if len(ids) > BULK_MAX:
        raise BulkError(_l("Select at most %(n)d customers at a time.", n=BULK_MAX))
    rows = db.session.scalars(scoped_customers(actor).where(Customer.id.in_(ids)).order_by(Customer.id)).all()
    if len(rows) != len(ids):  # an id outside the remit: refuse the whole action, reveal nothing
        raise BulkError(_l("Some selected customers are not in your remit; nothing was changed."))
    return rows


def bulk_reassign(actor, ids, owner):
    """Give the selected customers (all within the actor's remit) a new owner of the actor's
    department: department heads only. One audit entry per customer (customers.customer.reassigned,
    with the previous and the new owner); a share the new owner held on one of them is dropped.
    Returns the customers changed. The caller commits."""
    if not _is_user(actor) or actor.role != "head" or not can(actor, "customers.edit"):
        raise NotAllowed("customers.edit", _l("Only the department head reassigns customers."))
    errors = {}
    new_owner = _resolve_owner(actor, owner, errors) if owner not in (None, "") else None
    if new_owner is None:
        raise InvalidData({"owner": errors.get("owner", _l("Choose the owner."))})
    changed = []
    for customer in _bulk_customers(actor, ids):
        if customer.owner_id == new_owner.id:
            continue
        previous = customer.owner_id
        customer.owner_id, customer.department_id = new_owner.id, new_owner.department_id
        customer.updated_at = utcnow()
        changed.append((customer, previous))
    if changed:
        try:
            db.session.flush()
        except StaleDataError:
            db.session.rollback()
            raise StaleEdit() from None
        from sqlalchemy import delete
        db.session.execute(delete(Share).where(Share.user_id == new_owner.id,
                                               Share.customer_id.in_([c.id for c, _p in changed]))
                           .execution_options(synchronize_session=False))
        for customer, previous in changed:
            audit.record("customers.customer.reassigned", target=customer, actor=actor,
                         from_owner=previous, to_owner=new_owner.id, bulk=True, version=customer.version)
    return [c for c, _p in changed]


def bulk_share(actor, ids, user):
    """Share the selected customers with a colleague of their department (owner or head, as
    for one customer). Customers already shared with the colleague or owned by them are
    skipped. One audit entry per customer shared. Returns (shared, skipped). The caller commits."""
    if not _is_user(actor) or not can(actor, "customers.share"):
        raise NotAllowed("customers.share")
    if not _is_user(user):
        user = db.session.get(User, int(user)) if str(user or "").isdigit() else None
    customers = _bulk_customers(actor, ids)
    if any(not can_manage_shares(actor, c) for c in customers):  # e.g. one shared with the actor
        raise BulkError(_l("Only the owner or the department head shares a customer."))
    if (user is None or not user.active or user.role not in ("sales", "service")
            or any(user.department_id != c.department_id for c in customers)):
        raise InvalidData({"user_id": _l("Choose an active colleague of the customer's department.")})
    taken = set(db.session.scalars(select(Share.customer_id).where(
        Share.user_id == user.id, Share.customer_id.in_([c.id for c in customers]))))
    shared, skipped = [], []
    for customer in customers:
        if customer.id in taken or customer.owner_id == user.id:
            skipped.append(customer)
            continue
        db.session.add(Share(customer_id=customer.id, user_id=user.id, granted_by=actor.id, granted_at=utcnow()))
        shared.append(customer)
    db.session.flush()
    for customer in shared:
        audit.record("customers.customer.shared", target=customer, actor=actor, user_id=user.id, bulk=True)
    return shared, skipped


def share_colleagues(actor, staff=None):
    """Colleagues the actor may share customers with in bulk: active sales and service staff of
    the actor's department, the actor excepted. ``staff``: the department's active staff in that
    order, when already read (a head's ``assignable_owners``)."""
    if not _is_user(actor) or actor.department_id is None:
        return []
    if staff is None:
        staff = department_staff(actor.department_id)
    return [u for u in staff if u.role in ("sales", "service") and u.id != actor.id]
