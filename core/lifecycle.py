"""The lifecycle of a module, after Odoo's module states, and the one way kehu runs Alembic.

A module's state comes from its code and its ModuleState row:

- ``installed``: the code is here and its manifest version is the stored one;
- ``to upgrade``: the manifest version is newer than the stored one (`kehu modules upgrade`);
- ``missing``: a ModuleState row exists but neither modules/ nor an entry point provides the
  module any more; its tables stay until `kehu modules uninstall NAME --purge` forgets it;
- ``not installed``: the code is here, no row.

Every schema change runs inside the session's transaction, together with the bookkeeping that goes
with it (module state, grants, audit entries): a failing migration rolls all of it back and leaves
one ``core.module.failed`` entry and one line for the user.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from alembic import command
from alembic.script import ScriptDirectory
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, inspect, select, table, text

from core import access, audit, enablement
from core.db import db
from core.models import ModuleEnablement, ModuleState, RoleGrant
from core.services import ServiceError

INSTALLED, TO_UPGRADE, MISSING, NOT_INSTALLED = "installed", "to upgrade", "missing", "not installed"
STATE_LABELS = {INSTALLED: _l("Installed"), TO_UPGRADE: _l("To upgrade"), MISSING: _l("Code missing"),
                NOT_INSTALLED: _l("Not installed")}


def version_key(version):
    """Versions compare numerically (1.10.0 is newer than 1.9.0); 1.0 is 1.0.0."""
    parts = [int(part) for part in str(version).split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


@dataclass(frozen=True)
class Status:
    name: str
    state: str
    info: object = None  # the ModuleInfo; None when the code is missing
    stored: str | None = None  # the version in ModuleState; None when not installed

    @property
    def label(self):
        return STATE_LABELS[self.state]

    @property
    def installed(self):
        return self.state in (INSTALLED, TO_UPGRADE)


def statuses():
    """{name: Status}: the modules the code provides in load order, then the missing ones by name."""
    infos = current_app.extensions["kehu.modules"]
    stored = dict(db.session.execute(select(ModuleState.name, ModuleState.version)).all())
    found = {}
    for name, info in infos.items():
        if name not in stored:
            state = NOT_INSTALLED
        elif version_key(info.manifest.version) > version_key(stored[name]):
            state = TO_UPGRADE
        else:
            state = INSTALLED
        found[name] = Status(name, state, info, stored.get(name))
    if current_app.extensions.get("kehu.modules_loaded"):  # in safe mode no code is loaded at all
        for name in sorted(set(stored) - set(infos)):
            found[name] = Status(name, MISSING, None, stored[name])
    return found


def status(name):
    found = statuses().get(name)
    if found is None:
        raise ServiceError(_("No module named %(name)s.", name=name))
    return found


def _runs_migrations(info):
    return current_app.config.get("RUN_MIGRATIONS", True) and info.contributions["migrations"]


def table_names():
    return set(inspect(db.session.connection()).get_table_names())


def row_counts(tables):
    """{table: rows} for those of ``tables`` the database holds."""
    present = table_names()
    return {name: db.session.execute(select(func.count()).select_from(table(name))).scalar_one()
            for name in sorted(tables) if name in present}


def leftover_tables(name):
    """The tables a missing module left, found in the database by its name (its code is gone)."""
    from core.modules import owned_tables
    return owned_tables(name, [*current_app.extensions["kehu.modules"], name], table_names())


# --- upgrade ---------------------------------------------------------------------------------------

def upgrade_module(actor, name):
    """Run the module's new migrations, store its new version and grant the default roles the
    permissions new in this version. Dependencies that are to upgrade go first. Returns
    [(name, from version, to version)]; the caller commits."""
    found = status(name)
    if found.state != TO_UPGRADE:
        raise ServiceError(_("Module %(name)s has nothing to upgrade (state: %(state)s).",
                             name=name, state=found.label))
    done = []
    for dep in found.info.manifest.depends:
        if status(dep).state == TO_UPGRADE:
            done += upgrade_module(actor, dep)
    new = found.info.manifest.version
    if _runs_migrations(found.info):
        run_or_fail(actor, name, "upgrade", f"{name}@head")
    db.session.get(ModuleState, name).version = new
    granted = grant_new_permissions(found.info)
    audit.record("core.module.upgraded", actor=actor, target_type="module", target_id=name,
                 from_version=found.stored, to_version=new, granted=granted)
    db.session.flush()
    return done + [(name, found.stored, new)]


def grant_new_permissions(info):
    """Give the default roles each permission of the module that no role holds yet: one new in
    this version. Grants of the others stay as the administrator left them, so a permission taken
    from some roles is not handed back (one taken from every role would count as new)."""
    held = set(db.session.execute(select(RoleGrant.permission).distinct()).scalars())
    declared = access.declared()
    granted = []
    for name in info.contributions["permissions"]:
        if name in held:
            continue
        for role in declared[name].roles:
            db.session.add(RoleGrant(role=role, permission=name))
            granted.append(f"{role}:{name}")
    return granted


# --- uninstall -------------------------------------------------------------------------------------

@dataclass
class UninstallPlan:
    """What uninstalling a module would do: for the CLI's question and the confirmation page."""

    status: Status
    counts: dict = field(default_factory=dict)  # its tables in the database: {table: rows}
    refusal: str | None = None  # why it cannot be uninstalled, when it cannot

    @property
    def rows(self):
        return sum(self.counts.values())


