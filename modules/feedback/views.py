"""Pages of the feedback module: blueprint "feedback" (/feedback/) for staff and heads, and its
public blueprint "feedback_public" (/f/<token>) for customers holding a one-time link. Parse,
call a service, render. Rows outside the user's remit answer 404 (audited)."""
from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from core.api import (
    ServiceError,
    audit,
    bar_chart,
    can,
    csv_response,
    db,
    deny_row,
    get_or_404,
    local_today,
    pdf,
    pick,
    public,
    require,
)
from modules.customers import CUSTOMER_KINDS, STATUSES, Customer

from . import services
from .forms import CompleteForm, LinkForm, PlanForm, QuestionForm, TemplateForm, answer_form, answers_from
from .models import ANY, FIELD_KINDS, GRADES, Action, Response, Template, TemplateVersion
from .permissions import DESIGN, FILL, LINK, PLAN, PRINT, SUMMARY, VIEW

bp = Blueprint("feedback", __name__, url_prefix="/feedback")
public_bp = Blueprint("feedback_public", __name__, url_prefix="/f")


@bp.app_template_global("feedback_kind")
def feedback_kind(kind):
    return pick(FIELD_KINDS.get(kind, {"zh_CN": kind, "en": kind}))


@bp.app_template_global("feedback_time")
def feedback_time(dt):
    return services.local_text(dt)


@bp.app_template_global("feedback_answer")
def feedback_answer(question, value):
    return services.answer_text(question, value)


@bp.context_processor
def _nav_context():
    if not current_user.is_authenticated:
        return {}
    return {"feedback_can": {name: can(current_user, name) for name in (DESIGN, FILL, LINK, PLAN, PRINT, SUMMARY)}}


def _to_form(form, exc, general=None):
    """Put a service's error next to its field; one of no field goes to ``general`` (shown at the top
    of the form) when given, else to a flash."""
    target = getattr(form, getattr(exc, "field", None) or "", None) if form is not None else None
    if target is not None:
        target.errors = [*target.errors, str(exc)] if isinstance(target.errors, list) else [str(exc)]
    elif general is not None:
        general.append(str(exc))
    else:
        flash(str(exc), "danger")


def _status():
    """A form page re-rendered after a POST shows errors: answered 400."""
    return 400 if request.method == "POST" else 200


def _template(template_id):
    return get_or_404(Template, template_id)


def _version(version_id):
    v = db.session.get(TemplateVersion, version_id)
    if v is None:
        deny_row(TemplateVersion, version_id)
    _template(v.template_id)  # remit of its template
    return v


def _customer(customer_id):
    customer = services.customer_in_remit(customer_id, current_user)
    if customer is None:
        deny_row(Customer, customer_id)
    return customer


def _target_choices(form):
    form.customer_kind.choices = [("", pick(ANY))] + [(k, pick(v)) for k, v in CUSTOMER_KINDS.items()]
    form.customer_status.choices = [("", pick(ANY))] + [(k, pick(v)) for k, v in STATUSES.items()]
    form.grade.choices = [("", pick(ANY))] + [(k, pick(v)) for k, v in GRADES.items()]


# --- templates ----------------------------------------------------------------------------------


@bp.route("/")
@require(VIEW)
def index():
    rows = services.templates(current_user)
    recent = services.responses(current_user, limit=50)
    return render_template("feedback/index.html", templates=rows, recent=recent, target_text=services.target_text,
                           customer_name=_customer_name)


def _customer_name(customer):
    try:
        return customer.display_name or ""
    except Exception:  # a destroyed key: the number still names the customer
        return ""


@bp.route("/templates/new", methods=["GET", "POST"])
@require(DESIGN, kind="form")
def template_new():
    form = TemplateForm()
    _target_choices(form)
    general = []
    if form.validate_on_submit():
        try:
            t = services.create_template(current_user, form.data)
        except ServiceError as exc:
            db.session.rollback()
            _to_form(form, exc, general)
        else:
            db.session.commit()
            flash(_("Template created; add its questions, then publish it."), "success")
            return redirect(url_for("feedback.template_detail", template_id=t.id))
    return render_template("feedback/template_form.html", form=form, t=None, general_errors=general), _status()


@bp.route("/templates/<int:template_id>")
@require(VIEW)
def template_detail(template_id):
    return _template_page(_template(template_id))


def _template_page(t, action_error=None, action_key=None, status=200):
    """The template's page; after a refused design action its message stands next to the question's
    row (``action_key``) or next to the publish button (answered 400)."""
    questions = services.questions_of(t)
    if action_key is not None and action_key not in {q["key"] for q in questions}:
        action_key = None  # a question no longer there: the message goes above the table
    return render_template("feedback/template.html", t=t, questions=questions, preview=answer_form(questions),
                           changed=services.has_changes(t), target_text=services.target_text(t),
                           may_design=can(current_user, DESIGN) and current_user.role == "head",
                           action_error=action_error, action_key=action_key), status


