"""The security self-check: what core can tell about the instance, plus what installed modules
contribute through the hook ``core.selfcheck``. The oversight module's page (安全自查) and
`kehu selfcheck` show the same list; the command exits 1 when a finding fails.

Thresholds are settings: SELFCHECK_DORMANT_DAYS (90), SELFCHECK_KEY_MAX_AGE_DAYS (365),
SELFCHECK_BACKUP_MAX_AGE_HOURS (36), SELFCHECK_RESTORE_TEST_DAYS (90)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import current_app, has_request_context, request
from flask_babel import gettext as _
from sqlalchemy import func, select

from core.db import db
from core.models import RoleGrant, User, utcnow

OK, WARNING, FAIL = "ok", "warning", "fail"
LEVELS = (FAIL, WARNING, OK)


@dataclass(frozen=True)
class Finding:
    """One line of the self-check: ``key`` names it for scripts (``core.backup``), ``title`` and
    ``detail`` say what was found, ``action`` what to do about it (empty when all is well);
    ``items`` lists what it is about (accounts, modules) for the page."""

    key: str
    title: str
    status: str
    detail: str
    action: str = ""
    items: tuple = field(default_factory=tuple)

    @property
    def module(self):
        return self.key.split(".", 1)[0]


def _setting(name, default):
    return current_app.config.get(f"SELFCHECK_{name}", default)


def _days(delta):
    return int(delta.total_seconds() // 86400)


def _last(action):
    from core.audit import AuditEntry
    return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id.desc()).limit(1)).scalar_one_or_none()


def dormant_accounts(now=None):
    """Active accounts without a sign-in for SELFCHECK_DORMANT_DAYS (never signed in: counted from
    their creation)."""
    from core.audit import AuditEntry
    now = now or utcnow()
    limit = timedelta(days=int(_setting("DORMANT_DAYS", 90)))
    last = dict(db.session.execute(select(AuditEntry.actor_id, func.max(AuditEntry.at)).where(
        AuditEntry.action == "core.auth.signed_in", AuditEntry.actor_id.is_not(None))
        .group_by(AuditEntry.actor_id)).all())
    found = []
    for user in db.session.execute(select(User).where(User.active.is_(True)).order_by(User.username)).scalars():
        seen = last.get(user.id) or user.created_at
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        if now - seen > limit:
            found.append((user, last.get(user.id)))
    return found


def _check_dormant():
    found = dormant_accounts()
    days = int(_setting("DORMANT_DAYS", 90))
    title = _("Dormant accounts")
    if not found:
        return Finding("core.dormant", title, OK, _("Every active account signed in within %(n)d days.", n=days))
    return Finding("core.dormant", title, FAIL,
                   _("%(count)d active accounts have not signed in for %(n)d days.", count=len(found), n=days),
                   _("Deactivate the accounts of people who left or no longer need kehu (Users)."),
                   tuple(u.username for u, _seen in found))


def grants_beyond_defaults():
    """[(role, permission, [usernames])] of grants a role holds that its module does not give it
    by default (for installed modules only)."""
    from core.access import declared, installed_modules
    perms, installed = declared(), installed_modules()
    found = []
    for grant in db.session.execute(select(RoleGrant).order_by(RoleGrant.role, RoleGrant.permission)).scalars():
        perm = perms.get(grant.permission)
        if perm is None or grant.permission.split(".", 1)[0] not in installed or grant.role in perm.roles:
            continue
        users = db.session.execute(select(User.username).where(User.role == grant.role, User.active.is_(True))
                                   .order_by(User.username)).scalars().all()
        if users:
            found.append((grant.role, grant.permission, users))
    return found


def _check_grants():
    found = grants_beyond_defaults()
    title = _("Grants beyond the role defaults")
    if not found:
        return Finding("core.grants", title, OK, _("Every role holds only its modules' default permissions."))
    return Finding("core.grants", title, WARNING,
                   _("%(count)d grants go beyond what the modules give the role by default.", count=len(found)),
                   _("Check each extra grant on Roles: remove it, or keep a written reason why the role needs it."),
                   tuple(f"{role}: {perm} ({', '.join(users)})" for role, perm, users in found))


def _check_keys(now):
    from core import crypto
    title = _("Master key")
    ring = crypto.keyring()
    if ring.rotation_pending:
        return Finding("core.keys", title, FAIL, _("A key rotation was started and did not finish."),
                       _("Run `kehu keys rotate` again to finish it, then back up the new key file."))
    rotated = _last("core.keys.rotated")
    since = rotated.at if rotated is not None else None
    if since is None and ring.path is not None and Path(ring.path).exists():
        since = datetime.fromtimestamp(Path(ring.path).stat().st_mtime, UTC)
    age = _days(now - since) if since else 0
    limit = int(_setting("KEY_MAX_AGE_DAYS", 365))
    last = (_("last rotated %(days)d days ago", days=_days(now - rotated.at)) if rotated is not None
            else _("never rotated"))
    detail = _("The master key is %(age)d days old (%(last)s).", age=age, last=last)
    if age > limit:
        return Finding("core.keys", title, WARNING, detail,
                       _("Rotate the keys with `kehu keys rotate` (at least every %(n)d days) and back up the new key file.",
                         n=limit))
    return Finding("core.keys", title, OK, detail)


def _check_suite():
    """The cipher suite in use (an unfinished move to another one shows under the master key)."""
    from core import crypto
    return Finding("core.suite", _("Cipher suite"), OK,
                   _("Fields, files, blind indexes and the audit chain use %(suite)s.", suite=crypto.suite().label))


def _check_backup(now):
    title = _("Backups")
    made = _last("core.backup.created")
    hours = int(_setting("BACKUP_MAX_AGE_HOURS", 36))
    if made is None:
        return Finding("core.backup", title, FAIL, _("No backup was ever made on this instance."),
                       _("Schedule `kehu backup` nightly from cron (see README, Backup and restore)."))
    age = now - made.at
    detail = _("The last backup is %(hours)d hours old.", hours=int(age.total_seconds() // 3600))
    if age > timedelta(hours=hours):
        return Finding("core.backup", title, FAIL, detail,
                       _("Check the nightly `kehu backup` cron job; a backup older than %(n)d hours is too old.",
                         n=hours))
    return Finding("core.backup", title, OK, detail)


def _check_restore_test(now):
    title = _("Backup test-restore")
    tested = _last("core.backup.test_restored")
    days = int(_setting("RESTORE_TEST_DAYS", 90))
    action = _("Test-restore a recent backup with `kehu restore --test FILE` (at least every %(n)d days).", n=days)
    if tested is None:
        return Finding("core.restore_test", title, WARNING, _("No backup was ever test-restored."), action)
    detail = _("The last test-restore was %(days)d days ago (backup of %(made)s UTC).",
               days=_days(now - tested.at), made=tested.details_dict.get("created_at", "?"))
    if now - tested.at > timedelta(days=days):
        return Finding("core.restore_test", title, WARNING, detail, action)
    return Finding("core.restore_test", title, OK, detail)


def _check_audit():
    from core import audit
    title = _("Audit chain")
    count, broken = audit.verify()
    if broken:
        return Finding("core.audit", title, FAIL,
                       _("The chain is broken at entry %(id)s: %(reason)s.", id=broken[0], reason=broken[1]),
                       _("Treat it as a security incident: keep the database and its backups as they are and "
                         "compare them with the last backup to find what was changed."))
    return Finding("core.audit", title, OK, _("The chain is intact (%(n)d entries).", n=count))


def _check_modules():
    from core import lifecycle
    title = _("Module upgrades")
    waiting = [(name, s) for name, s in lifecycle.statuses().items()
               if s.state in (lifecycle.TO_UPGRADE, lifecycle.MISSING)]
    if not waiting:
        return Finding("core.modules", title, OK, _("Every installed module runs its installed version."))
    return Finding("core.modules", title, WARNING,
                   _("%(n)d modules wait for an upgrade or their code is missing.", n=len(waiting)),
                   _("Upgrade them on Modules (or `kehu modules upgrade NAME`); restore the code of missing ones."),
                   tuple(f"{name} ({s.label})" for name, s in waiting))


def _check_pdf():
    from core import pdf
    title = _("PDF printing")
    warnings = pdf.check()
    if not warnings:
        return Finding("core.pdf", title, OK, _("WeasyPrint, the Chinese fonts and the font subsetter are in place."))
    return Finding("core.pdf", title, WARNING, _("Printed forms may fail, print Chinese as empty boxes or print slowly."),
                   _("Do what each item says, then restart kehu."), tuple(warnings))


def _check_https():
    cfg = current_app.config
    title = _("HTTPS and session cookie")
    if not cfg.get("SESSION_COOKIE_HTTPONLY", True) or cfg.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
        return Finding("core.https", title, FAIL, _("The session cookie may be read by scripts or sent by other sites."),
                       _("Keep SESSION_COOKIE_HTTPONLY on and SESSION_COOKIE_SAMESITE at Lax."))
    secure = bool(cfg.get("SESSION_COOKIE_SECURE")) or (has_request_context() and request.is_secure)
    if secure:
        return Finding("core.https", title, OK, _("Served over HTTPS: the session cookie is marked Secure."))
    if cfg.get("TRUSTED_PROXIES") and not has_request_context():
        return Finding("core.https", title, OK,
                       _("Behind the trusted proxies %(proxies)s: the cookie is marked Secure on HTTPS requests.",
                         proxies=", ".join(cfg["TRUSTED_PROXIES"])))
    return Finding("core.https", title, WARNING, _("kehu is reached over plain HTTP: the session cookie is not marked Secure."),
                   _("Serve kehu only behind HTTPS; name a TLS-terminating proxy in KEHU_TRUSTED_PROXIES (README, Configuration)."))


def run(now=None):
    """Every finding, core's first, then each installed module's (hook core.selfcheck)."""
    from core import hooks
    now = now or utcnow()
    findings = [_check_dormant(), _check_grants(), _check_keys(now), _check_suite(), _check_backup(now),
                _check_restore_test(now), _check_audit(), _check_modules(), _check_https(), _check_pdf()]
    for _module, func_ in hooks.for_installed("core.selfcheck"):
        findings.extend(func_() or ())
    return findings


def failed(findings):
    return [f for f in findings if f.status == FAIL]
