"""The hooks lifecycle offers, and its own contributions: the customer register's and the
archives' parts of a destruction (customers and archives need not know about lifecycle), the
replay after `kehu restore`, and the work queue."""
from __future__ import annotations

from sqlalchemy import inspect as sa_inspect

from core.api import HookSpec, WorkItem, audit, can, db

SPECS = (
    HookSpec("lifecycle.destroy", "destroy(customer, actor) -> int",
             "The customer is being destroyed (retention or an approved deletion request), in the "
             "transaction that then destroys its data key: delete or null every personal value and "
             "blind index the module keeps on the customer, and return how many rows were touched. "
             "Files go after the commit: append their paths to db.session.info['lifecycle_files_to_remove']. "
             "Called for every module, enabled or not."),
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
