"""`kehu visits due [--department CODE]`: how many next contacts are overdue, due today and due
in the coming days, per department (counts only: no customer data on the terminal)."""
import click
from flask.cli import with_appcontext

group = click.Group("visits", help="Customer visits (客户拜访).")


@group.command("due")
@click.option("--department", "department_code", default=None,
              help="Department code; default: every department that uses visits.")
@with_appcontext
def due_command(department_code):
    """Count the pending next contacts: overdue, due today, due in the next 7 days."""
    from sqlalchemy import select

    from core.api import Department, ServiceError, cli_fail, cli_ready, db, department_by_code, is_enabled

    from . import services

    cli_ready()
    try:
        if department_code:
            departments = [department_by_code(department_code)]
        else:
            departments = db.session.execute(select(Department).order_by(Department.code)).scalars().all()
    except ServiceError as exc:
        cli_fail(exc)
    departments = [d for d in departments if is_enabled("visits", d.id)]
    if department_code and not departments:
        cli_fail(f"visits is not enabled for department {department_code}")
    if not departments:
        click.echo("no department uses visits: nothing to count")
        return
    for department in departments:
        counts = services.due_counts(department.id)
        click.echo(f"{department.code}\toverdue {counts['overdue']}\ttoday {counts['today']}\t"
                   f"next {services.DUE_DAYS} days {counts['soon']}")
