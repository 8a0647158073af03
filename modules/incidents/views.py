"""Pages of the incident module (blueprint "incidents", /incidents/): parse, call a service, render.

Tickets outside the user's remit (see services.incident_rule) answer 404 through deny_row."""
from __future__ import annotations

from datetime import UTC

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import to_user_timezone, to_utc
from flask_login import current_user
from sqlalchemy import select

from core.api import ServiceError, can, db, deny_row, get_or_404, pdf, pick, require, scoped

from . import services
from .forms import (
    AffectedForm,
    AssessForm,
    CloseForm,
    CommentForm,
    EvidenceForm,
    NoticeTextForm,
    NotificationForm,
    RegulatorForm,
    ReportForm,
    StepForm,
)
from .models import CHANNELS, DATA_CLASSES, NOTICE_STATUSES, SEVERITIES, STATUSES, Affected, Incident
from .permissions import HANDLE, PRINT, REPORT, VIEW

bp = Blueprint("incidents", __name__, url_prefix="/incidents")

EVIDENCE_LABELS = {
    "reveals": {"zh_CN": "查看敏感信息（显示明文）", "en": "Reveals of sensitive data"},
    "exports": {"zh_CN": "导出", "en": "Exports"},
    "pdfs": {"zh_CN": "生成 PDF", "en": "PDFs"},
    "downloads": {"zh_CN": "下载附件", "en": "Downloads"},
}


@bp.app_template_filter("incidents_time")
def incidents_time(value):
    """An aware UTC time shown in the company's zone."""
    return to_user_timezone(value).strftime("%Y-%m-%d %H:%M") if value else ""


@bp.app_template_global("incidents_label")
def incidents_label(table, key):
    tables = {"severity": SEVERITIES, "status": STATUSES, "class": DATA_CLASSES, "channel": CHANNELS,
              "notice": NOTICE_STATUSES, "evidence": EVIDENCE_LABELS}
    return pick(tables[table].get(key, {"zh_CN": key or "—", "en": key or "—"}))


@bp.app_template_global("incidents_clock")
def incidents_clock(incident):
    return services.clock(incident)


def _utc(local):
    return to_utc(local).replace(tzinfo=UTC)


def _choices(table):
    return [(key, pick(label)) for key, label in table.items()]


def _incident(incident_id):
    return get_or_404(Incident, incident_id)


def _affected(incident, affected_id):
    row = db.session.get(Affected, affected_id)
    if row is None or row.incident_id != incident.id:
        deny_row(Affected, affected_id)
    return row


def _back(incident, anchor=""):
    return redirect(url_for("incidents.detail", incident_id=incident.id) + anchor)


# --- lists and reporting -----------------------------------------------------------------------


@bp.route("/")
@require(VIEW)
def index():
    status = request.args.get("status") or ""
    overdue = request.args.get("overdue") == "1"
    stmt = scoped(select(Incident), current_user)
    if status in STATUSES:
        stmt = stmt.where(Incident.status == status)
    if overdue:
        stmt = stmt.where(services.overdue_filter())
    incidents = db.session.scalars(stmt.order_by(Incident.id.desc()).limit(200)).all()
    return render_template("incidents/index.html", incidents=incidents, status=status, overdue=overdue,
                           statuses=_choices(STATUSES))


@bp.route("/new", methods=["GET", "POST"])
@require(REPORT, kind="form")
def new():
    form = ReportForm()
    if form.validate_on_submit():
        try:
            incident = services.report(
                current_user, title=form.title.data, noticed_at=_utc(form.noticed_at.data),
                how_found=form.how_found.data, description=form.description.data,
                systems=form.systems.data or "", data_concerned=form.data_concerned.data or "")
        except ServiceError as exc:
            form.noticed_at.errors = [*form.noticed_at.errors, str(exc)]
        else:
            db.session.commit()
            flash(_("Incident %(number)s reported. The security officer has been informed.",
                    number=incident.number), "success")
            return _back(incident)
    return render_template("incidents/new.html", form=form), 400 if form.errors else 200


# --- one ticket --------------------------------------------------------------------------------


