"""What other modules may use of the customer register (re-exported by the package)."""
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload

from core.api import db, get_or_404, ownership_rule, pick, scoped

from . import consent_rules as consent  # noqa: F401 - exported: consent.allows(customer, purpose)
from .fields import CONTACT_FIELDS, FIELDS, GENDERS, is_masked, mask_value
from .models import Contact, Customer, Share, Transaction


def _shared_with(actor):
    return Customer.id.in_(select(Share.customer_id).where(Share.user_id == actor.id))


# Heads: their department; sales and service staff: their own customers and those shared with
# them; everyone else (admin, security): none.
customer_rule = ownership_rule(Customer.owner_id, Customer.department_id, _shared_with)


def scoped_customers(actor):
    """A select of the customers the actor may see."""
    return scoped(select(Customer), actor, Customer)


_WITH_OWNER = (joinedload(Customer.owner),)  # one tuple: get_or_404 builds the select once per role


def get_customer(customer_id, actor=None):
    """The customer if it is within the actor's remit, else 404 (as if it did not exist). Its
    owner comes in the same statement: every page of a customer names them."""
    return get_or_404(Customer, customer_id, actor, options=_WITH_OWNER)


def transaction_totals(customer_ids, since: date | None = None, kind="transaction"):
    """{customer_id: (count, amount sum)} of transaction records, optionally since a date.
    Voided records count nowhere; for kind "transaction" the sum is net of refunds (stored
    negative), the count is of the transactions alone."""
    from sqlalchemy import case
    kinds = (kind, "refund") if kind == "transaction" else (kind,)
    stmt = (select(Transaction.customer_id, func.count(case((Transaction.kind == kind, 1))),
                   func.coalesce(func.sum(Transaction.amount), 0))
            .where(Transaction.customer_id.in_(list(customer_ids)), Transaction.kind.in_(kinds),
                   Transaction.voided_at.is_(None))
            .group_by(Transaction.customer_id))
    if since is not None:
        stmt = stmt.where(Transaction.occurred_on >= since)
    return {cid: (count, total) for cid, count, total in db.session.execute(stmt)}


def masked_fields(customer, actor=None):
    """[(field name, label dict, display value)] of the customer's filled fields, L2/L3 masked.
    Used by the customer page and the PDF forms of other modules: never unmasked here."""
    rows = []
    for spec in FIELDS.values():
        if customer.kind not in spec.kinds:
            continue
        value = getattr(customer, spec.name)
        if value in (None, ""):
            continue
        if is_masked(customer, spec.name):  # L2/L3, and what derives from them (birth date)
            value = mask_value(spec.name, value)
        elif spec.name == "gender":
            value = pick(GENDERS.get(value, {"zh_CN": value, "en": value}))
        elif spec.name in ("phone", "phone2", "fax"):
            from core.api import validation
            value = validation.display_phone(value)
        rows.append((spec.name, spec.label, value))
    return rows


@dataclass
class TimelineEvent:
    """One line on a customer's timeline; modules return these from the customers.timeline hook."""

    at: object  # datetime (UTC) or date
    title: str
    module: str = "customers"
    detail: str = ""
    url: str | None = None
    extra: dict = field(default_factory=dict)


def search_filter(q, normalise):
    """The WHERE clause for /customers/?q=: customer number, company name (substring), or the
    exact name, phone or ID number through their blind indexes; also the exact name or phone of
    an organisation's contact. ``normalise`` maps a kind of value ("phone", "id_number", "name")
    to its canonical form, or None if q is not one. LIKE wildcards in q match only themselves."""
    from core.api import crypto

    from . import search
    q = q.strip()
    clauses = [Customer.number == q.upper(),
               search.company_name_clause(Customer, q, db.session.get_bind().dialect.name),
               Customer.credit_code == q.upper()]
    contact_clauses = []
    for kind, columns, contact_column in (
            ("name", [Customer.name_bidx], Contact.name_bidx),
            ("phone", [Customer.phone_bidx, Customer.phone2_bidx], Contact.phone_bidx),
            ("id_number", [Customer.id_number_bidx], None)):
        value = normalise(kind, q)
        if value:
            digests = crypto.blind_index_candidates(FIELDS[kind].search_domain, value)
            clauses += [col.in_(digests) for col in columns]
            if contact_column is not None:
                domain = CONTACT_FIELDS[kind].search_domain
                contact_digests = (digests if domain == FIELDS[kind].search_domain
                                   else crypto.blind_index_candidates(domain, value))
                contact_clauses.append(contact_column.in_(contact_digests))
    if contact_clauses:
        clauses.append(Customer.id.in_(select(Contact.customer_id).where(or_(*contact_clauses))))
    return or_(*clauses)


def customers_matching(kind, value):
    """Customers, company-wide and in id order, whose phone ("phone": either phone number) or ID
    number ("id_number") is ``value``, already normalised (``validation.phone`` /
    ``validation.id_number``). Matched through the blind indexes only: no customer's data is
    decrypted. No scope check: the caller decides what it may show of them."""
    from core.api import crypto
    if kind == "phone":
        digests = crypto.blind_index_candidates(FIELDS["phone"].search_domain, value)
        clause = or_(Customer.phone_bidx.in_(digests), Customer.phone2_bidx.in_(digests))
    elif kind == "id_number":
        clause = Customer.id_number_bidx.in_(crypto.blind_index_candidates(FIELDS["id_number"].search_domain, value))
    else:
        raise ValueError(f"customers_matching: kind {kind!r} is not phone or id_number")
    return list(db.session.scalars(select(Customer).where(clause).order_by(Customer.id)))


@dataclass
class Panel:
    """A box on the customer page; modules return these from the customers.panels hook.

    The page renders ``{% include panel.template %}`` inside the box titled ``title``; the
    template sees ``customer``, ``panel``, ``actor`` and ``context`` (= ``panel.context``), so
    it reads its values as ``context.grade``. Every string it shows goes through ``_()``."""

    title: str
    template: str
    context: dict = field(default_factory=dict)
    module: str = ""


@dataclass
class ListColumn:
    """An extra column of the customer list (customers.list_columns hook).

    ``values(rows) -> {customer_id: text}`` for the rows on the page, ``ListRow``s (``id``,
    ``number``, ``kind``, ``status``, ``owner_id``, ``department_id``; read as plain columns, not
    Customer objects); ``sort(stmt, descending)`` optionally orders the list's select by this column."""

    key: str
    label: str
    values: object
    sort: object = None


@dataclass
class ListFilter:
    """An extra filter of the customer list (customers.list_filters hook): query parameter
    ``param`` with ``choices`` [(value, label)]; ``apply(stmt, value) -> stmt``."""

    param: str
    label: str
    choices: list
    apply: object


@dataclass
class ExportGrant:
    """An approved request to export (or disclose) customers' data with L2/L3 fields unmasked,
    returned by the customers.export_grant hook. ``fields``: the field names the file carries
    (those of L2/L3 unmasked); ``customer_ids``: the customers (None: all in the actor's remit);
    ``purpose``: the consent purpose each customer must allow (None when the legal basis is not
    consent); ``watermark``: the first line of the file; ``produced(sha256, rows, skipped)``
    marks the request used (the file is produced once) and audits it."""

    number: str
    fields: tuple
    customer_ids: object
    purpose: object
    watermark: str
    produced: object
