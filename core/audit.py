"""The audit trail: append-only, hash-chained, one call for everything.

Each entry's ``hash`` is an HMAC (under the audit key of the keyring, which the database never
holds) over the previous entry's hash and the entry's canonical JSON. Editing, deleting,
inserting or reordering any row breaks the chain at that row; `kehu audit verify` names it.
Entries carry field names and ids, never personal values.
"""
from __future__ import annotations

import fcntl
import functools
import hmac
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from flask import current_app, g, has_app_context, has_request_context, request
from flask_login import current_user
from sqlalchemy import DDL, Index, event, or_, select, text
from sqlalchemy.orm import Session

from core.db import db, insert_rows, write_lock
from core.models import UTCDateTime, utcnow

GENESIS = "0" * 64

# action name -> AuditAction. Core's own below; modules declare theirs through the registrar.
_ACTIONS = {}

CORE_ACTIONS = {
    "core.access.denied": ("拒绝访问（无权限）", "Access refused (no permission)"),
    "core.access.row_denied": ("拒绝访问（超出范围的记录）", "Access refused (record out of remit)"),
    "core.audit.viewed": ("查看审计日志", "Audit trail viewed"),
    "core.audit.exported": ("导出审计日志", "Audit trail exported"),
    "core.audit.verified": ("校验审计链", "Audit chain verified"),
    "core.user.password_reset": ("重置密码", "Password reset"),
    "core.user.profile_changed": ("修改个人资料", "Profile changed"),
    "core.backup.created": ("创建备份", "Backup created"),
    "core.backup.restored": ("从备份恢复", "Restored from a backup"),
    "core.backup.test_restored": ("备份试恢复", "Backup test-restored"),
    "core.auth.failed": ("登录失败", "Sign-in failed"),
    "core.auth.failures_summarised": ("登录失败汇总", "Sign-in failures summarised"),
    "core.auth.signed_in": ("登录", "Signed in"),
    "core.auth.signed_out": ("退出登录", "Signed out"),
    "core.department.created": ("创建部门", "Department created"),
    "core.keys.rotated": ("轮换密钥", "Keys rotated"),
    "core.module.disabled": ("部门停用模块", "Module disabled for a department"),
    "core.module.enabled": ("部门启用模块", "Module enabled for a department"),
    "core.module.installed": ("安装模块", "Module installed"),
    "core.module.upgraded": ("升级模块", "Module upgraded"),
    "core.module.uninstalled": ("卸载模块", "Module uninstalled"),
    "core.module.purged": ("卸载模块并清除数据", "Module data purged"),
    "core.module.failed": ("模块操作失败", "Module operation failed"),
    "core.role.grants_changed": ("修改角色权限", "Role grants changed"),
    "core.user.created": ("创建用户", "User created"),
    "core.user.locked": ("账号锁定", "Account locked"),
    "core.user.password_changed": ("修改密码", "Password changed"),
    "core.user.updated": ("修改用户", "User updated"),
    "core.user.role_change_requested": ("申请变更角色（待确认）", "Role change requested"),
    "core.user.role_change_confirmed": ("确认角色变更", "Role change confirmed"),
    "core.user.role_change_refused": ("拒绝角色变更", "Role change refused"),
}


@dataclass(frozen=True)
class AuditTarget:
    """How the audit trail page shows and finds the rows of one table (the core.audit_targets
    hook): ``describe(ids) -> {id: text}`` names them for people (a customer number, not an id),
    ``find(text) -> [id]`` turns what a person types (a customer number) into ids to filter by."""

    target_type: str
    label: dict
    describe: Callable
    find: Callable


def declare(action):
    existing = _ACTIONS.get(action.name)
    if existing is not None and existing != action:
        from core.modules import ModuleError
        raise ModuleError(f"module {action.module}: audit action {action.name} declared twice differently")
    _ACTIONS[action.name] = action


def declared_actions():
    return dict(_ACTIONS)


