"""The hooks lifecycle offers, and its own contributions: the customer register's and the
archives' parts of a destruction (customers and archives need not know about lifecycle), the
replay after `kehu restore`, and the work queue."""
from __future__ import annotations

from sqlalchemy import inspect as sa_inspect

from core.api import HookSpec, WorkItem, audit, can, db, validation

SPECS = (
    HookSpec("lifecycle.destroy", "destroy(customer, actor) -> int",
             "The customer is being destroyed (retention or an approved deletion request), in the "
             "transaction that then destroys its data key: delete or null every personal value and "
             "blind index the module keeps on the customer, and return how many rows were touched. "
             "Files go after the commit: append their paths to db.session.info['lifecycle_files_to_remove']. "
             "Called for every module, enabled or not."),
    HookSpec("lifecycle.subject_data", "subject_data(customer) -> [Section]",
             "A data-subject copy request: every personal value the module holds on the customer, as "
             "sections (title, [(label, value)]) of plain text for the copy PDF. Called for every module."),
    HookSpec("lifecycle.review", "review(department, start, end) -> [(key, label, int)]",
             "The weekly review (客户信息梳理) of a department for [start, end) (UTC): the module's own "
             "figures, e.g. overdue complaints or follow-ups, grade changes, pending approvals. Called for "
             "the modules the department has enabled."),
)


def _null_encrypted(row) -> int:
    """Null every ``*_ct`` and ``*_bidx`` column of a row; 1 if anything was set."""
    touched = 0
    for column in sa_inspect(type(row)).columns:
        if column.key.endswith(("_ct", "_bidx")) and getattr(row, column.key) is not None:
            setattr(row, column.key, None)
            touched = 1
    return touched


def destroy_customer_part(customer, actor) -> int:
    """The customer register's part: the customer's, its contacts' and its records' encrypted
    fields and blind indexes nulled; contacts deleted. Public company data and numbers stay."""
    touched = _null_encrypted(customer)
    for contact in list(customer.contacts):
        db.session.delete(contact)
        touched += 1
    for tx in customer.transactions:
        touched += _null_encrypted(tx)
    customer.tags = ""
    db.session.flush()
    return touched


def destroy_archives_part(customer, actor) -> int:
    """The archives' part when archives is installed: every attachment deleted, its file removed
    after the commit."""
    if not sa_inspect(db.session.connection()).has_table("archives_attachment"):
        return 0
    import modules.archives as archives
    paths = archives.destroy_attachments(actor, customer)
    db.session.info.setdefault("lifecycle_files_to_remove", []).extend(paths)
    return len(paths)


def replay(entries) -> None:
    """core.destruction_replayed: a restored backup predates some destructions. Their keys are
    gone again; finish the rest (fields, blind indexes, files, tombstone) the same way."""
    from modules.customers import Customer

    from . import services
    from .models import Tombstone
    actor = "kehu restore"
    for entry in entries:
        table, _, row_id = str(entry.get("ref", "")).partition(":")
        if table != "customers_customer" or not row_id.isdigit():
            continue
        customer = db.session.get(Customer, int(row_id))
        if customer is None:
            continue
        counts = services.scrub(customer, actor)
        if not services.is_destroyed(customer.id):
            db.session.add(Tombstone(customer_id=customer.id, customer_number=customer.number, kind=customer.kind,
                                     status=customer.status, department_id=customer.department_id,
                                     policy="ledger", actor=actor))
        audit.record("lifecycle.replayed", target=customer, actor=actor, key_id=entry.get("key_id"),
                     parts=sorted(f"{k}={v}" for k, v in counts.items()))
    db.session.flush()
    services.finish_files()


def work_items(user):
    from flask import url_for
    from flask_babel import gettext as _

    from . import services
    if not can(user, "lifecycle.destroy"):
        return []
    ready = [d for d in services.due() if d.hold is None]
    return [WorkItem(label=_("Customers due for destruction"), count=len(ready), url=url_for("lifecycle.index"), level="warning")]


