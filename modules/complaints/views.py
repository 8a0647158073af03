"""Pages of the complaints module (blueprint "complaints", /complaints/): parse, call a service,
render. Every route declares its permission; complaints and customers outside the user's remit
answer 404 (audited); a step the user may not take answers 403 (audited)."""
from __future__ import annotations

import io
from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from core.api import (
    audit,
    bar_chart,
    can,
    csv_response,
    db,
    deny,
    deny_row,
    get_or_404,
    pdf,
    pick,
    require,
    scoped,
    utcnow,
)
from modules.customers import Customer, scoped_customers

from . import services
from .forms import AttachmentForm, EditForm, IntakeForm, PolicyForm, StepForm
from .models import CHANNELS, SEVERITIES, STATUSES, STEP_ACTIONS, Complaint
from .models import ComplaintAttachment as Attachment
from .permissions import CONFIGURE, CREATE, HANDLE, PRINT, STATS, VIEW

bp = Blueprint("complaints", __name__, url_prefix="/complaints")

STEP_NAMES = ("accept", "start", "resolve", "return", "visit", "close", "reopen", "assign")
STEP_LABELS = {
    "accept": {"zh_CN": "受理", "en": "Accept"},
    "start": {"zh_CN": "开始处理", "en": "Start handling"},
    "resolve": {"zh_CN": "提交处理结果", "en": "Record the resolution"},
    "return": {"zh_CN": "退回", "en": "Send back"},
    "visit": {"zh_CN": "记录回访", "en": "Record the return visit"},
    "close": {"zh_CN": "关闭投诉", "en": "Close"},
    "reopen": {"zh_CN": "重新打开", "en": "Reopen"},
    "assign": {"zh_CN": "指派处理人", "en": "Assign"},
}
LABELS = {"channel": CHANNELS, "severity": SEVERITIES, "status": STATUSES, "step": STEP_LABELS,
          "action": STEP_ACTIONS}


@bp.app_template_global("complaints_label")
def complaints_label(table, key):
    return pick(LABELS[table].get(key, {"zh_CN": key or "", "en": key or ""}))


@bp.app_template_global("complaints_time")
def complaints_time(dt):
    return services.local_text(dt)


@bp.context_processor
def _nav_context():
    if not current_user.is_authenticated:
        return {}
    return {"complaints_badge": services.my_open_count(current_user),
            "complaints_can": {name: can(current_user, name) for name in (CREATE, STATS, CONFIGURE)}}


def _fill_choices(form, department_id, category=None):
    rules = services.policy(department_id)
    form.channel.choices = [(k, pick(v)) for k, v in CHANNELS.items()]
    form.severity.choices = [(k, pick(v)) for k, v in SEVERITIES.items()]
    cats = list(rules.categories)
    if category and category not in cats:  # a category since removed stays selectable for its complaint
        cats.append(category)
    form.category.choices = [(c, c) for c in cats]


def _handler_choices(department_id, empty_label):
    return [("", empty_label)] + [(u.id, str(u)) for u in services.handlers(department_id)]


def _field_error(form, exc):
    """Put a service's error next to its field; an error of no field is returned for the top of the form."""
    target = getattr(form, exc.field, None) if exc.field else None
    if target is None:
        return [str(exc)]
    target.errors = [*list(target.errors or ()), str(exc)]
    return []


def _errors_to_form(form, exc):
    target = getattr(form, exc.field, None) if exc.field else None
    if target is not None:
        target.errors = [*target.errors, str(exc)] if isinstance(target.errors, list) else [str(exc)]
    else:
        flash(str(exc), "danger")


# --- list and intake ----------------------------------------------------------------------------


@bp.route("/")
@require(VIEW)
def index():
    status = request.args.get("status", "open")
    mine = request.args.get("mine") == "1"
    overdue_only = request.args.get("overdue") == "1"
    rows = services.listing(current_user, status=status, mine=mine, overdue_only=overdue_only)
    now = utcnow()
    return render_template("complaints/index.html", rows=rows, status=status, mine=mine,
                           overdue_only=overdue_only, state=lambda c: services.deadline_state(c, now),
                           customer_name=services.customer_name, statuses=STATUSES)


