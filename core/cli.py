"""The `kehu` command. Every command exits non-zero with a one-line reason on bad input."""
from __future__ import annotations

import gc
import getpass
import re
import secrets
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import ScriptInfo, with_appcontext
from flask_babel import gettext as _
from sqlalchemy import inspect, select

from core import audit, services
from core.db import db
from core.models import ROLES, Department, User


def _make_app():
    from core.app import create_app
    return create_app(uninitialised_ok=True)


def cli_actor():
    return f"cli:{getpass.getuser()}"


def _script_info():
    return ScriptInfo(create_app=_make_app, set_debug_flag=False, load_dotenv_defaults=False)


class KehuGroup(click.Group):
    """Core commands plus those the loaded modules contribute (through the app's `cli`)."""

    def _app_cli(self, ctx):
        # subcommands are resolved before main() runs: make sure the factory is known here too
        if ctx.obj is None:
            ctx.obj = _script_info()
        info = ctx.obj
        try:
            return info.load_app().cli
        except Exception as exc:  # a broken module or key file: one line, not a traceback
            raise click.ClickException(str(exc).splitlines()[0]) from exc

    def list_commands(self, ctx):
        names = set(super().list_commands(ctx))
        if "--help" in sys.argv or "-h" in sys.argv or len(sys.argv) == 1:
            try:
                names |= set(self._app_cli(ctx).list_commands(ctx))
            except click.ClickException:
                pass
        return sorted(names)

    def invoke(self, ctx):
        from core.crypto import KeyringError
        from core.modules import ModuleError
        try:
            return super().invoke(ctx)
        except (ModuleError, KeyringError) as exc:
            raise click.ClickException(str(exc).splitlines()[0]) from exc

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        return self._app_cli(ctx).get_command(ctx, name)


@click.group(cls=KehuGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx):
    """kehu 客户信息管理系统."""
    if ctx.obj is None:  # tests pass their own ScriptInfo
        ctx.obj = _script_info()


def console():
    """The `kehu` console command: ``main``, then everything frozen before the interpreter exits, so
    that its last cyclic collection does not rescan the app's objects one by one (a third of a
    second after an import has loaded phone metadata, templates and models)."""
    try:
        main()
    finally:
        gc.freeze()


def fail(message):
    raise click.ClickException(str(message))


def _schema_ready():
    return inspect(db.engine).has_table("core_user")


def require_ready():
    if current_app.extensions.get("kehu.keyring") is None or not _schema_ready():
        fail("kehu is not initialised here: run `kehu init` first")


# --- init ---------------------------------------------------------------------------------------

@main.command()
@click.option("--demo", is_flag=True, help="Also create demo departments, users and customers.")
@click.option("--crypto", "suite", type=click.Choice(["aes", "sm"]), envvar="KEHU_CRYPTO", default=None,
              help="Cipher suite of a new master key: aes (AES-256-GCM + HMAC-SHA256, the default) or "
                   "sm (国密 SM4-GCM + HMAC-SM3). Also KEHU_CRYPTO.")
