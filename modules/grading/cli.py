"""`kehu grading recompute [--department CODE]`."""
import sys

import click
from flask.cli import with_appcontext

group = click.Group("grading", help="Customer grading (客户分级).")


@group.command("recompute")
@click.option("--department", "department_code", default=None,
              help="Department code; default: every department that uses grading.")
@with_appcontext
def recompute_command(department_code):
    """Grade every customer of the department(s) by their rules; overrides are kept."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from core.api import Department, ServiceError, cli_actor, cli_fail, db, department_by_code, is_enabled

    from . import services

    try:
        if department_code:
            departments = [department_by_code(department_code)]
        else:
            departments = db.session.execute(select(Department).order_by(Department.code)).scalars().all()
        departments = [d for d in departments if is_enabled("grading", d.id)]
    except ServiceError as exc:
        cli_fail(exc)
    except SQLAlchemyError as exc:  # e.g. not initialised yet: one line, not a traceback
        cli_fail(f"cannot read the departments (run `kehu init` first?): {str(exc).splitlines()[0]}")
    if department_code and not departments:
        cli_fail(f"grading is not enabled for department {department_code}")
    if not departments:
        click.echo("no department uses grading: nothing to do")
        return
    total = services.Summary()
    actor = cli_actor()
    for department in departments:  # the bars go to standard error, the summary to standard output
        with click.progressbar(length=services.count_customers(department),
                               label=f"grading {department.code}", show_pos=True,
                               show_percent=True, file=sys.stderr) as bar:
            summary = services.recompute(actor, department, progress=bar.update)
        db.session.commit()
        total.add(summary)
    click.echo(f"graded {total.graded} customers in {total.departments} department(s): "
               f"{total.changed} changed, {total.overridden_kept} overrides kept"
               + (f"; {total.no_consent} customers not graded: no analysis consent" if total.no_consent else "")
               + (f"; {total.removed} grades removed: analysis consent withdrawn" if total.removed else ""))
