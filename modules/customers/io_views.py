"""Pages for import, export and handover, added to the customers blueprint.

Uploads are checked by content (an XLSX is a zip, a CSV must decode as UTF-8) and bounded by
MAX_CONTENT_LENGTH (Flask answers 413 above it)."""
from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from core.api import User, can, db, local_now, pick, require

from . import handover as handover_service
from . import io
from .fields import CHANNELS
from .views import bp, export_selection

MIME = {"csv": "text/csv",  # Flask adds "; charset=utf-8" to a text/* mimetype
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
MAX_ERRORS_SHOWN = 200


class ImportForm(FlaskForm):
    file = FileField(_l("CSV or Excel file"), validators=[FileRequired()])
    consent = BooleanField(_l("The customers in this file consented to the personal details it holds "
                              "(separately for ID numbers and bank accounts), and I can show it"))
    channel = SelectField(_l("How the separate consent was collected"), validators=[Optional()])
    dry_run = BooleanField(_l("Only check the file, store nothing"))


class ExportForm(FlaskForm):
    reason = StringField(_l("Reason for the export"), validators=[DataRequired(), Length(min=2, max=500)])
    fmt = RadioField(_l("Format"), default="xlsx",
                     choices=[SelectChoice("xlsx", "Excel (XLSX)"), SelectChoice("csv", "CSV (UTF-8)")])
    marketing = BooleanField(_l("Marketing list: only customers who consented to marketing, contact "
                                "columns only"))


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _download(data, filename, fmt):
    response = Response(data, mimetype=MIME[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return _no_store(response)


@bp.route("/import", methods=["GET", "POST"])
@require("customers.import", kind="form")
def import_customers():
    form = ImportForm()
    form.channel.choices = [SelectChoice("", "—")] + [SelectChoice(k, pick(v)) for k, v in CHANNELS.items()]
    result, problem, status = None, None, 200
    if form.validate_on_submit():
        channel = form.channel.data or None
        if form.consent.data and not channel:
            problem, status = _l("Choose how the separate consent was collected."), 400
        else:
            upload = form.file.data
            data = upload.read()
            try:
                result = io.import_customers(current_user._get_current_object(), data, upload.filename or "",
                                             consent_channel=channel if form.consent.data else None,
                                             dry_run=form.dry_run.data)
            except io.ImportFileError as exc:
                problem, status = str(exc), 400
            else:
                status = 400 if result.errors else 200  # the page shows the errors or the summary
    elif request.method == "POST":
        status = 400
    return render_template("customers/import.html", form=form, result=result, problem=problem,
                           max_errors=MAX_ERRORS_SHOWN), status


@bp.route("/import-template.xlsx")
@require("customers.import", kind="download")
def import_template():
    return _download(io.import_template(), "kehu-customers-import-template.xlsx", "xlsx")


@bp.route("/export", methods=["GET", "POST"])
@require("customers.export", kind="form")
def export_customers():
    form = ExportForm()
    can_marketing = can(current_user, "customers.marketing_export")
    problem = None
    selection = export_selection(current_user._get_current_object(), request.values)
    if form.validate_on_submit():
        fmt = form.fmt.data
        try:
            data, _count = io.export_customers(current_user._get_current_object(), fmt, form.reason.data,
                                               marketing=form.marketing.data, **selection.kwargs)
        except io.ExportError as exc:
            db.session.rollback()
            problem = str(exc)
        else:
            stamp = local_now().strftime("%Y%m%d-%H%M%S")  # the company's time, as on every page
            kind = "marketing" if form.marketing.data else "customers"
            return _download(data, f"kehu-{kind}-{stamp}.{fmt}", fmt)
    status = 400 if request.method == "POST" else 200
    return _no_store(Response(render_template(
        "customers/export.html", form=form, problem=problem, can_marketing=can_marketing, selection=selection,
        reveal_l2=False, reveal_l3=False), status))  # clear text only by an approved request


@bp.route("/handover", methods=["GET", "POST"])
@require("customers.handover", kind="form")
def handover():
    actor = current_user._get_current_object()
    problem, status = None, 200
    if request.method == "POST":
        ids = [request.form.get(k, type=int) for k in ("from_user", "to_user")]
        from_user, to_user = (db.session.get(User, i) if i else None for i in ids)
        try:
            result = handover_service.hand_over(actor, from_user, to_user)
            db.session.commit()
        except handover_service.HandoverError as exc:
            db.session.rollback()
            problem, status = str(exc), 400
        else:
            flash(_("%(name)s: %(customers)d customers, %(shares)d shares and %(other)d records of other "
                     "modules handed over to %(to)s; the account is deactivated.",
                     name=from_user.username, customers=result.customers, shares=result.shares_moved,
                     other=result.other, to=to_user.username), "success")
            return redirect(url_for("customers.handover"))
    people = handover_service.colleagues(actor)
    counts = handover_service.customer_counts(actor.department_id)
    return render_template(
        "customers/handover.html", people=people, counts=counts, problem=problem, actor=actor,
        targets=[u for u in people if u.active and u.role in handover_service.TARGET_ROLES],
        leavers=[u for u in people if u.id != actor.id]), status