def _forms(incident, **bound):
    forms = {"comment": CommentForm(formdata=None)}
    if can(current_user, HANDLE):
        assess = AssessForm(formdata=None, severity=incident.severity, data_classes=incident.class_list,
                            estimated_count=incident.estimated_count)
        step = StepForm(formdata=None)
        step.to_status.data = services.NEXT.get(incident.status)
        notice = NoticeTextForm(formdata=None, **{n: getattr(incident, n) for n in services.NOTICE_FIELDS})
        forms.update(assess=assess, step=step, notice=notice, regulator=RegulatorForm(formdata=None),
                     close=CloseForm(formdata=None))
    forms.update(bound)
    if "assess" in forms:
        forms["assess"].severity.choices = _choices(SEVERITIES)
        forms["assess"].data_classes.choices = _choices(DATA_CLASSES)
        forms["step"].to_status.choices = _choices({k: STATUSES[k] for k in ("contained", "investigated", "notified")})
    return forms


def _detail(incident, status=200, **bound):
    visible = services.visible_customer_ids(current_user, [a.customer_id for a in incident.affected])
    affected = [(a, services.customer_label(a.customer, visible), a.customer_id in visible) for a in incident.affected]
    notifications = {}
    if can(current_user, HANDLE):
        for a in incident.affected:
            f = NotificationForm(formdata=None, prefix=f"a{a.id}", channel=a.channel, status=a.status)
            f.channel.choices, f.status.choices = _choices(CHANNELS), _choices(NOTICE_STATUSES)
            notifications[a.id] = f
    return render_template("incidents/detail.html", incident=incident, forms=_forms(incident, **bound),
                           affected=affected, notifications=notifications,
                           next_status=services.NEXT.get(incident.status),
                           can_handle=can(current_user, HANDLE), can_print=can(current_user, PRINT)), status


@bp.route("/<int:incident_id>")
@require(VIEW)
def detail(incident_id):
    return _detail(_incident(incident_id))


@bp.route("/<int:incident_id>/comment", methods=["POST"])
@require(VIEW, kind="action")
def comment(incident_id):
    incident = _incident(incident_id)
    form = CommentForm()
    if not form.validate():
        return _detail(incident, 400, comment=form)
    services.add_comment(current_user, incident, form.body.data)
    db.session.commit()
    flash(_("Comment added."), "success")
    return _back(incident, "#comments")


def _run(incident, action, anchor=""):
    """Call a service; a refusal is shown as a message on the ticket."""
    try:
        result = action()
    except ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
        return _back(incident, anchor), None
    db.session.commit()
    return None, result


@bp.route("/<int:incident_id>/assess", methods=["POST"])
@require(HANDLE, kind="action")
def assess(incident_id):
    incident = _incident(incident_id)
    form = _forms(incident, assess=AssessForm())["assess"]
    if not form.validate():
        return _detail(incident, 400, assess=form)
    stop, _changed = _run(incident, lambda: services.assess(
        current_user, incident, severity=form.severity.data, data_classes=form.data_classes.data,
        estimated_count=form.estimated_count.data, note=form.triage_note.data))
    if stop:
        return stop
    flash(_("Assessment saved."), "success")
    return _back(incident)


@bp.route("/<int:incident_id>/advance", methods=["POST"])
@require(HANDLE, kind="action")
def advance(incident_id):
    incident = _incident(incident_id)
    form = _forms(incident, step=StepForm())["step"]
    if not form.validate():
        return _detail(incident, 400, step=form)
    stop, _result = _run(incident, lambda: services.advance(current_user, incident, form.to_status.data, form.note.data))
    if stop:
        return stop
    flash(_("The ticket is now %(status)s.", status=incidents_label("status", incident.status)), "success")
    return _back(incident)


@bp.route("/<int:incident_id>/regulator", methods=["POST"])
@require(HANDLE, kind="action")
def regulator(incident_id):
    incident = _incident(incident_id)
    form = RegulatorForm()
    if not form.validate():
        return _detail(incident, 400, regulator=form)
    stop, _result = _run(incident, lambda: services.record_regulator_report(
        current_user, incident, _utc(form.reported_at.data), form.regulator_note.data))
    if stop:
        return stop
    flash(_("Report to the authority recorded."), "success")
    return _back(incident)