@bp.route("/templates/<int:template_id>/edit", methods=["GET", "POST"])
@require(DESIGN, kind="form")
def template_edit(template_id):
    t = _template(template_id)
    form = TemplateForm(obj=t)
    _target_choices(form)
    general = []
    if form.validate_on_submit():
        try:
            services.update_template(current_user, t, form.data)
        except ServiceError as exc:
            db.session.rollback()
            _to_form(form, exc, general)
        else:
            db.session.commit()
            return redirect(url_for("feedback.template_detail", template_id=t.id))
    return render_template("feedback/template_form.html", form=form, t=t, general_errors=general), _status()


def _question_page(t, form, key=None):
    form.kind.choices = [(k, pick(v)) for k, v in FIELD_KINDS.items()]
    general = []
    if form.validate_on_submit():
        try:
            if key is None:
                services.add_question(current_user, t, form.data)
            else:
                services.update_question(current_user, t, key, form.data)
        except ServiceError as exc:
            db.session.rollback()
            _to_form(form, exc, general)
        else:
            db.session.commit()
            return redirect(url_for("feedback.template_detail", template_id=t.id))
    return render_template("feedback/question_form.html", form=form, t=t, key=key, general_errors=general), _status()


@bp.route("/templates/<int:template_id>/questions/new", methods=["GET", "POST"])
@require(DESIGN, kind="form")
def question_new(template_id):
    return _question_page(_template(template_id), QuestionForm())


@bp.route("/templates/<int:template_id>/questions/<key>/edit", methods=["GET", "POST"])
@require(DESIGN, kind="form")
def question_edit(template_id, key):
    t = _template(template_id)
    current = next((q for q in services.questions_of(t) if q["key"] == key), None)
    if current is None:
        abort(404)
    form = QuestionForm(data={**current, "options": "\n".join(current.get("options") or [])}
                        if request.method == "GET" else None)
    return _question_page(t, form, key)


def _design_action(template_id, func, key=None):
    t = _template(template_id)
    try:
        func(t)
    except ServiceError as exc:
        db.session.rollback()
        return _template_page(t, action_error=str(exc), action_key=key, status=400)
    db.session.commit()
    return redirect(url_for("feedback.template_detail", template_id=t.id))


@bp.route("/templates/<int:template_id>/questions/<key>/delete", methods=["POST"])
@require(DESIGN, kind="action")
def question_delete(template_id, key):
    return _design_action(template_id, lambda t: services.remove_question(current_user, t, key), key)


@bp.route("/templates/<int:template_id>/questions/<key>/move", methods=["POST"])
@require(DESIGN, kind="action")
def question_move(template_id, key):
    step = -1 if request.form.get("direction") == "up" else 1
    return _design_action(template_id, lambda t: services.move_question(current_user, t, key, step), key)


@bp.route("/templates/<int:template_id>/publish", methods=["POST"])
@require(DESIGN, kind="action")
def publish(template_id):
    def do(t):
        v = services.publish(current_user, t)
        flash(_("Version %(n)s published.", n=v.number), "success")
    return _design_action(template_id, do)


@bp.route("/versions/<int:version_id>")
@require(VIEW)
def version_detail(version_id):
    v = _version(version_id)
    return render_template("feedback/version.html", v=v, questions=v.question_list,
                           preview=answer_form(v.question_list))


def _pdf_questions(questions, answers=None):
    rows = []
    for q in questions:
        rows.append({"label": q["label"], "kind": q["kind"], "help": q.get("help") or "",
                     "required": bool(q.get("required")), "options": list(q.get("options") or []),
                     "answer": services.answer_text(q, answers.get(q["key"])) if answers is not None else None})
    return rows


@bp.route("/versions/<int:version_id>/blank.pdf")
@require(PRINT, kind="download")
def version_pdf(version_id):
    v = _version(version_id)
    return pdf.response("feedback/form_pdf.html", filename=f"客户信息反馈表-{v.title}-v{v.number}.pdf",
                        action="feedback.form.printed", target=v, audit_details={"blank": True},
                        fallback=url_for("feedback.version_detail", version_id=v.id),
                        title=v.title, version=v.number, questions=_pdf_questions(v.question_list),
                        filled=False, qr=None, link_url=None, customer_number=None, meta=[])


# --- filling ------------------------------------------------------------------------------------