@with_appcontext
def init(demo, suite):
    """Create keys, the database schema and the administrator."""
    from core import crypto
    app = current_app
    master = Path(app.config["MASTER_KEY_FILE"])
    secret = Path(app.config["SECRET_KEY_FILE"])
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    _create_database(db.engine.url)
    if not master.exists():
        if _schema_ready() and db.session.execute(select(User).limit(1)).first():
            fail(f"the database holds data but the master key {master} is missing; restore the key file "
                 "instead of creating a new one")
        ring = crypto.Keyring.generate(master, suite=suite or crypto.DEFAULT_SUITE)
        click.echo(f"created master key {master} (mode 0600, {crypto.SUITES[ring.suite].label}) "
                   "— keep a copy somewhere safe")
    elif suite and crypto.Keyring.load(master).suite != suite:
        fail(f"the master key {master} exists with another cipher suite: to move this instance to "
             f"{suite!r} run `kehu keys rotate --crypto {suite}`")
    if not secret.exists():
        crypto.generate_secret_key_file(secret)
        app.config["SECRET_KEY"] = secret.read_text().strip()
    if app.extensions.get("kehu.keyring") is None:
        crypto.init_app(app)
    services.run_migrations("core@head")
    _restrict_permissions(Path(app.instance_path), db.engine.url)
    for name, info in app.extensions["kehu.modules"].items():
        if info.manifest.required or info.manifest.auto_install:
            services.install_module(cli_actor(), name)
    services.grant_defaults("core")
    db.session.commit()
    admin = db.session.execute(select(User).where(User.role == "admin")).scalars().first()
    if admin is None:
        password = secrets.token_urlsafe(12)
        services.create_user(cli_actor(), "admin", password, "admin", display_name="系统管理员",
                             must_change=True)
        db.session.commit()
        click.echo(f"administrator: admin / {password}  (shown once; change it at first sign-in)")
    else:
        click.echo("already initialised: administrator exists")
    if demo:
        from core import demo as demo_data
        demo_data.create(click.echo)


def _create_database(url):
    """A PostgreSQL database that does not exist yet is created (SQLite makes its file itself)."""
    import sqlalchemy.exc
    from sqlalchemy_utils import create_database, database_exists
    if url.get_backend_name() == "sqlite":
        return
    try:
        if database_exists(url):
            return
        create_database(url)
    except sqlalchemy.exc.SQLAlchemyError as exc:  # unreachable server, no CREATEDB right: one line
        fail(f"cannot create database {url.database}: {(str(exc).strip().splitlines() or [''])[0]}")
    click.echo(_("created database %(name)s", name=url.database))


def _restrict_permissions(instance, url):
    """Only the service user may read the instance folder and the SQLite file."""
    import os
    instance.chmod(0o700)
    if url.get_backend_name() == "sqlite" and url.database:
        for suffix in ("", "-wal", "-shm"):
            path = Path(url.database + suffix)
            if path.exists():
                os.chmod(path, 0o600)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def run(host, port):
    """Serve kehu (development server; use gunicorn in production)."""
    require_ready()
    from werkzeug.serving import run_simple

    from core import pdf
    pdf.prewarm(current_app)
    click.echo(f"kehu on http://{host}:{port}/")
    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False,
               request_handler=redacting_request_handler())


def redact_request_line(line):
    """``GET /customers/?q=110105… HTTP/1.1`` → ``GET /customers/?… HTTP/1.1``: search terms are
    personal data and stay out of the access log."""
    return re.sub(r"\?[^\s]*", "?…", line, count=1)


def redacting_request_handler():
    from werkzeug.serving import WSGIRequestHandler

    class RedactingRequestHandler(WSGIRequestHandler):
        def log_request(self, code="-", size="-"):
            path = self.path
            self.path, self.requestline = path.split("?", 1)[0] + ("?…" if "?" in path else ""), \
                redact_request_line(self.requestline)
            try:
                super().log_request(code, size)
            finally:
                self.path = path

    return RedactingRequestHandler


# --- departments and users ----------------------------------------------------------------------

@main.group()
def departments():
    """Departments."""


@departments.command("create")
@click.argument("code")
@click.argument("name")
@with_appcontext
def departments_create(code, name):
    require_ready()
    try:
        services.create_department(cli_actor(), code, name)
        db.session.commit()
    except services.ServiceError as exc:
        fail(exc)
    click.echo(f"department {code} created")


@departments.command("list")
@with_appcontext
def departments_list():
    require_ready()
    for dept in db.session.execute(select(Department).order_by(Department.code)).scalars():
        click.echo(f"{dept.code}\t{dept.name}")


@main.group()
def users():
    """User accounts."""