def uninstall_plan(name):
    found = status(name)
    if found.state == NOT_INSTALLED:
        return UninstallPlan(found, refusal=_("Module %(name)s is not installed.", name=name))
    if found.state == MISSING:
        return UninstallPlan(found, row_counts(leftover_tables(name)))
    if found.info.manifest.required:
        return UninstallPlan(found, refusal=_("Module %(name)s is required and cannot be uninstalled.",
                                              name=name))
    dependants = [other.name for other in statuses().values()
                  if other.installed and name in other.info.manifest.depends]
    if dependants:
        return UninstallPlan(found, refusal=_("Module %(name)s is needed by %(others)s: uninstall those first.",
                                              name=name, others=", ".join(dependants)))
    # a missing module's manifest is gone, but its foreign keys to this module's tables are not
    referencing = referencing_tables(found.info.contributions["tables"])
    if referencing:
        return UninstallPlan(found, refusal=_("Tables of other modules refer to those of %(name)s: %(tables)s.",
                                              name=name, tables=", ".join(referencing)))
    return UninstallPlan(found, row_counts(found.info.contributions["tables"]))


def referencing_tables(tables):
    """The tables outside ``tables`` that have a foreign key to one of them."""
    own = set(tables)
    inspector = inspect(db.session.connection())
    return sorted(other for other in inspector.get_table_names() if other not in own
                  and any(fk["referred_table"] in own for fk in inspector.get_foreign_keys(other)))


@dataclass
class Uninstalled:
    name: str
    purged: dict  # {table: rows} deleted
    kept: list  # the tables a missing module left in the database


def check_uninstall(name, purge=False):
    """The plan, or ServiceError saying why the module cannot be uninstalled (with ``purge``)."""
    plan = uninstall_plan(name)
    if plan.refusal:
        raise ServiceError(plan.refusal)
    if plan.status.state == MISSING and not purge:
        raise ServiceError(_("Module %(name)s is missing (its code is gone), so its migrations cannot "
                             "run; purge it to forget it, its tables stay.", name=name))
    if plan.status.state != MISSING and plan.rows and not purge:
        raise ServiceError(_("Module %(name)s holds data (%(counts)s); purge it to delete the data with "
                             "the module.", name=name, counts=counts_text(plan.counts)))
    return plan


def uninstall_module(actor, name, purge=False):
    """Run the module's downgrades (dropping its tables), then forget its state, its department
    enablements and its grants. Data in its tables needs ``purge``. A missing module has no
    downgrades left to run: ``purge`` forgets it and its tables stay. The caller commits."""
    plan = check_uninstall(name, purge)
    if plan.status.state == MISSING:
        _forget(name)
        audit.record("core.module.uninstalled", actor=actor, target_type="module", target_id=name,
                     version=plan.status.stored, missing=True, tables_kept=sorted(plan.counts))
        db.session.flush()
        return Uninstalled(name, {}, sorted(plan.counts))
    if plan.rows:  # counts only: what was deleted, never what it said
        audit.record("core.module.purged", actor=actor, target_type="module", target_id=name,
                     rows=[f"{t}={n}" for t, n in plan.counts.items()])
    if _runs_migrations(plan.status.info):
        run_or_fail(actor, name, "uninstall", f"{name}@base", downgrade=True)
    else:  # tables made by create_all (the tests): empty them, children first
        for tbl in reversed(db.metadata.sorted_tables):
            if tbl.name in plan.counts:
                db.session.execute(tbl.delete())
    _forget(name)
    audit.record("core.module.uninstalled", actor=actor, target_type="module", target_id=name,
                 version=plan.status.stored, purged=bool(plan.rows))
    db.session.flush()
    return Uninstalled(name, {t: n for t, n in plan.counts.items() if n}, [])


def counts_text(counts):
    """"lifemod_item: 2, lifemod_tag: 1": the tables that hold rows."""
    return ", ".join(f"{t}: {n}" for t, n in counts.items() if n)


def _forget(name):
    db.session.execute(delete(ModuleEnablement).where(ModuleEnablement.module == name))
    db.session.execute(delete(RoleGrant).where(RoleGrant.permission.startswith(name + ".", autoescape=True)))
    db.session.execute(delete(ModuleState).where(ModuleState.name == name))
    enablement.changed()