def action_label(name):
    """The action's label in the user's language, or the name itself when nobody declared it."""
    from core.i18n import pick
    action = _ACTIONS.get(name)
    return pick(action.label) if action else name


def _declare_core():
    from core.modules import AuditAction
    for name, (zh, en) in CORE_ACTIONS.items():
        declare(AuditAction(name, {"zh_CN": zh, "en": en}))
MAX_DETAIL = 500  # characters of any single detail value; longer values are cut with a marker


class AuditEntry(db.Model):
    __tablename__ = "core_audit_entry"
    __table_args__ = (
        # an account's entries of one action since a time: the rate limits (reveals an hour,
        # duplicate probes) and the alert rules' windows. With actor_id alone every check read all
        # of the account's entries: 45 ms at 144,000, growing with the trail (an import adds two a
        # customer to the importing head's).
        Index("ix_core_audit_entry_actor_id_action_at", "actor_id", "action", "at"),
        {"sqlite_autoincrement": True},
    )

    id = db.Column(db.Integer, primary_key=True)
    at = db.Column(UTCDateTime, nullable=False, index=True)
    actor_id = db.Column(db.Integer, nullable=True, index=True)  # no FK: entries outlive users
    actor = db.Column(db.String(64), nullable=False, default="")
    role = db.Column(db.String(16), nullable=False, default="")
    department_id = db.Column(db.Integer, nullable=True)
    action = db.Column(db.String(100), nullable=False, index=True)
    result = db.Column(db.String(16), nullable=False, default="ok")
    target_type = db.Column(db.String(64), nullable=False, default="")
    target_id = db.Column(db.String(64), nullable=False, default="", index=True)
    details = db.Column(db.Text, nullable=False, default="{}")
    address = db.Column(db.String(64), nullable=False, default="")
    request_id = db.Column(db.String(32), nullable=False, default="")
    prev_hash = db.Column(db.String(64), nullable=False)
    hash = db.Column(db.String(64), nullable=False)

    @property
    def details_dict(self):
        return json.loads(self.details or "{}")

    def canonical(self):
        return canonical_of(self)


_CANONICAL_KEYS = ("id", "actor_id", "actor", "role", "department_id", "action", "result", "target_type",
                   "target_id", "details", "address", "request_id")


# json.dumps with these options builds a new encoder each call (a tenth of an import's audit)
_CANONICAL_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
_DETAILS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def canonical_of(entry):
    """What an entry's hash signs: its fields as canonical JSON (``entry`` an AuditEntry or an
    object with the same attributes)."""
    doc = {key: getattr(entry, key) for key in _CANONICAL_KEYS}
    doc["at"] = entry.at.isoformat(timespec="microseconds")
    return _CANONICAL_JSON.encode(doc)


_VARYING = ("id", "target_type", "target_id", "details")  # what differs between the entries of one append


def _canonical_for(shared):
    """``canonical(id, target_type, target_id, details)``: ``canonical_of`` for entries that share
    every other field (``shared``, "at" as the datetime), those encoded once. The same text as
    canonical_of (key order included), which ``verify`` recomputes for every entry."""
    encode = _CANONICAL_JSON.encode
    doc = {key: shared[key] for key in _CANONICAL_KEYS if key not in _VARYING}
    doc["at"] = shared["at"].isoformat(timespec="microseconds")
    pieces, order, text = [], [], "{"
    for n, key in enumerate(sorted([*doc, *_VARYING])):
        text += ("," if n else "") + encode(key) + ":"
        if key in _VARYING:
            pieces.append(text)
            order.append(_VARYING.index(key))
            text = ""
        else:
            text += encode(doc[key])
    tail = text + "}"

    def canonical(*values):
        return "".join([piece + encode(values[i]) for piece, i in zip(pieces, order, strict=True)]) + tail
    return canonical