def _read_password():
    if sys.stdin.isatty():
        first = click.prompt("password", hide_input=True)
        if click.prompt("repeat", hide_input=True) != first:
            fail("the passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        fail("no password on standard input")
    return line.rstrip("\r\n")


@users.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--department", "department_code", default=None, help="Department code.")
@click.option("--name", "display_name", default="", help="Display name.")
@with_appcontext
def users_create(username, role, department_code, display_name):
    """Create a user; the password is read from standard input."""
    require_ready()
    try:
        dept = services.department_by_code(department_code) if department_code else None
        services.create_user(cli_actor(), username, _read_password(), role, dept, display_name)
        db.session.commit()
    except services.ServiceError as exc:
        fail(exc)
    click.echo(f"user {username} created")


# --- modules ------------------------------------------------------------------------------------

@main.group()
def modules():
    """Business modules."""


@modules.command("list")
@with_appcontext
def modules_list():
    """One line per module: name, version, title, depends, source, state (tab-separated)."""
    require_ready()
    from core import lifecycle
    from core.models import ModuleEnablement
    enabled = {}
    for row, code in db.session.execute(select(ModuleEnablement, Department.code).join(
            Department, Department.id == ModuleEnablement.department_id)).all():
        enabled.setdefault(row.module, []).append(code)
    # the columns and state names are for scripts as much as for people: they stay in English
    for name, found in lifecycle.statuses().items():
        if found.state == lifecycle.MISSING:
            click.echo(f"{name}\t{found.stored}\t-\tdepends=-\t-\tmissing")
            continue
        m = found.info.manifest
        where = "always enabled" if m.required else "enabled in: " + (", ".join(sorted(enabled.get(name, []))) or "-")
        if found.state == lifecycle.INSTALLED:
            state = f"installed, {where}"
        elif found.state == lifecycle.TO_UPGRADE:
            state = f"to upgrade from {found.stored}, {where}"
        else:
            state = "not installed"
        depends = ",".join(m.depends) or "-"
        click.echo(f"{name}\t{m.version}\t{m.title['zh_CN']}\tdepends={depends}\t{found.info.source}\t{state}")


@modules.command("show")
@click.argument("name")
@with_appcontext
def modules_show(name):
    """Everything a module contributes: routes, permissions, menus, hooks, tables, migrations."""
    require_ready()
    from core import lifecycle
    try:
        found = lifecycle.status(name)
    except services.ServiceError as exc:
        fail(exc)
    for line in _show_lines(found):
        click.echo(line)


def _show_lines(found):
    from core import access, audit, hooks, lifecycle
    from core.i18n import pick
    none = "-"
    if found.info is None:  # missing: only the database remembers it
        tables = lifecycle.leftover_tables(found.name)
        gone = _("%(stored)s installed; its code is gone", stored=found.stored)
        return [found.name,
                f"{_('Version')}: {gone}",
                f"{_('State')}: {found.label}",
                f"{_('Tables')}: {', '.join(tables) or none}"]
    info, m, c = found.info, found.info.manifest, found.info.contributions
    app = current_app
    version = (_("%(code)s in the code, %(stored)s installed", code=m.version, stored=found.stored)
               if found.stored else m.version)
    lines = [f"{found.name} — {pick(m.title)}",
             f"{_('Version')}: {version}",
             f"{_('State')}: {found.label}",
             f"{_('Source')}: {info.source} {info.path}",
             f"{_('Depends on')}: {', '.join(m.depends) or none}",
             f"{_('Uses')}: {', '.join(m.uses) or none}"]

    def section(title, rows):
        lines.append(f"{title}:" if rows else f"{title}: {none}")
        lines.extend(f"  {row}" for row in rows)

    kinds = access.endpoint_kinds(app)
    routes = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint.split(".", 1)[0] != found.name or rule.endpoint.endswith(".static"):
            continue
        view = app.view_functions[rule.endpoint]
        permission = getattr(view, "kehu_permission", None) or (
            "public" if getattr(view, "kehu_public", False) else "signed in")
        methods = ",".join(sorted(set(rule.methods) - {"HEAD", "OPTIONS"}))
        routes.append(f"{rule.rule}  {rule.endpoint}  {methods}  {permission}  {kinds.get(rule.endpoint, none)}")
    section(_("Routes"), routes)
    declared = access.declared()
    section(_("Permissions"), [
        f"{p}  {pick(declared[p].label)}  ({_('Default roles')}: {', '.join(declared[p].roles) or none})"
        for p in c["permissions"]])
    section(_("Menus"), [f"{item.id}  {pick(item.label)}  → {item.endpoint}  ({item.permission}, {item.order})"
                         for item in app.extensions["kehu.menus"] if item.module == found.name])
    offered = hooks.offered(app)
    section(_("Hooks offered"), [f"{h}  {offered[h].signature}  {offered[h].doc}".rstrip()
                                 for h in c["hooks_offered"]])
    section(_("Hooks used"), list(c["hooks"]))
    actions = audit.declared_actions()
    section(_("Audit actions"), [f"{a}  {pick(actions[a].label)}" for a in c["audit_actions"]])
    section(_("CLI commands"), [f"kehu {command}" for command in c["cli"]])
    section(_("Tables"), list(c["tables"]))
    migrations = none
    if c["migrations"]:
        head = lifecycle.script_directory().get_revision(f"{found.name}@head").revision
        migrations = _("%(folder)s, head revision %(head)s", folder=c["migrations"], head=head)
    lines.append(f"{_('Migrations')}: {migrations}")
    return lines


@modules.command("install")
@click.argument("name")
@with_appcontext
def modules_install(name):
    require_ready()
    try:
        done = services.install_module(cli_actor(), name)
        db.session.commit()
    except services.ServiceError as exc:
        fail(exc)
    click.echo(f"installed: {', '.join(done)}" if done else f"{name} is installed already")


@modules.command("upgrade")
@click.argument("name")
@with_appcontext
def modules_upgrade(name):
    """Run a module's new migrations and store its new version."""
    require_ready()
    from core import lifecycle
    try:
        done = lifecycle.upgrade_module(cli_actor(), name)
        db.session.commit()
    except services.ServiceError as exc:
        fail(exc)
    for module, old, new in done:
        click.echo(_("upgraded %(name)s from %(old)s to %(new)s", name=module, old=old, new=new))


@modules.command("uninstall")
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also delete the module's data (a missing module: forget it).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def modules_uninstall(name, purge, yes):
    """Drop a module's tables through its migrations and forget it."""
    require_ready()
    from core import lifecycle
    try:
        plan = lifecycle.check_uninstall(name, purge)
    except services.ServiceError as exc:
        fail(exc)
    db.session.rollback()  # hold no transaction (on SQLite: no write lock) while the user decides
    if not yes:
        if plan.status.state == lifecycle.MISSING:
            question = _("Forget missing module %(name)s? Its tables stay in the database.", name=name)
        elif plan.rows:
            question = _("Uninstall %(name)s and delete its data (%(counts)s)?", name=name,
                         counts=lifecycle.counts_text(plan.counts))
        else:
            question = _("Uninstall %(name)s?", name=name)
        click.confirm(question, abort=True)
    try:
        done = lifecycle.uninstall_module(cli_actor(), name, purge)
        db.session.commit()
    except services.ServiceError as exc:
        fail(exc)
    if plan.status.state == lifecycle.MISSING:
        click.echo(_("forgot missing module %(name)s; its tables remain in the database: %(tables)s",
                     name=name, tables=", ".join(done.kept)) if done.kept else
                   _("forgot missing module %(name)s; it left no tables", name=name))
    elif done.purged:
        click.echo(_("uninstalled %(name)s and deleted %(counts)s", name=name,
                     counts=lifecycle.counts_text(done.purged)))
    else:
        click.echo(_("uninstalled %(name)s", name=name))


def _toggle(name, department_code, enable):
    require_ready()
    try:
        dept = services.department_by_code(department_code)
        change = services.enable_module if enable else services.disable_module
        changed = change(cli_actor(), name, dept)
        db.session.commit()
    except services.ServiceError as exc:
        fail(exc)
    verb = "enabled" if enable else "disabled"
    click.echo(f"{name} {verb} for {department_code}" if changed else f"{name} was {verb} already for "
               f"{department_code}")


@modules.command("enable")
@click.argument("name")
@click.option("--department", "department_code", required=True)
@with_appcontext
def modules_enable(name, department_code):
    _toggle(name, department_code, True)


@modules.command("disable")
@click.argument("name")
@click.option("--department", "department_code", required=True)
@with_appcontext
def modules_disable(name, department_code):
    _toggle(name, department_code, False)


# --- audit ---------------------------------------------------------------------------------------

@main.group("audit")
def audit_group():
    """The audit trail."""


@audit_group.command("verify")
@with_appcontext
def audit_verify():
    """Check the hash chain; exit 1 naming the first entry that no longer matches."""
    require_ready()
    count, broken = audit.verify()
    if broken:
        entry_id, reason = broken
        click.echo(f"audit chain broken at entry {entry_id}: {reason} ({count} entries before it are intact)",
                   err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {count} entries")
    mark = audit.read_checkpoint()
    if mark is None:
        click.echo("no checkpoint yet: it is written with the next audited action")
    else:  # for the security officer's own record, outside this machine
        click.echo(f"checkpoint: entry {mark['id']} hash {mark['hash'][:16]} written {mark['at']} UTC")


# --- security self-check ---------------------------------------------------------------------------

@main.command("selfcheck")
@with_appcontext
def selfcheck_command():
    """The security self-check (as on the 安全自查 page): one line per finding with what to do;
    exit 1 when a finding fails."""
    require_ready()
    from core import selfcheck
    findings = selfcheck.run()
    for finding in findings:
        line = f"[{finding.status.upper()}] {finding.key}: {finding.title}: {finding.detail}"
        if finding.action:
            line += f" -> {finding.action}"
        click.echo(line)
        for item in finding.items:
            click.echo(f"    {item}")
    db.session.rollback()
    failures = selfcheck.failed(findings)
    if failures:
        click.echo(f"self-check failed: {len(failures)} of {len(findings)} findings need action", err=True)
        sys.exit(1)
    click.echo(f"self-check passed: {len(findings)} findings, none failed")


# --- module commands ------------------------------------------------------------------------------

CORE_PARENT_GROUPS = {"import": "Import data from files.", "export": "Export data to files.",
                      "retention": "Retention and destruction of personal data.",
                      "review": "The weekly review of customer information.",
                      "alerts": "Anomaly alerts from the audit trail."}
# Commands whose names DESIGN.md fixes although a module provides them: "group command" -> module.
STABLE_COMMANDS = {"retention run": "lifecycle", "review report": "lifecycle", "alerts run": "oversight"}


def register_module_commands(app):
    """Put the commands modules registered on the app's CLI, under `kehu import` etc. if asked."""
    parents = {}
    for under, command in app.extensions["kehu.cli"]:
        if under is None:
            app.cli.add_command(command)
            continue
        if under not in CORE_PARENT_GROUPS:
            from core.modules import ModuleError
            raise ModuleError(f"module {command.name}: unknown CLI group {under!r}")
        if under not in parents:
            parents[under] = click.Group(under, help=CORE_PARENT_GROUPS[under])
            app.cli.add_command(parents[under])
        parents[under].add_command(command)


# --- keys ----------------------------------------------------------------------------------------

@main.group()
def keys():
    """Encryption keys."""


@keys.command("rotate")
@click.option("--crypto", "suite", type=click.Choice(["aes", "sm"]), default=None,
              help="Also move to this cipher suite (sm: 国密 SM4-GCM + HMAC-SM3): every encrypted "
                   "field and file is re-encrypted, audit entries from now on use its MAC.")
@with_appcontext
def keys_rotate(suite):
    """New master and blind-index keys: rewrap every data key, recompute every blind index, then
    drop the old keys, so a copy of the old key file opens nothing. Safe to re-run after a crash."""
    require_ready()
    from core import crypto, hooks
    callbacks = [func for _module, func in hooks.contributions("core.reindex", all_departments=True)]
    reencrypt = [func for _module, func in hooks.contributions("core.reencrypt", all_departments=True)]
    try:
        counts = crypto.rotate(reindex_callbacks=callbacks, suite=suite, reencrypt_callbacks=reencrypt)
    except crypto.KeyringError as exc:
        fail(exc)
    audit.record("core.keys.rotated", actor=cli_actor(), **{k: v for k, v in counts.items()
                                                            if isinstance(v, (int, str))})
    db.session.commit()
    summary = ", ".join(f"{k}={v}" for k, v in counts.items())
    click.echo(f"keys rotated: {summary}")


# --- backup and restore ----------------------------------------------------------------------------

@main.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def backup_command(file, quiet):
    """Write a consistent backup of the database and uploads to FILE (a .tar.gz with a manifest
    and SHA-256 checksums); safe while kehu serves. The master key is NOT in it: back it up apart."""
    require_ready()
    from core import backup
    try:
        with click.progressbar(length=backup.member_count(), label="backup", file=sys.stderr,
                               hidden=quiet) as bar:
            manifest = backup.create(file, progress=bar.update)
    except (backup.BackupError, OSError) as exc:
        fail(exc)
    audit.record("core.backup.created", actor=cli_actor(), files=len(manifest["files"]),
                 dialect=manifest["database"]["dialect"])
    db.session.commit()
    size = sum(f["size"] for f in manifest["files"])
    click.echo(f"backup written to {file}: {len(manifest['files'])} files, {size} bytes; "
               "the master key is not in it")


@main.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--test", "test_only", is_flag=True,
              help="Test-restore into a scratch copy and check it; this instance is left as it is.")
@with_appcontext
def restore_command(file, quiet, test_only):
    """Restore a `kehu backup` archive into this empty instance (its master key file in place),
    replay the destruction ledger, and make the restored audit trail's head the checkpoint."""
    from core import backup, ledger
    if current_app.extensions.get("kehu.keyring") is None:
        fail(f"the master key file {current_app.config['MASTER_KEY_FILE']} is missing: put the key the "
             "backup was made under in place first")
    if test_only:
        require_ready()
        try:
            size = Path(file).stat().st_size if Path(file).is_file() else 1
            with click.progressbar(length=size, label="test-restore", file=sys.stderr, hidden=quiet) as bar:
                done = backup.test_restore(file, cli_actor(), progress=bar.update)
        except (backup.BackupError, OSError) as exc:
            db.session.rollback()
            fail(exc)
        entries = "" if done["entries"] is None else f", audit chain intact ({done['entries']} entries)"
        click.echo(f"test-restore of the backup of {done['created_at']} UTC passed: {done['files']} files "
                   f"checked{entries}; this instance was not changed")
        return
    try:
        size = Path(file).stat().st_size if Path(file).is_file() else 1
        with click.progressbar(length=size, label="restore", file=sys.stderr, hidden=quiet) as bar:
            counts = backup.restore(file, cli_actor(), progress=bar.update)
    except (backup.BackupError, ledger.LedgerError, OSError) as exc:
        db.session.rollback()
        fail(exc)
    click.echo(f"restored the backup of {counts['created_at']} UTC: audit chain intact ({counts['entries']} "
               f"entries), {counts['uploads']} uploaded files, {counts['keys_destroyed']} destroyed data keys "
               "deleted again")