# --- running Alembic ---------------------------------------------------------------------------------

def run_or_fail(actor, name, operation, target, downgrade=False):
    """Migrate, or roll the whole transaction back, audit the failure and refuse in one line."""
    try:
        migrate(target, downgrade=downgrade)
    except Exception as exc:  # a module's migration may raise anything: one line, never a traceback
        db.session.rollback()
        first = (str(exc).strip().splitlines() or [""])[0].strip()
        error = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        audit.record("core.module.failed", actor=actor, target_type="module", target_id=name,
                     result="failed", module=name, operation=operation, error=error)
        db.session.commit()
        messages = {
            "install": _("Installing %(name)s failed and changed nothing: %(error)s", name=name, error=error),
            "upgrade": _("Upgrading %(name)s failed and changed nothing: %(error)s", name=name, error=error),
            "uninstall": _("Uninstalling %(name)s failed and changed nothing: %(error)s", name=name, error=error),
        }
        raise ServiceError(messages[operation]) from exc


def script_directory():
    return ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())


def migrate(target, *, downgrade=False):
    """Run Alembic to ``target`` ("core@head", "grading@head", "grading@base", "heads") on the
    session's connection, inside the session's transaction; the caller commits.

    A missing module's revisions stay in alembic_version (its tables are still there), but Alembic
    stops at a revision it cannot locate. So they are taken out for the run and put back after it,
    in the same transaction."""
    config = current_app.extensions["migrate"].migrate.get_config()
    script = ScriptDirectory.from_config(config)
    connection = db.session.connection()
    stored = _stored_revisions(connection)
    known = {rev.revision for rev in script.walk_revisions()}
    hidden = [rev for rev in stored if rev not in known]
    effective = _effective_revisions(script, [rev for rev in stored if rev in known], hidden)
    if sorted(effective) != sorted(stored):
        _write_revisions(connection, effective)
    config.attributes["connection"] = connection  # migrations/env.py runs on it
    if downgrade:
        command.downgrade(config, target)
    else:
        command.upgrade(config, target)
    if hidden:
        after = _stored_revisions(connection)
        _write_revisions(connection, after + [rev for rev in hidden if rev not in after])


def _effective_revisions(script, rows, hidden):
    """The alembic_version rows to run with, all of them revisions the code knows.

    Alembic keeps only the newest revision of what depends on what: applying lifemod_0001, which
    depends on customers_0001, replaces the customers_0001 row. Taking a missing module's row out
    may therefore also hide that its dependencies ran; they are put back from what kehu knows.
    kehu migrates a module to its head in the transaction that stores its version, so a module
    whose stored version is its code's version is at its head. Of anything else (core, a module to
    upgrade) only the base revision is sure: Alembic may then try a migration again, which fails
    and changes nothing, but it never skips one."""
    rows = list(rows)
    if hidden:
        applied = _closure(script, rows)

        def vouch(revision):
            rows.append(revision)
            applied.update(_closure(script, [revision]))

        for found in reversed(list(statuses().values())):  # dependants first: they imply the rest
            if not found.installed or not found.info.contributions["migrations"]:
                continue
            head, base, members = _lineage(script, found.name)
            if found.state == INSTALLED and head not in applied:
                vouch(head)
            elif not members & applied:
                vouch(base)
        head, base, members = _lineage(script, "core")
        if not members & applied:
            vouch(base)
    return _heads(script, rows)


def _closure(script, revisions):
    """The revisions ``revisions`` imply, themselves included, through down_revision and depends_on."""
    return {rev.revision for revision in revisions for rev in script.iterate_revisions(revision, "base")}


def _heads(script, revisions):
    """Drop each revision another one implies: Alembic refuses rows that overlap."""
    revisions = list(dict.fromkeys(revisions))
    below = set()
    for revision in revisions:
        below |= _closure(script, [revision]) - {revision}
    return [rev for rev in revisions if rev not in below]


def _lineage(script, label):
    """(head, base, all revisions) of one branch, along down_revision only: depends_on leads
    into other branches."""
    head = script.get_revision(f"{label}@head").revision
    members, todo, base = set(), [head], None
    while todo:
        rev = script.get_revision(todo.pop())
        if rev.revision in members:
            continue
        members.add(rev.revision)
        downs = (rev.down_revision,) if isinstance(rev.down_revision, str) else tuple(rev.down_revision or ())
        if not downs:
            base = rev.revision
        todo.extend(downs)
    return head, base, members


def _stored_revisions(connection):
    if not inspect(connection).has_table("alembic_version"):
        return []
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _write_revisions(connection, revisions):
    connection.execute(text("DELETE FROM alembic_version"))
    for revision in revisions:
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:rev)"), {"rev": revision})