# Append-only in the database itself: the application never updates or deletes an entry.
_NO_CHANGE = {
    "sqlite": [
        "CREATE TRIGGER core_audit_entry_no_update BEFORE UPDATE ON core_audit_entry "
        "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END",
        "CREATE TRIGGER core_audit_entry_no_delete BEFORE DELETE ON core_audit_entry "
        "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION core_audit_entry_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit entries are append-only'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER core_audit_entry_no_change BEFORE UPDATE OR DELETE ON core_audit_entry "
        "FOR EACH ROW EXECUTE FUNCTION core_audit_entry_append_only()",
    ],
}


def append_only_statements(dialect):
    return _NO_CHANGE.get(dialect, [])


for _dialect, _stmts in _NO_CHANGE.items():
    for _stmt in _stmts:
        event.listen(AuditEntry.__table__, "after_create", DDL(_stmt).execute_if(dialect=_dialect))


def _clean(value):
    """Encode control characters and cut long values so one action stays one readable entry."""
    if isinstance(value, str) and len(value) <= MAX_DETAIL and value.isprintable():
        return value  # nearly every value: an import's batch cleans tens of thousands
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value[:200]]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    value = str(value)
    if not value.isprintable():
        value = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in value)
    if len(value) > MAX_DETAIL:
        value = value[:MAX_DETAIL] + "…[truncated]"
    return value


def _signer():
    """``sign(prev_hash, canonical, entry id)``: HMAC-SHA256 or HMAC-SM3 under the audit key, as
    the key file says for the entry's id."""
    from core import crypto
    return crypto.audit_signer()