@bp.route("/customers/<int:customer_id>/fill", methods=["GET", "POST"])
@require(FILL, kind="form")
def fill(customer_id):
    customer = _customer(customer_id)
    choices = services.templates_for(current_user, customer)
    template_id = request.values.get("template_id", type=int)
    t = next((x for x in choices if x.id == template_id), None)
    if t is None:
        return render_template("feedback/choose.html", customer=customer, choices=choices,
                               customer_name=_customer_name)
    v = t.latest
    questions = v.question_list
    form = answer_form(questions)
    if form.validate_on_submit():
        r = services.store_response(current_user, customer, v, answers_from(form, questions))
        db.session.commit()
        flash(_("Feedback form saved."), "success")
        return redirect(url_for("feedback.response_detail", response_id=r.id))
    return render_template("feedback/fill.html", customer=customer, v=v, questions=questions, form=form,
                           customer_name=_customer_name)


@bp.route("/responses/<int:response_id>")
@require(VIEW)
def response_detail(response_id):
    r = get_or_404(Response, response_id)
    services.mark_seen(current_user, r)
    db.session.commit()
    return render_template("feedback/response.html", r=r, questions=r.version.question_list,
                           answers=services.answers_of(r), customer_name=_customer_name,
                           may_plan=can(current_user, PLAN) and services.may_plan(current_user, r),
                           state=services.action_state)


@bp.route("/responses/<int:response_id>/form.pdf")
@require(PRINT, kind="download")
def response_pdf(response_id):
    r = get_or_404(Response, response_id)
    v = r.version
    meta = [(_("Customer"), f"{r.customer.number} {_customer_name(r.customer)}"),
            (_("Filled"), services.local_text(r.created_at)),
            (_("Filled by"), _("the customer (one-time link)") if r.by_customer else str(r.filler or ""))]
    return pdf.response("feedback/form_pdf.html", filename=f"客户信息反馈表-{r.customer.number}-{r.id}.pdf",
                        action="feedback.form.printed", target=r,
                        fallback=url_for("feedback.response_detail", response_id=r.id),
                        title=v.title, version=v.number, filled=True, qr=None, link_url=None,
                        questions=_pdf_questions(v.question_list, services.answers_of(r)), meta=meta,
                        customer_number=r.customer.number)


@bp.route("/customers/<int:customer_id>/link", methods=["GET", "POST"])
@require(LINK, kind="form")
def link_new(customer_id):
    customer = _customer(customer_id)
    choices = services.templates_for(current_user, customer)
    form = LinkForm()
    form.version_id.choices = [(t.latest.id, f"{t.name}（v{t.latest.number}）") for t in choices]
    if form.validate_on_submit():
        v = next((t.latest for t in choices if t.latest.id == form.version_id.data), None)
        if v is None:
            form.version_id.errors = [_("Choose a template from the list.")]
        else:
            try:
                link, token = services.create_link(current_user, customer, v, form.days.data)
            except ServiceError as exc:
                db.session.rollback()
                _to_form(form, exc)
            else:
                db.session.commit()
                url = url_for("feedback_public.form", token=token, _external=True)
                if form.output.data == "pdf":
                    return pdf.response(
                        "feedback/form_pdf.html", filename=f"客户信息反馈表-{customer.number}.pdf",
                        action="feedback.form.printed", target=link, audit_details={"blank": True, "qr": True},
                        fallback=url_for("feedback.link_new", customer_id=customer.id),
                        title=v.title, version=v.number, questions=_pdf_questions(v.question_list), filled=False,
                        qr=services.qr_path(url), link_url=url, customer_number=customer.number, meta=[],
                        expires=services.local_text(link.expires_at))
                return render_template("feedback/link_created.html", customer=customer, url=url, link=link, v=v,
                                       customer_name=_customer_name)
    return render_template("feedback/link_form.html", customer=customer, form=form, customer_name=_customer_name)


# --- follow-up plans ----------------------------------------------------------------------------


def _plan_actions(department_id):
    """Action rows of the plan form: (text, owner id, due date), or a ServiceError."""
    texts = request.form.getlist("action_text")
    owners = request.form.getlist("action_owner")
    dues = request.form.getlist("action_due")
    out = []
    for text, owner, due in zip(texts, owners, dues, strict=False):
        text = (text or "").strip()
        if not text:
            continue
        if len(text) > services.PLAN_MAX:
            raise services.field_error("actions", _("At most %(n)s characters.", n=services.PLAN_MAX))
        try:
            owner_id, due_on = int(owner), date.fromisoformat(due)
        except ValueError:
            raise services.field_error("actions", _("Each action needs an owner and a due date.")) from None
        out.append((text, owner_id, due_on))
    return out


