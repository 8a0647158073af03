"""`kehu import customers`, `kehu export customers` and the `kehu customers` group.

Every command acts as a named user (``--as``) so that permissions, record rules and the audit
trail apply exactly as on the web pages; bad input exits 1 with a one-line reason."""
from __future__ import annotations

import gc
import os
import sys
import tempfile
from pathlib import Path

import click
from flask.cli import with_appcontext

group = click.Group("customers", help="Customer register.")
MAX_ERRORS_SHOWN = 20


def _fail(message):
    raise click.ClickException(" ".join(str(message).split()))


def _ready():
    from core.api import cli_ready
    cli_ready()


def _acting_user(username):
    from sqlalchemy import select

    from core.api import User, db
    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None or not user.active:
        _fail(f"no active user named {username!r}")
    return user


class _Progress:
    """Progress bars on standard error (standard output keeps the one-line summary)."""

    LABELS = {"check": "检查 checking", "store": "导入 importing"}

    def __init__(self, quiet):
        self.quiet = quiet
        self.bar = None

    def __call__(self, phase, total):
        self.close()
        if self.quiet:
            return None
        self.bar = click.progressbar(length=total, label=self.LABELS.get(phase, phase),
                                     file=sys.stderr, show_pos=True)
        self.bar.__enter__()
        return self.bar.update

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command("customers")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--as", "username", required=True, help="The department head who imports.")
@click.option("--consent-channel", default=None,
              help="Confirm that the separate consent of customers with ID number or bank account was "
                   "collected, and how: paper, online, phone or onsite.")