@bp.route("/new", methods=["GET", "POST"])
@require(CREATE, kind="form")
def new():
    customer = None
    customer_id = request.args.get("customer_id", type=int)
    if customer_id is not None:
        customer = services.customer_in_remit(customer_id, current_user)
        if customer is None:
            deny_row(Customer, customer_id)
    form = IntakeForm()
    department_id = customer.department_id if customer else current_user.department_id
    _fill_choices(form, department_id)
    is_head = current_user.role == "head"
    if is_head:
        form.handler_id.choices = _handler_choices(department_id, _("(assign later)"))
    if request.method == "POST" and form.validate():
        if customer is None:
            number = (form.customer_number.data or "").strip().upper()
            customer = db.session.execute(scoped_customers(current_user).where(
                Customer.number == number)).scalar_one_or_none() if number else None
            if customer is None:
                form.customer_number.errors = [_("No customer with this number in your remit.")]
        if customer is not None:
            data = {name: getattr(form, name).data for name in
                    ("channel", "category", "severity", "description", "customer_request")}
            data["handler_id"] = form.handler_id.data if is_head else None
            upload = form.attachment.data
            path = None
            try:
                c = services.create_complaint(current_user, customer, data)
                if upload and getattr(upload, "filename", ""):
                    _att, path = services.add_attachment(current_user, c, upload.filename,
                                                         services.read_upload(upload.stream))
                db.session.commit()
            except services.ComplaintError as exc:
                db.session.rollback()
                _errors_to_form(form, exc)
            except BaseException:
                db.session.rollback()
                if path is not None:
                    services.remove_files([path])
                raise
            else:
                flash(_("Complaint %(number)s registered.", number=c.number), "success")
                if c.duplicate_of is not None:
                    flash(_("Possible duplicate of %(number)s (same customer and category within 7 days).",
                            number=c.duplicate_of.number), "warning")
                return redirect(url_for("complaints.detail", complaint_id=c.id))
    return render_template("complaints/form.html", form=form, customer=customer, is_head=is_head,
                           customer_name=services.customer_name, editing=None), \
        400 if request.method == "POST" else 200


# --- one complaint ------------------------------------------------------------------------------


def _complaint(complaint_id):
    return get_or_404(Complaint, complaint_id, current_user)


@bp.route("/<int:complaint_id>")
@require(VIEW)
def detail(complaint_id):
    return _render_detail(_complaint(complaint_id))


def _render_detail(c, step_form=None, failed_step=None, attachment_form=None, general_errors=(), status=200):
    """The complaint's page; after a refused step or upload, that form again with its errors next to
    its fields and what was typed kept (answered 400)."""
    steps = services.allowed_steps(current_user, c)
    form = StepForm(formdata=None)
    if "assign" in steps:
        form.handler_id.choices = _handler_choices(c.department_id, _("(choose)"))
        if step_form is not None:
            step_form.handler_id.choices = form.handler_id.choices
    return render_template("complaints/detail.html", c=c, steps=steps, form=form,
                           step_form=step_form, failed_step=failed_step, general_errors=list(general_errors),
                           state=services.deadline_state(c), next_due=services.next_due(c),
                           may_handle=services.may_handle(current_user, c),
                           may_attach=services.may_handle(current_user, c) or (
                               c.created_by == current_user.id and c.status == "new"),
                           attachment_form=attachment_form or AttachmentForm(formdata=None),
                           customer_name=services.customer_name, safe=services._safe,
                           can_print=can(current_user, PRINT)), status


@bp.route("/<int:complaint_id>/edit", methods=["GET", "POST"])
@require(HANDLE, kind="form")
def edit(complaint_id):
    c = _complaint(complaint_id)
    if not services.may_handle(current_user, c):
        deny(HANDLE)
    if c.status == "closed":
        flash(_("A closed complaint cannot be edited; reopen it with a reason first."), "danger")
        return redirect(url_for("complaints.detail", complaint_id=c.id))
    form = EditForm(obj=None if request.method == "POST" else c)
    _fill_choices(form, c.department_id, c.category)
    if request.method == "POST" and form.validate():
        try:
            services.update_complaint(current_user, c, {f.name: f.data for f in form if f.name != "csrf_token"})
            db.session.commit()
        except services.ComplaintError as exc:
            db.session.rollback()
            _errors_to_form(form, exc)
        except StaleDataError:
            db.session.rollback()
            flash(_("Someone else changed this complaint meanwhile. Reload the page and try again."), "danger")
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("complaints.detail", complaint_id=c.id))
    return render_template("complaints/form.html", form=form, customer=c.customer, is_head=False,
                           customer_name=services.customer_name, editing=c), 400 if request.method == "POST" else 200