def _text(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        from core.api import to_local
        try:
            return to_local(value).strftime("%Y-%m-%d %H:%M")
        except (AttributeError, TypeError, ValueError):
            return value.isoformat()
    return str(value)


def subject_data_customers(customer):
    """The customer register's part of a copy: every filled personal field unmasked (it is the
    subject's own data), contacts, consents, transactions, and the timeline every module adds."""
    from core.api import hooks as core_hooks
    from core.api import pick
    from modules.customers import FIELDS, STATUSES

    from .requests import Section
    basic = Section(pick({"zh_CN": "客户基本信息", "en": "Customer"}), [
        (pick({"zh_CN": "客户编号", "en": "Number"}), customer.number),
        (pick({"zh_CN": "状态", "en": "Status"}), pick(STATUSES.get(customer.status, {"zh_CN": customer.status,
                                                                                        "en": customer.status})))])
    for column in ("company_name", "credit_code", "company_address", "industry"):
        if getattr(customer, column, None):
            basic.rows.append((column, getattr(customer, column)))
    for spec in FIELDS.values():
        if customer.kind in spec.kinds:
            value = getattr(customer, spec.name)
            if value not in (None, ""):
                if spec.name in ("phone", "phone2", "fax"):  # as people write it: 138 0013 8000
                    value = validation.display_phone(value)
                basic.rows.append((pick(spec.label), _text(value)))
    sections = [basic]
    contacts = [(c.title or "", " ".join(x for x in (c.name, validation.display_phone(c.phone), c.email) if x))
                for c in customer.contacts]
    if contacts:
        sections.append(Section(pick({"zh_CN": "联系人", "en": "Contacts"}), contacts))
    consents = [(_text(c.recorded_at) if hasattr(c, "recorded_at") else "", ", ".join(c.purpose_list))
                for c in customer.consents]
    if consents:
        sections.append(Section(pick({"zh_CN": "同意记录", "en": "Consents"}), consents))
    txs = [(tx.occurred_on.isoformat(), " ".join(x for x in (tx.kind, tx.product, str(tx.amount or ""), tx.notes or "") if x))
           for tx in customer.transactions]
    if txs:
        sections.append(Section(pick({"zh_CN": "交易与服务记录", "en": "Transactions"}), txs))
    # actor None: the customer's own copy holds every module's events, whoever prepares it
    for module, events in core_hooks.call("customers.timeline", customer, None, all_departments=True):
        rows = [(_text(e.at), " ".join(x for x in (e.title, e.detail) if x)) for e in events or []]
        if rows:
            sections.append(Section(pick({"zh_CN": "记录：", "en": "Records: "}) + module, rows))
    return sections


def subject_data_archives(customer):
    """The archives' part: each document with its attachments' names."""
    if not sa_inspect(db.session.connection()).has_table("archives_attachment"):
        return []
    import modules.archives as archives
    from core.api import crypto, pick

    from .requests import Section
    rows = []
    for doc in archives.documents_of(customer.id):
        names = []
        for att in getattr(doc, "attachments", []):
            try:
                names.append(att.filename)
            except crypto.DecryptionError:
                names.append("?")
        label = pick(archives.DOC_TYPES.get(doc.doc_type, {"zh_CN": doc.doc_type, "en": doc.doc_type}))
        rows.append((f"{doc.number} {label}", " ".join([doc.title, doc.doc_date.isoformat(), *names])))
    return [Section(pick({"zh_CN": "客户档案", "en": "Archives"}), rows)] if rows else []


def review_archives(department, start, end):
    """The archives' figures of the weekly review, when archives is installed: view/borrow
    requests waiting for the head, borrowed originals overdue."""
    if not sa_inspect(db.session.connection()).has_table("archives_request"):
        return []
    from sqlalchemy import func, select

    import modules.archives as archives
    from core.api import local_today, pick
    from modules.customers import Customer
    base = select(func.count()).select_from(archives.AccessRequest).join(
        Customer, Customer.id == archives.AccessRequest.customer_id).where(Customer.department_id == department.id)
    pending = db.session.scalar(base.where(archives.AccessRequest.status == "pending"))
    overdue = db.session.scalar(base.where(
        archives.AccessRequest.kind == "borrow", archives.AccessRequest.status == "approved",
        archives.AccessRequest.returned_at.is_(None), archives.AccessRequest.until < local_today()))
    return [("archive_requests_pending", pick({"zh_CN": "待审批的档案查阅借阅申请", "en": "Archive requests to decide"}), pending),
            ("archive_originals_overdue", pick({"zh_CN": "逾期未还的档案原件", "en": "Borrowed originals overdue"}), overdue)]
