"""The destruction ledger: which data keys were destroyed, kept outside the database.

A backup taken before a customer was destroyed still holds that customer's wrapped data key. The
ledger is a file beside the master key file (``destruction.ledger``), one JSON line per event,
each keyed with the audit key so a forged or edited line is noticed: ``kehu restore`` deletes every
data key the ledger names before the restored instance serves anything, so a destroyed customer
stays unreadable however old the backup. It names key ids and an opaque reference (table and row
id), never a personal value.

A line is written *before* the transaction that deletes the key commits ("destroyed"), and a
"cancelled" line follows if that transaction rolls back: a crash in between errs on the side of
destruction, which was what had been asked for.
"""
from __future__ import annotations

import fcntl
import hmac
import json
import os
from pathlib import Path

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.models import utcnow

FILE_NAME = "destruction.ledger"


class LedgerError(RuntimeError):
    """The ledger file holds a line kehu did not write under this audit key."""


def path(app=None) -> Path:
    app = app or current_app
    configured = app.config.get("DESTRUCTION_LEDGER_FILE")
    return Path(configured) if configured else Path(app.config["MASTER_KEY_FILE"]).parent / FILE_NAME


def _mac(doc) -> str:
    """HMAC-SHA256, or HMAC-SM3 for a line written under the national suite (it says so; lines
    that name no suite are from before the suites existed)."""
    from core import crypto
    suite = doc.get("suite", "aes")
    if suite not in crypto.SUITES:
        raise ValueError(f"unknown cipher suite {suite!r}")
    body = json.dumps({k: v for k, v in doc.items() if k != "mac"}, sort_keys=True, separators=(",", ":"))
    return crypto.audit_key_mac(("ledger|" + body).encode(), suite)


def _append(lines, target=None) -> None:
    target = target or path()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        fcntl.flock(out, fcntl.LOCK_EX)
        for doc in lines:
            doc = dict(doc)
            if "suite" not in doc:
                from core import crypto
                doc["suite"] = crypto.suite().name
            doc["mac"] = _mac(doc)
            out.write(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())


def record_destroyed(session, key_id: int, ref: str = "") -> None:
    """Write ahead that data key ``key_id`` is being destroyed in ``session``'s transaction."""
    doc = {"event": "destroyed", "key_id": int(key_id), "ref": ref,
           "at": utcnow().isoformat(timespec="seconds")}
    _append([doc])
    session.info.setdefault("kehu_ledger_pending", []).append(doc)


def read(source=None) -> list[dict]:
    """The ledger's lines in order; LedgerError on a line kehu did not write under this key."""
    source = Path(source) if source is not None else path()
    if not source.exists():
        return []
    entries = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            ok = isinstance(doc, dict) and hmac.compare_digest(str(doc.get("mac", "")), _mac(doc))
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise LedgerError(f"destruction ledger {source} line {number} was altered or belongs to another key")
        entries.append(doc)
    return entries


def destroyed_keys(entries) -> dict[int, dict]:
    """{key id: its "destroyed" line} for the keys destroyed and not cancelled, in ledger order."""
    keys = {}
    for doc in entries:
        if doc.get("event") == "destroyed":
            keys[int(doc["key_id"])] = doc
        elif doc.get("event") == "cancelled":
            keys.pop(int(doc["key_id"]), None)
    return keys


def merge(target, *sources) -> None:
    """Append to ``target`` the lines of ``sources`` it does not hold yet (same event, key, time)."""
    have = {(d["event"], d["key_id"], d["at"]) for d in read(target)}
    new = []
    for entries in sources:
        for doc in entries:
            key = (doc["event"], doc["key_id"], doc["at"])
            if key not in have:
                have.add(key)
                new.append({k: v for k, v in doc.items() if k != "mac"})
    if new:
        _append(new, Path(target))


@event.listens_for(Session, "after_commit")
def _committed(session):
    session.info.pop("kehu_ledger_pending", None)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session):
    pending = session.info.pop("kehu_ledger_pending", None)
    if pending:
        _append([{**{k: v for k, v in doc.items() if k != "mac"}, "event": "cancelled",
                  "at": utcnow().isoformat(timespec="seconds")} for doc in pending])