@bp.route(f"/<int:complaint_id>/step/<any({', '.join(STEP_NAMES)}):step>", methods=["POST"])
@require(HANDLE, kind="action")
def step(complaint_id, step):
    c = _complaint(complaint_id)
    form = StepForm()
    back = redirect(url_for("complaints.detail", complaint_id=c.id))
    if not form.validate():
        return _render_detail(c, step_form=form, failed_step=step, status=400)
    data = {f.name: f.data for f in form if f.name != "csrf_token"}
    filed = None
    try:
        filed = services.take_step(current_user, c, step, data)
        db.session.commit()
    except services.NotAllowed as exc:
        deny(exc.permission)
    except services.ComplaintError as exc:
        db.session.rollback()
        return _render_detail(c, step_form=form, failed_step=step, status=400,
                              general_errors=_field_error(form, exc))
    except StaleDataError:
        db.session.rollback()
        flash(_("Someone else changed this complaint meanwhile. Reload the page and try again."), "danger")
        return back
    except BaseException:
        db.session.rollback()
        if filed:
            services.remove_files(filed[1])
        raise
    flash(_("%(step)s: done.", step=pick(STEP_LABELS[step])), "success")
    if filed:
        flash(_("Filed in the customer's archive as %(number)s.", number=filed[0]), "info")
    return back


@bp.route("/<int:complaint_id>/attachments", methods=["POST"])
@require(VIEW, kind="action")
def upload(complaint_id):
    c = _complaint(complaint_id)
    form = AttachmentForm()
    back = redirect(url_for("complaints.detail", complaint_id=c.id))
    file = form.attachment.data
    if not form.validate() or not file or not getattr(file, "filename", ""):
        form.attachment.errors = [_("Choose a file.")]
        return _render_detail(c, attachment_form=form, status=400)
    path = None
    try:
        _att, path = services.add_attachment(current_user, c, file.filename, services.read_upload(file.stream))
        db.session.commit()
    except services.NotAllowed as exc:
        deny(exc.permission)
    except services.ComplaintError as exc:
        db.session.rollback()
        form.attachment.errors = [str(exc)]
        return _render_detail(c, attachment_form=form, status=400)
    except BaseException:
        db.session.rollback()
        if path is not None:
            services.remove_files([path])
        raise
    flash(_("Attachment added."), "success")
    return back