@click.option("--dry-run", is_flag=True, help="Check the file and report errors; store nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@with_appcontext
def import_command(file, username, consent_channel, dry_run, quiet):
    """Import customers from a CSV (UTF-8) or XLSX file with Chinese column headers, all or nothing."""
    from . import io
    _ready()
    path = Path(file)
    if not path.is_file():
        _fail(f"no file {file}")
    actor = _acting_user(username)
    data = path.read_bytes()
    # The app's own objects outlive the import: frozen, the cyclic collector scans only what the
    # import makes (rescanning the app cost a tenth of a 10,000-row import).
    gc.freeze()
    progress = _Progress(quiet)
    try:
        result = io.import_customers(actor, data, path.name, consent_channel=consent_channel,
                                     dry_run=dry_run, progress=progress, helper_process=True)
    except io.ImportFileError as exc:
        _fail(f"{file}: {exc}; nothing imported")
    finally:
        progress.close()
        gc.unfreeze()
    if result.errors:
        for error in result.errors[:MAX_ERRORS_SHOWN]:
            click.echo(str(error), err=True)
        if len(result.errors) > MAX_ERRORS_SHOWN:
            click.echo(f"… {len(result.errors) - MAX_ERRORS_SHOWN} more errors", err=True)
        _fail(f"{file}: {len(result.errors)} errors in {result.error_rows} of {result.rows} rows; "
              "nothing imported")
    if dry_run:
        click.echo(f"{file}: {result.rows} rows checked, no errors; nothing stored (dry run)"
                   + (f"; {result.to_create} to create, {result.to_update} to update" if result.to_update else ""))
    else:
        click.echo(f"{file}: {result.created} customers imported"
                   + (f", {result.updated} updated" if result.updated else "")
                   + (f", {result.unchanged} unchanged" if result.unchanged else "")
                   + (f", {result.consents} separate consents recorded" if result.consents else ""))


@click.command("customers")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--reason", required=True, help="Why the export is needed (audited).")
@click.option("--as", "username", required=True, help="The user who exports (their remit applies).")
@click.option("--marketing", is_flag=True,
              help="Marketing list: only customers with an active marketing consent, contact columns only.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default=None,
              help="Default: from the file's extension.")
@click.option("--request", "request", default=None,
              help="An approved disclosure request (id or number): its fields in clear text, once.")
@with_appcontext
def export_command(file, reason, username, marketing, fmt, request):
    """Export customers to CSV (UTF-8 with BOM) or XLSX; L2/L3 masked unless --request names an
    approved disclosure request."""
    from . import io
    _ready()
    path = Path(file)
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in io.FORMATS:
        _fail(f"{file}: the file name must end in .csv or .xlsx (or give --format)")
    if not path.parent.is_dir():
        _fail(f"no folder {path.parent}")
    actor = _acting_user(username)
    # The file holds personal data: written 0600 to a temporary name, renamed once complete.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            try:
                data, count = io.export_customers(actor, fmt, reason, marketing=marketing, request=request)
            except io.ExportError as exc:
                _fail(exc)
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    click.echo(f"{file}: {count} customers exported" + (" (marketing list)" if marketing else ""))


@group.command("stats")
@with_appcontext
def stats_command():
    """Counts per department, status and type (no personal data)."""
    from sqlalchemy import func, select

    from core.api import Department, db

    from .fields import CUSTOMER_KINDS, STATUSES
    from .models import Consent, Customer, Transaction
    _ready()
    total = db.session.scalar(select(func.count()).select_from(Customer))
    click.echo(f"customers: {total}")
    rows = db.session.execute(select(Department.code, Customer.status, func.count())
                              .join(Department, Department.id == Customer.department_id)
                              .group_by(Department.code, Customer.status)
                              .order_by(Department.code, Customer.status)).all()
    for code, status, count in rows:
        click.echo(f"  {code}\t{STATUSES.get(status, {}).get('zh_CN', status)}\t{count}")
    for kind, count in db.session.execute(select(Customer.kind, func.count()).group_by(Customer.kind)):
        click.echo(f"  {CUSTOMER_KINDS.get(kind, {}).get('zh_CN', kind)}\t{count}")
    consents = db.session.scalar(select(func.count()).select_from(Consent)
                                 .where(Consent.withdrawn_at.is_(None)))
    records = db.session.scalar(select(func.count()).select_from(Transaction))
    click.echo(f"active consents: {consents}\ttransaction and service records: {records}")


@group.command("handover")
@click.option("--from", "from_name", required=True, help="The leaving employee.")
@click.option("--to", "to_name", required=True, help="The colleague who takes over.")
@click.option("--as", "username", required=True, help="The department head.")
@with_appcontext
def handover_command(from_name, to_name, username):
    """Give a leaver's customers to a colleague and deactivate the leaver's account."""
    from core.api import db

    from . import handover
    _ready()
    actor = _acting_user(username)
    from sqlalchemy import select

    from core.api import User
    users = {u.username: u for u in db.session.execute(
        select(User).where(User.username.in_([from_name, to_name]))).scalars()}
    try:
        result = handover.hand_over(actor, users.get(from_name), users.get(to_name))
        db.session.commit()
    except handover.HandoverError as exc:
        db.session.rollback()
        _fail(exc)
    click.echo(f"{from_name} -> {to_name}: {result.customers} customers, {result.shares_moved} shares, "
               f"{result.other} records of other modules; {from_name} deactivated")


@group.command("demo")
@click.option("--count", default=300, show_default=True, type=click.IntRange(1, 100_000))
@with_appcontext
def demo_command(count):
    """Add demo customers to the existing departments (for trying kehu out)."""
    import time

    from sqlalchemy import select

    from core.api import Department, User, db

    from . import demo
    _ready()
    departments = db.session.execute(select(Department)).scalars().all()
    users = db.session.execute(select(User).where(User.active.is_(True))).scalars().all()
    started = time.perf_counter()
    try:
        message = demo.create(departments, users, count=count)
    except demo.DemoError as exc:
        _fail(exc)
    db.session.commit()
    click.echo(f"{message} in {time.perf_counter() - started:.1f} s")


def demo_data(departments, users):
    """The "core.demo" hook of `kehu init --demo`."""
    from core.api import db

    from . import demo
    try:
        return demo.create(departments, users)
    except demo.DemoError as exc:
        db.session.rollback()
        print(f"customers demo data skipped: {exc}", file=sys.stderr)
        return None