@bp.route("/responses/<int:response_id>/plan", methods=["GET", "POST"])
@require(PLAN, kind="form")
def plan_new(response_id):
    r = get_or_404(Response, response_id)
    if not services.may_plan(current_user, r):
        deny_row(Response, response_id)
    form = PlanForm()
    staff = services.department_staff(r.department_id)
    action_error = None
    if form.validate_on_submit():
        try:
            services.create_plan(current_user, r, form.problems.data, _plan_actions(r.department_id))
        except ServiceError as exc:
            db.session.rollback()
            if getattr(exc, "field", None) == "actions":
                action_error = str(exc)
            else:
                _to_form(form, exc)
        else:
            db.session.commit()
            flash(_("Follow-up plan recorded."), "success")
            return redirect(url_for("feedback.response_detail", response_id=r.id))
    return render_template("feedback/plan_form.html", r=r, form=form, staff=staff, action_error=action_error,
                           default_due=(local_today() + timedelta(days=7)).isoformat(), customer_name=_customer_name)


@bp.route("/actions")
@require(PLAN)
def actions():
    rows = services.open_actions(current_user)
    return render_template("feedback/actions.html", rows=rows, customer_name=_customer_name)


@bp.route("/actions/<int:action_id>/complete", methods=["GET", "POST"])
@require(PLAN, kind="form")
def action_complete(action_id):
    a = get_or_404(Action, action_id)
    form = CompleteForm()
    if form.validate_on_submit():
        try:
            services.complete_action(current_user, a, form.result.data)
        except ServiceError as exc:
            db.session.rollback()
            _to_form(form, exc)
        else:
            db.session.commit()
            flash(_("Action completed."), "success")
            return redirect(url_for("feedback.response_detail", response_id=a.plan.response_id))
    return render_template("feedback/complete.html", a=a, form=form, state=services.action_state(a))


# --- summary ------------------------------------------------------------------------------------


def _period():
    today = local_today()
    try:
        start = date.fromisoformat(request.args.get("start") or "")
    except ValueError:
        start = today - timedelta(days=90)
    try:
        end = date.fromisoformat(request.args.get("end") or "")
    except ValueError:
        end = today
    if end < start:
        start, end = end, start
    return start, end


@bp.route("/templates/<int:template_id>/summary")
@require(SUMMARY)
def summary(template_id):
    t = _template(template_id)
    start, end = _period()
    figures = services.summary(current_user, t, start, end)
    chart_list = {item["key"]: bar_chart(f"feedback-chart-{item['key']}", item["label"], item["counts"])
                  for item in figures["items"] if item["counts"] is not None}
    return render_template("feedback/summary.html", t=t, start=start, end=end, figures=figures,
                           charts=chart_list)


@bp.route("/templates/<int:template_id>/summary.csv")
@require(SUMMARY, kind="download")
def summary_csv(template_id):
    t = _template(template_id)
    start, end = _period()
    figures = services.summary(current_user, t, start, end)
    audit.record("feedback.summary.exported", target=t, start=start.isoformat(), end=end.isoformat(),
                 total=figures["total"])
    db.session.commit()
    return csv_response(["题目", "类型", "选项/项目", "数量/值"], services.summary_rows(figures),
                        f"反馈汇总-{t.name}-{start.isoformat()}-{end.isoformat()}.csv")


# --- the public page ---------------------------------------------------------------------------

REFUSALS = {
    "invalid": (404, _l("This link is not valid. Check that it was copied completely, or ask us for a new one.")),
    "expired": (410, _l("This link has expired. Please ask us for a new one.")),
    "used": (410, _l("This form has already been submitted through this link. Thank you.")),
    "throttled": (429, _l("Too many attempts. Please wait a few minutes and try again.")),
}


def _refuse(state, token):
    status, message = REFUSALS[state]
    if state != "used":
        audit.record("feedback.link.refused", result="denied", reason=state,
                     token=services.token_hash(token or "")[:12])
        db.session.commit()
    return render_template("feedback/public_refused.html", message=str(message),
                           company=services.company_name()), status


@public_bp.route("/<token>", methods=["GET", "POST"])
@public(kind="form")
def form(token):
    """The customer's one-time form: only the template and the company name, never stored data."""
    if services.throttled(token, request.remote_addr, record=request.method == "POST"):
        return _refuse("throttled", token)
    link, state = services.find_link(token)
    if state != "ok":
        return _refuse(state, token)
    questions = link.version.question_list
    form = answer_form(questions)
    if form.validate_on_submit():
        try:
            services.submit_link(link, answers_from(form, questions))
        except ServiceError:
            db.session.rollback()
            return _refuse("used", token)
        db.session.commit()
        return render_template("feedback/public_done.html", company=services.company_name())
    return render_template("feedback/public_form.html", form=form, questions=questions, title=link.version.title,
                           company=services.company_name())