@bp.route("/<int:incident_id>/notice-text", methods=["POST"])
@require(HANDLE, kind="action")
def notice_text(incident_id):
    incident = _incident(incident_id)
    form = NoticeTextForm()
    if not form.validate():
        return _detail(incident, 400, notice=form)
    stop, _result = _run(incident, lambda: services.update_notice_text(
        current_user, incident, **{n: getattr(form, n).data for n in services.NOTICE_FIELDS}))
    if stop:
        return stop
    flash(_("Notice text saved."), "success")
    return _back(incident, "#notification")


@bp.route("/<int:incident_id>/close", methods=["POST"])
@require(HANDLE, kind="action")
def close(incident_id):
    incident = _incident(incident_id)
    form = CloseForm()
    if not form.validate():
        return _detail(incident, 400, close=form)
    stop, _result = _run(incident, lambda: services.close(
        current_user, incident, note=form.closing_note.data or "",
        **{n: getattr(form, n).data for n in services.SUMMARY_FIELDS}))
    if stop:
        return stop
    flash(_("Incident closed."), "success")
    return _back(incident)


# --- affected customers ------------------------------------------------------------------------


@bp.route("/<int:incident_id>/affected", methods=["GET", "POST"])
@require(HANDLE, kind="form")
def affected(incident_id):
    incident = _incident(incident_id)
    form = AffectedForm()
    results = None
    if form.validate_on_submit():
        try:
            results = services.add_affected(current_user, incident, form.lines.data)
        except ServiceError as exc:
            db.session.rollback()
            form.lines.errors = [*form.lines.errors, str(exc)]
        else:
            db.session.commit()
            # what could not be matched stays in the box, to be corrected and sent again
            form.lines.data = "\n".join(r.text for r in results if r.outcome in ("unknown", "malformed"))
    return render_template("incidents/affected.html", incident=incident, form=form, results=results), (
        400 if form.errors else 200)


@bp.route("/<int:incident_id>/affected/<int:affected_id>", methods=["POST"])
@require(HANDLE, kind="action")
def notification(incident_id, affected_id):
    incident = _incident(incident_id)
    row = _affected(incident, affected_id)
    form = NotificationForm(prefix=f"a{row.id}")
    form.channel.choices, form.status.choices = _choices(CHANNELS), _choices(NOTICE_STATUSES)
    if not form.validate():
        flash(_("Choose a channel and a status."), "danger")
        return _back(incident, "#notification")
    stop, _result = _run(incident, lambda: services.update_notification(
        current_user, incident, row, form.channel.data, form.status.data), "#notification")
    return stop or _back(incident, "#notification")


@bp.route("/<int:incident_id>/affected/<int:affected_id>/remove", methods=["POST"])
@require(HANDLE, kind="action")
def remove_affected(incident_id, affected_id):
    incident = _incident(incident_id)
    row = _affected(incident, affected_id)
    stop, _result = _run(incident, lambda: services.remove_affected(current_user, incident, row), "#notification")
    return stop or _back(incident, "#notification")


# --- evidence ----------------------------------------------------------------------------------


def _evidence_form():
    form = EvidenceForm(request.args if request.method == "GET" else request.form)
    form.kinds.choices = [(k, pick(v)) for k, v in EVIDENCE_LABELS.items()]
    return form


def _search(incident, form):
    """(account, entries) of a valid search form, or None with the reason on the form."""
    if not form.validate():
        return None
    account = services.find_account(form.username.data)
    if account is None:
        form.username.errors = [*form.username.errors, _("No such account.")]
        return None
    try:
        found = services.search_evidence(current_user, incident, account, form.kinds.data or [],
                                         _utc(form.since.data), _utc(form.until.data))
    except ServiceError as exc:
        form.until.errors = [*form.until.errors, str(exc)]
        return None
    return account, found


@bp.route("/<int:incident_id>/evidence")
@require(HANDLE)
def evidence(incident_id):
    incident = _incident(incident_id)
    form = _evidence_form()
    result = _search(incident, form) if request.args else None
    if result is not None:
        db.session.commit()
    linked = {e.entry_id for e in incident.evidence}
    return render_template("incidents/evidence.html", incident=incident, form=form,
                           found=result[1] if result else None, linked=linked)