@bp.route("/attachments/<int:attachment_id>")
@require(VIEW, kind="download")
def attachment(attachment_id):
    att = db.session.get(Attachment, attachment_id)
    if att is None:
        deny_row(Attachment, attachment_id)
    in_remit = db.session.execute(scoped(select(Complaint.id), current_user, Complaint)
                                  .where(Complaint.id == att.complaint_id)).scalar_one_or_none()
    if in_remit is None:
        deny_row(Attachment, attachment_id)
    data = services.read_attachment(att)
    if data is None:
        flash(_("This attachment can no longer be read."), "danger")
        return redirect(url_for("complaints.detail", complaint_id=att.complaint_id))
    audit.record("complaints.attachment.downloaded", target=att, number=att.complaint.number)
    db.session.commit()
    name = services._safe(lambda: att.filename) or f"attachment{services.ATTACHMENT_KINDS[att.kind][1][0]}"
    response = send_file(io.BytesIO(data), mimetype=services.ATTACHMENT_KINDS[att.kind][0], as_attachment=True,
                         download_name=name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:complaint_id>/form.pdf")
@require(PRINT, kind="download")
def form_pdf(complaint_id):
    """The 投诉处理单 as an A4 PDF: personal fields masked, history in company time."""
    c = _complaint(complaint_id)
    context = services.form_context(c, current_user)
    return pdf.response("complaints/form_pdf.html", filename=f"投诉处理单-{c.number}.pdf",
                        action="complaints.form.printed", target=c,
                        fallback=url_for("complaints.detail", complaint_id=c.id), **context)


# --- head: overdue list, policy, statistics -----------------------------------------------------


@bp.route("/overdue")
@require(STATS)
def overdue():
    rows = services.overdue(current_user.department_id) if current_user.department_id else []
    return render_template("complaints/overdue.html", rows=rows, next_due=services.next_due,
                           customer_name=services.customer_name)


@bp.route("/policy", methods=["GET", "POST"])
@require(CONFIGURE, kind="form")
def policy():
    rules = services.policy(current_user.department_id)
    form = PolicyForm()
    if request.method == "GET":
        form.categories.data = "\n".join(rules.categories)
        for sev, (resp, resol) in rules.hours.items():
            getattr(form, f"{sev}_response").data = resp
            getattr(form, f"{sev}_resolution").data = resol
        form.important_percent.data = rules.important_percent
        form.working_days.data = rules.working_days
    elif form.validate():
        try:
            changed = services.save_policy(current_user, current_user.department_id, form.data_dict())
            db.session.commit()
        except services.NotAllowed as exc:
            deny(exc.permission)
        except services.ComplaintError as exc:
            db.session.rollback()
            _errors_to_form(form, exc)
        else:
            flash(_("Saved.") if changed else _("Nothing changed."), "success")
            return redirect(url_for("complaints.policy"))
    return render_template("complaints/policy.html", form=form, rules=rules), 400 if request.method == "POST" else 200


def _period():
    """[start, end) in UTC from ?start=YYYY-MM&end=YYYY-MM (company months); default the last
    12 months including this one."""
    tz = services.zone()
    today = datetime.now(UTC).astimezone(tz)

    def month(text, default):
        try:
            y, m = (int(x) for x in (text or "").split("-"))
            if 2000 <= y <= 2100 and 1 <= m <= 12:
                return y, m
        except ValueError:
            pass
        return default

    first = today.year * 12 + today.month - 1 - 11
    start_y, start_m = month(request.args.get("start"), (first // 12, first % 12 + 1))
    end_y, end_m = month(request.args.get("end"), (today.year, today.month))
    if (end_y, end_m) < (start_y, start_m):
        start_y, start_m, end_y, end_m = end_y, end_m, start_y, start_m
    start = datetime(start_y, start_m, 1, tzinfo=tz)
    after = datetime(end_y + (end_m == 12), end_m % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), after.astimezone(UTC), f"{start_y:04d}-{start_m:02d}", f"{end_y:04d}-{end_m:02d}"


@bp.route("/stats")
@require(STATS)
def stats():
    start, end, start_text, end_text = _period()
    figures = services.stats(current_user.department_id, start, end) if current_user.department_id else None
    chart_list = []
    if figures:
        titles = {"month": _("Complaints per month"), "category": _("By category"), "channel": _("By channel"),
                  "severity": _("By severity"), "handler": _("By handler")}
        chart_list = [bar_chart(f"complaints-chart-{key}", titles[key], figures["by"][key]) for key in titles]
        chart_list.append(bar_chart("complaints-chart-satisfaction", _("Satisfaction (1-5)"),
                                    {str(k): v for k, v in figures["satisfaction"].items()}))
    return render_template("complaints/stats.html", figures=figures, charts=chart_list,
                           start=start_text, end=end_text)


@bp.route("/stats.csv")
@require(STATS, kind="download")
def stats_csv():
    start, end, start_text, end_text = _period()
    figures = services.stats(current_user.department_id, start, end)
    names = {"month": "月份", "category": "类别", "channel": "渠道", "severity": "严重程度", "handler": "处理人"}
    rows = [(name, label, n) for key, name in names.items() for label, n in figures["by"][key].items()]
    rows += [("满意度", score, n) for score, n in figures["satisfaction"].items()]
    rows += [("投诉总数", "", figures["total"]),
             ("首次响应时间中位数（小时）", "", figures["median_response_hours"]),
             ("解决时间中位数（小时）", "", figures["median_resolution_hours"]),
             ("超期占比（%）", "", figures["overdue_share"]),
             ("平均满意度", "", figures["satisfaction_mean"])]
    audit.record("complaints.stats.exported", target_type="core_department", target_id=current_user.department_id,
                 start=start_text, end=end_text, total=figures["total"])
    db.session.commit()
    return csv_response(["统计项", "分组", "数量"], rows, f"投诉统计-{start_text}-{end_text}.csv")


