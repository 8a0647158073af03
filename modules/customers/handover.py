"""Handover (离职移交): a department head gives everything a leaving employee holds to a colleague
of the same department in one audited action, then deactivates the leaver's account.

Other modules take part through the hook ``customers.handover(from_user, to_user, actor) -> int``
(rows they reassigned). Nothing is committed here: the caller commits the whole handover or none.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import and_, delete, func, select, update

from core.api import User, audit, can, db, deactivate_user, hooks

from .models import Customer, Share

# Customers move only between sales and service staff: a handover never deactivates (or hands
# customers to) an administrator, a head or the security officer, even one carrying a department.
STAFF_ROLES = ("sales", "service")
TARGET_ROLES = STAFF_ROLES


class HandoverError(ValueError):
    """A handover that may not happen; the message is shown to the head as it is."""


@dataclass
class HandoverResult:
    customers: int = 0
    shares_moved: int = 0
    shares_dropped: int = 0
    modules: dict = field(default_factory=dict)  # module -> rows it reassigned

    @property
    def other(self):
        return sum(self.modules.values())


def colleagues(actor):
    """The sales and service staff of the actor's department, by name, for the handover form."""
    return db.session.execute(select(User).where(User.department_id == actor.department_id,
                                                 User.role.in_(STAFF_ROLES))
                              .order_by(User.username)).scalars().all()


def customer_counts(department_id):
    """{owner id: customers owned} in a department."""
    return dict(db.session.execute(
        select(Customer.owner_id, func.count()).where(Customer.department_id == department_id)
        .group_by(Customer.owner_id)).all())


def check(actor, from_user, to_user):
    if not can(actor, "customers.handover"):
        raise HandoverError(_("You may not hand over customers."))
    if actor.department_id is None:
        raise HandoverError(_("Only a department head can hand over customers."))
    if from_user is None or to_user is None:
        raise HandoverError(_("Choose the leaving employee and the colleague who takes over."))
    if from_user.id == to_user.id:
        raise HandoverError(_("The leaving employee and the colleague must be different people."))
    if from_user.id == actor.id:
        raise HandoverError(_("You cannot hand over your own account; ask the administrator."))
    if from_user.department_id != actor.department_id or to_user.department_id != actor.department_id:
        raise HandoverError(_("Both employees must belong to your department."))
    if from_user.role not in STAFF_ROLES:
        raise HandoverError(_("Only the account of a sales or service employee can be handed over; "
                              "%(name)s is not one.", name=from_user.username))
    if not to_user.active:
        raise HandoverError(_("%(name)s is deactivated and cannot take over customers.",
                              name=to_user.username))
    if to_user.role not in TARGET_ROLES:
        raise HandoverError(_("%(name)s is not a sales or service employee and cannot take over customers.",
                              name=to_user.username))


def hand_over(actor, from_user, to_user):
    """Reassign the leaver's customers and shares in the actor's department, let other modules
    reassign theirs, deactivate the leaver (which ends their sessions) and audit it once."""
    check(actor, from_user, to_user)
    result = HandoverResult()
    dept = actor.department_id
    owned = select(Customer.id).where(Customer.owner_id == from_user.id, Customer.department_id == dept)
    result.customers = db.session.execute(
        update(Customer).where(Customer.id.in_(owned))
        .values(owner_id=to_user.id, version=Customer.version + 1)
        .execution_options(synchronize_session=False)).rowcount

    in_dept = select(Customer.id).where(Customer.department_id == dept)
    # A share the colleague already holds, or one on a customer the colleague now owns, is
    # redundant: drop it rather than move it (one share per customer and user).
    redundant = and_(Share.user_id == from_user.id, Share.customer_id.in_(in_dept), Share.customer_id.in_(
        select(Share.customer_id).where(Share.user_id == to_user.id).union(
            select(Customer.id).where(Customer.owner_id == to_user.id))))
    result.shares_dropped = db.session.execute(
        delete(Share).where(redundant).execution_options(synchronize_session=False)).rowcount
    result.shares_moved = db.session.execute(
        update(Share).where(Share.user_id == from_user.id, Share.customer_id.in_(in_dept))
        .values(user_id=to_user.id).execution_options(synchronize_session=False)).rowcount
    # The colleague's shares on what they now own are redundant too.
    result.shares_dropped += db.session.execute(
        delete(Share).where(Share.user_id == to_user.id, Share.customer_id.in_(
            select(Customer.id).where(Customer.owner_id == to_user.id)))
        .execution_options(synchronize_session=False)).rowcount
    db.session.expire_all()

    for module, count in hooks.call("customers.handover", from_user, to_user, actor, all_departments=True):
        result.modules[module] = int(count or 0)

    deactivate_user(actor, from_user)  # rotates the session token
    audit.record("customers.handover.completed", actor=actor, target=from_user, to_user=to_user.id,
                 to_username=to_user.username, customers=result.customers, shares_moved=result.shares_moved,
                 shares_dropped=result.shares_dropped, other=result.other, modules=sorted(
                     f"{m}={n}" for m, n in result.modules.items()))
    db.session.flush()
    return result