@bp.route("/<int:incident_id>/evidence/link", methods=["POST"])
@require(HANDLE, kind="action")
def link_evidence(incident_id):
    incident = _incident(incident_id)
    form = _evidence_form()
    result = _search(incident, form)
    if result is None:
        flash(_("The search could not be repeated; nothing was linked."), "danger")
        return _back(incident, "#evidence")
    chosen = {int(v) for v in request.form.getlist("entry") if v.isdigit()}
    linked = services.link_evidence(current_user, incident, result[1], chosen)
    db.session.commit()
    flash(_("%(count)d entries linked as evidence.", count=len(linked)), "success")
    return _back(incident, "#evidence")


# --- PDFs --------------------------------------------------------------------------------------


def _notice_context(incident, rows):
    visible = services.visible_customer_ids(current_user, [a.customer_id for a in rows])
    return {
        "incident": incident, "classes": [pick(DATA_CLASSES[c]) for c in incident.class_list],
        "letters": [{"customer": services.customer_label(a.customer, visible)} for a in rows],
        "noticed_on": to_user_timezone(incident.noticed_at).strftime("%Y-%m-%d"),
        "texts": {n: getattr(incident, n) or "" for n in services.NOTICE_FIELDS},
    }


def _notice_pdf(incident, rows, filename):
    if not rows:
        flash(_("No affected customers on this ticket."), "danger")
        return _back(incident, "#notification")
    if not all((incident.notice_what, incident.notice_measures, incident.notice_advice, incident.notice_contact)):
        flash(_("Write the notice text first."), "danger")
        return _back(incident, "#notification")
    return pdf.response("incidents/notice_pdf.html", filename=filename, action="incidents.notice.printed",
                        target=incident, fallback=url_for("incidents.detail", incident_id=incident.id),
                        audit_details={"letters": len(rows)}, title="个人信息安全事件告知书",
                        **_notice_context(incident, rows))


@bp.route("/<int:incident_id>/affected/<int:affected_id>/notice.pdf")
@require(PRINT, kind="download")
def notice_pdf(incident_id, affected_id):
    incident = _incident(incident_id)
    row = _affected(incident, affected_id)
    return _notice_pdf(incident, [row], f"告知书-{incident.number}-{row.customer.number}.pdf")


@bp.route("/<int:incident_id>/notices.pdf")
@require(PRINT, kind="download")
def notices_pdf(incident_id):
    incident = _incident(incident_id)
    return _notice_pdf(incident, list(incident.affected), f"告知书-{incident.number}.pdf")


@bp.route("/<int:incident_id>/report.pdf")
@require(PRINT, kind="download")
def report_pdf(incident_id):
    incident = _incident(incident_id)
    if incident.status != "closed":
        flash(_("The incident report is available once the ticket is closed."), "danger")
        return _back(incident)
    counts = {pick(label): sum(1 for a in incident.affected if a.status == key)
              for key, label in NOTICE_STATUSES.items()}
    steps = [(pick(STATUSES[s.to_status]), str(s.actor), incidents_time(s.at), s.note or "") for s in incident.steps]
    evidence = [(incidents_time(e.at), e.actor, e.action, e.target) for e in incident.evidence]
    return pdf.response("incidents/report_pdf.html", filename=f"事件报告-{incident.number}.pdf",
                        action="incidents.report.printed", target=incident,
                        fallback=url_for("incidents.detail", incident_id=incident.id), title="信息安全事件报告",
                        incident=incident, steps=steps, evidence=evidence, counts=counts,
                        severity=pick(SEVERITIES.get(incident.severity, {"zh_CN": "—", "en": "—"})),
                        classes="、".join(pick(DATA_CLASSES[c]) for c in incident.class_list),
                        noticed_at=incidents_time(incident.noticed_at), reported_at=incidents_time(incident.reported_at),
                        regulator_at=incidents_time(incident.regulator_reported_at),
                        closed_at=incidents_time(incident.closed_at), reporter=str(incident.reporter),
                        department=str(incident.department or "—"))
