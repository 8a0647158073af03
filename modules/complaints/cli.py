"""`kehu complaints overdue [--department CODE]`: the overdue complaints, one per line (for a daily
cron mail)."""
import click
from flask.cli import with_appcontext

group = click.Group("complaints", help="Customer complaints (客户投诉).")


@group.command("overdue")
@click.option("--department", "department_code", default=None,
              help="Department code; default: every department that uses complaints.")
@with_appcontext
def overdue_command(department_code):
    """List open complaints past their response or resolution deadline (company time)."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from core.api import Department, ServiceError, cli_fail, db, department_by_code, is_enabled

    from . import services
    from .models import SEVERITIES, STATUSES

    try:
        if department_code:
            departments = [department_by_code(department_code)]
        else:
            departments = db.session.execute(select(Department).order_by(Department.code)).scalars().all()
        departments = [d for d in departments if is_enabled("complaints", d.id)]
    except ServiceError as exc:
        cli_fail(exc)
    except SQLAlchemyError as exc:
        cli_fail(f"cannot read the departments (run `kehu init` first?): {str(exc).splitlines()[0]}")
    if department_code and not departments:
        cli_fail(f"complaints is not enabled for department {department_code}")
    now = services.utcnow()
    total = 0
    for department in departments:
        for c in services.overdue(department.id, now):
            kind, due = services.next_due(c)
            what = "受理超期" if kind == "response" else "处理超期"
            click.echo("\t".join([c.number, department.code, c.customer.number, SEVERITIES[c.severity]["zh_CN"],
                                  STATUSES[c.status]["zh_CN"], services.user_name(c.handler) or "-",
                                  what, services.local_text(due)]))
            total += 1
    click.echo(f"{total} overdue complaint(s)", err=True)