def _lock_chain(session):
    """Serialise chain appends: concurrent writers must not both extend the same head."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
    else:  # SQLite: the transaction takes the write lock before it reads the chain's head
        write_lock(session)


def request_id():
    if not has_request_context():
        return ""
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex
    return g.request_id


def record(action, *, target=None, target_type=None, target_id=None, actor=None, result="ok", **details):
    """Append one entry to the trail in the current transaction.

    A failure here propagates: the business change it describes is rolled back with it.
    ``target`` may be any model with an ``id``; its table name becomes the target type. Returns
    the entry's columns (``id``, ``hash``, ``at``, …) as attributes.
    """
    item = dict(details, target=target, target_type=target_type, target_id=target_id)
    return _append(action, [item], actor, result)[0]


def record_many(action, items, *, actor=None, result="ok"):
    """Append one entry of ``action`` per item, in order, in the current transaction: what ``record``
    does for each, with the chain's head read once and the entries written in one statement (an
    import's batch). ``items`` are dicts of ``record``'s keywords: ``target`` (or ``target_type``
    and ``target_id``) and the details. Returns how many were appended."""
    items = list(items)
    return len(_append(action, items, actor, result)) if items else 0


@functools.cache
def _chain_head():  # built once per process: every audited request reads it
    return select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)


def _append(action, items, actor, result):
    """Chain, sign and insert one entry per item after pending changes are flushed (the targets'
    ids), without ORM objects: an entry is a row, as ``verify`` reads it. Returns the rows."""
    if action not in _ACTIONS:
        raise LookupError(f"audit action {action!r} is not declared (reg.audit_actions)")
    if actor is None and has_request_context() and current_user and current_user.is_authenticated:
        actor = current_user._get_current_object()
    session = db.session
    session.flush()
    _lock_chain(session)
    last = session.execute(_chain_head()).first()
    prev_id, prev_hash = (last.id, last.hash) if last else (0, GENESIS)
    who = dict(actor_id=getattr(actor, "id", None),
               actor=(_clean(getattr(actor, "username", actor if isinstance(actor, str) else "")) or "")[:64],
               role=getattr(actor, "role", "") or "", department_id=getattr(actor, "department_id", None),
               address=(request.remote_addr or "") if has_request_context() else "cli", request_id=request_id())
    # the entries of one append share their moment: the rest of each is encoded once for all
    who.update(at=utcnow(), action=action, result=result)
    rows, sign, canonical = [], _signer(), _canonical_for(who)
    for item in items:
        details = dict(item)
        target = details.pop("target", None)
        target_type, target_id = details.pop("target_type", None), details.pop("target_id", None)
        if target is not None:
            target_type = target_type or target.__tablename__
            target_id = target.id if target_id is None else target_id
        row = SimpleNamespace(
            id=prev_id + 1, **who, target_type=target_type or "",
            target_id=str(target_id if target_id is not None else ""),
            details=_DETAILS_JSON.encode({k: _clean(v) for k, v in details.items()}), prev_hash=prev_hash)
        row.hash = sign(prev_hash, canonical(row.id, row.target_type, row.target_id, row.details), row.id)
        prev_id, prev_hash = row.id, row.hash
        rows.append(row)
    insert_rows(AuditEntry.__table__, [vars(row) for row in rows], session)  # bind processors looked up once
    if has_app_context():  # the checkpoint follows once the transaction commits
        session.info["kehu_audit_head"] = (prev_id, prev_hash, current_app.config.get("AUDIT_CHECKPOINT_FILE"))
    return rows


def count(action, *, actor=None, since=None):
    """How many entries of ``action`` (by ``actor``, at or after ``since``) the trail holds:
    for rate limits such as reveals per hour."""
    from sqlalchemy import func
    stmt = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor_id == actor.id)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    return db.session.scalar(stmt)


@dataclass(frozen=True)
class Entry:
    """One audit entry as read through ``entries``: what happened, by whom, to what. ``details``
    holds field names and ids, never personal values (as ``record`` wrote them)."""

    id: int
    at: object  # aware UTC datetime
    actor_id: int | None
    actor: str
    role: str
    action: str
    result: str
    target_type: str
    target_id: str
    details: dict
    address: str


def _like(pattern):
    """A name pattern where ``*`` stands for any text, as an SQL LIKE pattern (other wildcards
    match only themselves)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def entries(*, actor=None, actions=None, since=None, until=None, limit=200):
    """Read the trail, newest first: entries by ``actor`` (a user or a user id) whose action is one
    of ``actions`` (exact names or patterns with ``*``, e.g. ``"*.revealed"``), at or after
    ``since`` and before ``until`` (aware datetimes), at most ``limit`` of them (1..1000).

    Read-only: the caller checks who may read the trail and records that it did."""
    stmt = select(AuditEntry)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor_id == getattr(actor, "id", actor))
    if actions is not None:
        actions = list(actions)
        if not actions:
            return []
        clauses = [AuditEntry.action.like(_like(a), escape="\\") if "*" in a else AuditEntry.action == a
                   for a in actions]
        stmt = stmt.where(or_(*clauses))
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at < until)
    limit = max(1, min(int(limit), 1000))
    rows = db.session.execute(stmt.order_by(AuditEntry.id.desc()).limit(limit)).scalars()
    return [Entry(id=r.id, at=r.at, actor_id=r.actor_id, actor=r.actor, role=r.role, action=r.action,
                  result=r.result, target_type=r.target_type, target_id=r.target_id,
                  details=r.details_dict, address=r.address) for r in rows]


# --- the checkpoint: the chain's head kept outside the database ----------------------------------
#
# A hash chain alone cannot tell a cut tail from a shorter trail. After each commit that wrote
# entries, the newest (id, hash) is written, keyed with the audit key, to a file beside the
# instance's keys; verify compares the trail with it, so deleting the newest entries, all of them,
# or rebuilding the trail from a reset sequence is reported as broken.


def _checkpoint_mac(entry_id, entry_hash):
    from core import crypto
    return crypto.checkpoint_mac(entry_id, entry_hash)


CHECKPOINT_BYTES = 256  # the file's length: rewritten in place with one write


def _checkpoint_lock(path):
    return os.path.splitext(path)[0] + ".lock"


def read_checkpoint(path=None):
    """{"id", "hash", "at"} of the checkpoint file, None when there is none; ValueError when
    the file is not one kehu wrote under this audit key."""
    path = os.fspath(path or current_app.config["AUDIT_CHECKPOINT_FILE"])
    try:
        lock = os.open(_checkpoint_lock(path), os.O_RDONLY)
    except FileNotFoundError:  # never written
        lock = None
    try:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_SH)  # not half-way through a writer's rewrite
        return _read_checkpoint(path)
    finally:
        if lock is not None:
            os.close(lock)


