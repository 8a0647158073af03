"""`kehu retention run [--dry-run]`: list and destroy the customers past their retention period."""
import sys
from pathlib import Path

import click
from flask.cli import with_appcontext


@click.command("run")
@click.option("--dry-run", is_flag=True, help="Only list what is due; destroy nothing.")
@click.option("--certificate", "certificate", type=click.Path(dir_okay=False), default=None,
              help="Write the run's destruction certificate PDF here.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def retention_run(dry_run, certificate, quiet):
    """Destroy the personal data of every customer past its retention period (legal holds excepted)."""
    from core.api import audit, cli_actor, cli_fail, cli_ready, db, pdf

    from . import services
    cli_ready()
    items = services.due()
    for item in items:
        state = f"held: {item.hold.reason}" if item.hold else ("due" if dry_run else "destroying")
        click.echo(f"{item.customer.number}\t{item.policy}\tdue {item.due_on.isoformat()}\t{state}")
    documents = services.due_documents()
    for doc in documents:
        click.echo(f"{doc.number}\tdocument {doc.doc_type} of {doc.doc_date.isoformat()}\t"
                   f"{'due' if dry_run else 'deleting'}")
    if dry_run:
        db.session.rollback()
        click.echo(f"dry run: {len([i for i in items if not i.hold])} customers due, "
                   f"{len([i for i in items if i.hold])} under a legal hold, {len(documents)} archive "
                   "documents past their period; nothing destroyed")
        return
    todo = len([i for i in items if not i.hold])
    try:
        with click.progressbar(length=max(todo, 1), label="destroying", file=sys.stderr, hidden=quiet) as bar:
            outcome = services.run_retention(cli_actor(), progress=bar.update)
        db.session.commit()
    except services.LifecycleError as exc:
        db.session.rollback()
        cli_fail(exc)
    services.finish()
    line = (f"run {outcome.run.number}: {len(outcome.destroyed)} customers destroyed, "
            f"{len(outcome.held)} kept under a legal hold, {len(outcome.documents)} archive documents deleted")
    if certificate:
        data = pdf.render("lifecycle/certificate_pdf.html", **services.certificate_context(outcome.run))
        Path(certificate).write_bytes(data)
        audit.record("lifecycle.certificate.printed", target=outcome.run, actor=cli_actor(), size=len(data))
        db.session.commit()
        line += f"; certificate {certificate}"
    click.echo(line)


@click.command("report")
@click.option("--week", default=None, help="ISO week, e.g. 2026-W49; default: the last complete week.")
@click.option("--pdf", "pdf_file", type=click.Path(dir_okay=False), default=None, help="Also write the PDF here.")
@with_appcontext
def review_report(week, pdf_file):
    """The weekly review of customer information (客户信息梳理), per department."""
    from core.api import audit, cli_actor, cli_fail, cli_ready, db, pdf

    from . import review
    cli_ready()
    try:
        monday, sunday = review.parse_week(week)
    except review.ReviewError as exc:
        cli_fail(exc)
    reviews = review.report(monday, sunday)
    click.echo(f"review {review.week_label(monday)} ({monday.isoformat()} .. {sunday.isoformat()})")
    for item in reviews:
        figures = "\t".join(f"{f.key}={f.value}" for f in item.figures)
        click.echo(f"{item.code}\t{figures}")
    if pdf_file:
        data = pdf.render("lifecycle/review_pdf.html", **review.pdf_context(monday, sunday, reviews, cli_actor()))
        Path(pdf_file).write_bytes(data)
        audit.record("lifecycle.review.printed", actor=cli_actor(), week=review.week_label(monday), size=len(data))
        db.session.commit()
        click.echo(f"PDF written to {pdf_file}")
