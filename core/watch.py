"""Watching the audit trail as it grows, without touching how entries are appended.

After a request whose transaction committed audit entries, core calls the hook
``core.audit_appended(last_id)`` of every installed module in a fresh transaction (the oversight
module's anomaly alerts read from there). The entries are noticed by listening to the session —
ORM objects flushed, or the head the audit trail notes for its checkpoint — so the append path
in ``core.audit`` stays as it is. Commands outside a request (cron) read the same feed from the
last entry a module has seen, through ``after``.

``after`` and ``window`` read the trail oldest first, for rules that look at what happened in a
stretch of time (the public API offers them as ``audit_feed.after`` and ``audit_feed.window``).
"""
from __future__ import annotations

import logging

from flask import g, has_app_context
from sqlalchemy import event, func, or_, select
from sqlalchemy.orm import Session

from core.audit import AuditEntry, Entry, _like
from core.db import db

log = logging.getLogger("kehu.watch")
_KEY = "kehu_watch_head"


def _note(session, entry_id):
    if entry_id is not None:
        session.info[_KEY] = max(session.info.get(_KEY) or 0, int(entry_id))


@event.listens_for(Session, "after_flush")
def _after_flush(session, _context):
    for obj in session.new:
        if isinstance(obj, AuditEntry):
            _note(session, obj.id)


@event.listens_for(Session, "before_commit")
def _before_commit(session):
    head = session.info.get("kehu_audit_head")  # what core.audit keeps for its checkpoint
    if head:
        _note(session, head[0])


@event.listens_for(Session, "after_commit")
def _after_commit(session):
    last = session.info.pop(_KEY, None)
    if last is not None and has_app_context():
        g.kehu_audit_committed = max(g.get("kehu_audit_committed") or 0, last)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session):
    session.info.pop(_KEY, None)


def notify(last_id):
    """Call ``core.audit_appended`` of every installed module, each in its own transaction."""
    from core import hooks
    for module, func_ in hooks.for_installed("core.audit_appended"):
        try:
            func_(last_id)
            db.session.commit()
        except Exception:  # the user's change is committed; the cron run catches up later
            db.session.rollback()
            log.exception("core.audit_appended of module %s failed", module)


def _after_request(response):
    last = g.pop("kehu_audit_committed", None)
    if last is not None:
        notify(last)
        g.pop("kehu_audit_committed", None)  # what the hooks themselves wrote waits for the next time
    return response


def init_app(app):
    app.after_request(_after_request)


# --- reading the trail oldest first ---------------------------------------------------------------

def _entry(r):
    return Entry(id=r.id, at=r.at, actor_id=r.actor_id, actor=r.actor, role=r.role, action=r.action,
                 result=r.result, target_type=r.target_type, target_id=r.target_id,
                 details=r.details_dict, address=r.address)


def head_id():
    """The id of the newest entry, 0 for an empty trail."""
    return db.session.scalar(select(func.max(AuditEntry.id))) or 0


def after(last_id, limit=1000, *, actions=None, until_id=None):
    """Entries with an id above ``last_id`` (and at most ``until_id``), oldest first, at most
    ``limit`` (1..5000); only those of ``actions`` (names or ``*`` patterns) when given.

    A rule that reads only some actions passes them, and moves its cursor to ``until_id`` (read
    with ``head_id`` first) when fewer than ``limit`` came back: ids become visible in order (the
    trail is appended under one lock), so every entry up to that head has been seen. After a bulk
    import of thousands of entries it skips them in the database instead of decoding each."""
    limit = max(1, min(int(limit), 5000))
    stmt = select(AuditEntry).where(AuditEntry.id > last_id)
    if until_id is not None:
        stmt = stmt.where(AuditEntry.id <= until_id)
    if actions is not None:
        stmt = _of_actions(stmt, actions)
        if stmt is None:
            return []
    rows = db.session.execute(stmt.order_by(AuditEntry.id).limit(limit)).scalars()
    return [_entry(r) for r in rows]


def _of_actions(stmt, actions):
    """``stmt`` limited to entries of ``actions`` (names or ``*`` patterns); None for no actions."""
    actions = list(actions)
    if not actions:
        return None
    return stmt.where(or_(*[AuditEntry.action.like(_like(a), escape="\\") if "*" in a
                            else AuditEntry.action == a for a in actions]))


def window(*, actions=None, since=None, until=None, actor_id=None, actor_name=None, target_type=None,
           target_id=None, limit=1000):
    """Entries oldest first matching every filter given: ``actions`` (names or ``*`` patterns),
    ``since`` <= at <= ``until``, the acting account's id or name, the target."""
    stmt = select(AuditEntry)
    if actions is not None:
        stmt = _of_actions(stmt, actions)
        if stmt is None:
            return []
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at <= until)
    if actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == actor_id)
    if actor_name is not None:
        stmt = stmt.where(AuditEntry.actor == actor_name)
    if target_type is not None:
        stmt = stmt.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        stmt = stmt.where(AuditEntry.target_id == str(target_id))
    limit = max(1, min(int(limit), 5000))
    rows = db.session.execute(stmt.order_by(AuditEntry.id.desc()).limit(limit)).scalars().all()
    return [_entry(r) for r in reversed(rows)]