def _read_checkpoint(path):
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        ok = hmac.compare_digest(data["mac"], _checkpoint_mac(int(data["id"]), data["hash"]))
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"the audit checkpoint {path} was altered or belongs to another key")
    return data


def _write_checkpoint(path, entry_id, entry_hash):
    """Rewrite the checkpoint, never with an older entry (processes commit out of order), under
    an exclusive lock that readers share. In place, one write of a fixed length: a temporary file
    and a rename cost a quarter to half a millisecond of every page that appends an entry (each
    customer page, each search). A write torn by a crash reads as altered (verify says so) until
    the next appending commit rewrites it."""
    path = os.fspath(path)
    lock = os.open(_checkpoint_lock(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the descriptor is closed
        try:
            current = _read_checkpoint(path)
        except ValueError:
            current = None  # an altered file is replaced by the truth; verify reports it until then
        if current is not None and int(current["id"]) >= entry_id:
            return
        doc = {"id": entry_id, "hash": entry_hash, "at": utcnow().isoformat(timespec="seconds"),
               "mac": _checkpoint_mac(entry_id, entry_hash)}
        data = json.dumps(doc).encode("utf-8").ljust(CHECKPOINT_BYTES - 1) + b"\n"
        out = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(out, data, 0)
            if os.fstat(out).st_size != len(data):  # a first write, or a file someone lengthened
                os.ftruncate(out, len(data))
        finally:
            os.close(out)
    finally:
        os.close(lock)


@event.listens_for(Session, "after_commit")
def _after_commit(session):
    head = session.info.pop("kehu_audit_head", None)
    if head is not None and head[2]:
        try:
            _write_checkpoint(head[2], head[0], head[1])
        except OSError as exc:  # the entries are committed; the next commit writes it again
            logging.getLogger("kehu.audit").error("cannot write the audit checkpoint: %s", exc)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session):
    session.info.pop("kehu_audit_head", None)


def verify(session=None, batch=5000, checkpoint=True):
    """Walk the chain in id order, then hold its end against the checkpoint. Returns (number of
    entries checked, first broken entry or None); a broken entry is reported as (id, reason)."""
    session = session or db.session
    prev_hash, prev_id, count, last_id = GENESIS, 0, 0, 0
    sign = _signer()
    while True:
        rows = session.execute(select(AuditEntry).where(AuditEntry.id > last_id)
                               .order_by(AuditEntry.id).limit(batch)).scalars().all()
        if not rows:
            return count, (_against_checkpoint(session, prev_id, prev_hash) if checkpoint else None)
        for entry in rows:
            if entry.id != prev_id + 1:
                return count, (entry.id, f"entries {prev_id + 1}..{entry.id - 1} are missing")
            if entry.prev_hash != prev_hash:
                return count, (entry.id, "does not follow the previous entry")
            if not hmac.compare_digest(entry.hash, sign(entry.prev_hash, entry.canonical(), entry.id)):
                return count, (entry.id, "was altered")
            prev_hash, prev_id, count = entry.hash, entry.id, count + 1
        last_id = rows[-1].id
        session.expire_all()


def _against_checkpoint(session, last_id, last_hash):
    try:
        mark = read_checkpoint()
    except ValueError as exc:
        return 0, str(exc)
    if mark is None:
        return None
    mark_id, mark_hash = int(mark["id"]), mark["hash"]
    if mark_id > last_id:
        return last_id + 1, (f"the trail ends at entry {last_id} but the checkpoint names entry {mark_id}: "
                             "the newest entries were removed")
    if mark_id == last_id:
        same = mark_hash == last_hash
    else:
        same = session.scalar(select(AuditEntry.hash).where(AuditEntry.id == mark_id)) == mark_hash
    return None if same else (mark_id, "differs from the checkpoint: the trail was rebuilt")


_declare_core()
