"""The feedback module's domain logic: plain functions taking the actor explicitly.

Templates are edited as a draft (a JSON list of questions, each with a stable key) and published
as frozen versions; filled forms point at a version. Answers are stored as one encrypted JSON
document per form. Public links: a random token handed out once, only its SHA-256 kept; a link
serves one submission before it expires; requests to the public page are counted per token and
per address (the table survives restarts and is shared by every worker).
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import UTC, datetime, time, timedelta

from flask_babel import gettext as _
from sqlalchemy import delete, false, func, or_, select

from core.api import (
    ServiceError,
    User,
    audit,
    crypto,
    db,
    is_enabled,
    local_today,
    module_setting,
    pick,
    scoped,
    to_local,
    utcnow,
)
from modules.customers import Customer, scoped_customers

from .models import (
    CHOICE_KINDS,
    FIELD_KINDS,
    Action,
    Hit,
    Link,
    Plan,
    Response,
    Template,
    TemplateVersion,
)

MODULE = "feedback"
NAME_MAX, LABEL_MAX, HELP_MAX, OPTION_MAX, OPTIONS_MAX, QUESTIONS_MAX = 100, 200, 300, 100, 20, 60
SHORT_MAX, LONG_MAX, PLAN_MAX = 500, 4000, 4000
LINK_DAYS_MAX = 90


def field_error(field, message):
    exc = ServiceError(message)
    exc.field = field
    return exc


# --- record rules -------------------------------------------------------------------------------


def _customer_ids(actor):
    return scoped_customers(actor).with_only_columns(Customer.id)


def template_rule(actor):
    """Templates of the actor's department (heads design them, staff fill them)."""
    if actor.role in ("head", "sales", "service") and actor.department_id is not None:
        return Template.department_id == actor.department_id
    return false()


def response_rule(actor):
    """A filled form is in remit when its customer is."""
    if actor.role in ("head", "sales", "service") and actor.department_id is not None:
        return Response.customer_id.in_(_customer_ids(actor))
    return false()


def action_rule(actor):
    """Follow-up actions: the head's department; staff their own actions and those of customers
    in their remit."""
    if actor.role == "head" and actor.department_id is not None:
        return Action.department_id == actor.department_id
    if actor.role in ("sales", "service") and actor.department_id is not None:
        of_customers = select(Plan.id).join(Response).where(Response.customer_id.in_(_customer_ids(actor)))
        return (Action.department_id == actor.department_id) & or_(Action.owner_id == actor.id,
                                                                     Action.plan_id.in_(of_customers))
    return false()


# --- templates ----------------------------------------------------------------------------------


def questions_of(template):
    return json.loads(template.draft or "[]")


def templates(actor, active_only=False):
    stmt = scoped(select(Template), actor, Template).order_by(Template.name, Template.id)
    if active_only:
        stmt = stmt.where(Template.active.is_(True))
    return db.session.execute(stmt).scalars().all()


def _check_head(actor, template=None):
    if actor.role != "head" or (template is not None and template.department_id != actor.department_id):
        raise ServiceError(_("Only the head of the department designs feedback templates."))


def _clean_target(data):
    from modules.customers import CUSTOMER_KINDS, STATUSES

    from .models import GRADES
    kind, status, grade = data.get("customer_kind") or "", data.get("customer_status") or "", data.get("grade") or ""
    if kind and kind not in CUSTOMER_KINDS:
        raise field_error("customer_kind", _("Choose a customer type from the list."))
    if status and status not in STATUSES:
        raise field_error("customer_status", _("Choose a customer status from the list."))
    if grade and grade not in GRADES:
        raise field_error("grade", _("Choose a grade from the list."))
    return kind, status, grade


def create_template(actor, data):
    _check_head(actor)
    name = (data.get("name") or "").strip()
    if not name or len(name) > NAME_MAX:
        raise field_error("name", _("Enter a name of at most %(n)s characters.", n=NAME_MAX))
    kind, status, grade = _clean_target(data)
    t = Template(department_id=actor.department_id, name=name, customer_kind=kind, customer_status=status,
                 grade=grade, draft="[]", created_by=actor.id)
    db.session.add(t)
    db.session.flush()
    audit.record("feedback.template.created", actor=actor, target=t,
                 fields="name,customer_kind,customer_status,grade")
    return t


def update_template(actor, t, data):
    _check_head(actor, t)
    name = (data.get("name") or "").strip()
    if not name or len(name) > NAME_MAX:
        raise field_error("name", _("Enter a name of at most %(n)s characters.", n=NAME_MAX))
    kind, status, grade = _clean_target(data)
    new = {"name": name, "customer_kind": kind, "customer_status": status, "grade": grade,
           "active": bool(data.get("active", True))}
    changed = sorted(k for k, v in new.items() if getattr(t, k) != v)
    for k, v in new.items():
        setattr(t, k, v)
    if changed:
        audit.record("feedback.template.updated", actor=actor, target=t, fields=",".join(changed))
    return changed


def clean_question(data):
    """A question dict from form data, or a ServiceError naming the field."""
    kind = data.get("kind")
    if kind not in FIELD_KINDS:
        raise field_error("kind", _("Choose a field kind from the list."))
    label = re.sub(r"\s+", " ", data.get("label") or "").strip()
    if not label or len(label) > LABEL_MAX:
        raise field_error("label", _("Enter a question of at most %(n)s characters.", n=LABEL_MAX))
    help_text = (data.get("help") or "").strip()
    if len(help_text) > HELP_MAX:
        raise field_error("help", _("At most %(n)s characters.", n=HELP_MAX))
    options = []
    if kind in CHOICE_KINDS:
        for line in (data.get("options") or "").splitlines():
            line = line.strip()
            if line and line not in options:
                options.append(line)
        if len(options) < 2 or len(options) > OPTIONS_MAX or any(len(o) > OPTION_MAX for o in options):
            raise field_error("options", _("Give 2 to %(n)s options, one per line, each of at most %(m)s characters.",
                                           n=OPTIONS_MAX, m=OPTION_MAX))
    return {"kind": kind, "label": label, "help": help_text, "required": bool(data.get("required")),
            "options": options}


def _save_draft(t, questions):
    t.draft = json.dumps(questions, ensure_ascii=False)
    t.updated_at = utcnow()


def add_question(actor, t, data):
    _check_head(actor, t)
    questions = questions_of(t)
    if len(questions) >= QUESTIONS_MAX:
        raise ServiceError(_("A template has at most %(n)s questions.", n=QUESTIONS_MAX))
    q = clean_question(data)
    used = {x["key"] for x in questions}
    n = len(questions) + 1
    while f"q{n}" in used:
        n += 1
    q = {"key": f"q{n}", **q}
    questions.append(q)
    _save_draft(t, questions)
    audit.record("feedback.template.updated", actor=actor, target=t, fields="questions", question=q["key"])
    return q


def update_question(actor, t, key, data):
    _check_head(actor, t)
    questions = questions_of(t)
    for i, q in enumerate(questions):
        if q["key"] == key:
            questions[i] = {"key": key, **clean_question(data)}
            _save_draft(t, questions)
            audit.record("feedback.template.updated", actor=actor, target=t, fields="questions", question=key)
            return questions[i]
    raise ServiceError(_("No such question."))


def remove_question(actor, t, key):
    _check_head(actor, t)
    questions = [q for q in questions_of(t) if q["key"] != key]
    _save_draft(t, questions)
    audit.record("feedback.template.updated", actor=actor, target=t, fields="questions", removed=key)


def move_question(actor, t, key, step):
    _check_head(actor, t)
    questions = questions_of(t)
    keys = [q["key"] for q in questions]
    if key not in keys:
        raise ServiceError(_("No such question."))
    i = keys.index(key)
    j = max(0, min(len(questions) - 1, i + step))
    questions.insert(j, questions.pop(i))
    _save_draft(t, questions)
    audit.record("feedback.template.updated", actor=actor, target=t, fields="order", question=key)


def has_changes(t):
    latest = t.latest
    return latest is None or latest.question_list != questions_of(t) or latest.title != t.name


def publish(actor, t):
    """Freeze the draft as the next version; forms already filled keep theirs."""
    _check_head(actor, t)
    questions = questions_of(t)
    if not questions:
        raise ServiceError(_("Add at least one question before publishing."))
    if not has_changes(t):
        raise ServiceError(_("Nothing changed since the last version."))
    number = (t.latest.number if t.latest else 0) + 1
    v = TemplateVersion(template=t, number=number, title=t.name,
                        questions=json.dumps(questions, ensure_ascii=False), published_by=actor.id)
    db.session.add(v)
    db.session.flush()
    audit.record("feedback.template.published", actor=actor, target=t, version=number)
    return v


def grade_of(customer):
    if not is_enabled("grading", customer.department_id):
        return None
    try:
        from modules.grading import grade_of as grading_grade_of
    except ImportError:
        return None
    return grading_grade_of(customer.id)


def templates_for(actor, customer):
    """Published, active templates of the customer's department matching its type."""
    grade = None
    out = []
    for t in templates(actor, active_only=True):
        if t.department_id != customer.department_id or t.latest is None:
            continue
        if t.customer_kind and t.customer_kind != customer.kind:
            continue
        if t.customer_status and t.customer_status != customer.status:
            continue
        if t.grade:
            grade = grade if grade is not None else (grade_of(customer) or "")
            if t.grade != grade:
                continue
        out.append(t)
    return out


def target_text(t):
    from modules.customers import CUSTOMER_KINDS, STATUSES

    from .models import ANY, GRADES
    parts = [pick(CUSTOMER_KINDS.get(t.customer_kind, ANY)), pick(STATUSES.get(t.customer_status, ANY)),
             pick(GRADES.get(t.grade, ANY))]
    return " / ".join(parts)


# --- filled forms -------------------------------------------------------------------------------


def customer_in_remit(customer_id, actor):
    if customer_id is None:
        return None
    return db.session.execute(scoped_customers(actor).where(Customer.id == customer_id)).scalar_one_or_none()


def answers_of(response):
    try:
        return json.loads(response.answers or "{}")
    except crypto.DecryptionError:
        return {}


def answer_text(question, value):
    """An answer as plain text for pages, PDFs and CSV."""
    if value in (None, "", []):
        return ""
    if question["kind"] == "multi":
        return "、".join(str(v) for v in value)
    if question["kind"] == "yesno":
        return _("Yes") if value == "yes" else _("No")
    return str(value)


def store_response(actor, customer, version, answers, by_customer=False):
    """Keep a filled form of a customer against a version (the caller checked remit and the
    answers). ``actor`` is None when the customer filled it through a link."""
    r = Response(customer=customer, department_id=customer.department_id, version=version,
                 owner_id=customer.owner_id, filled_by=getattr(actor, "id", None), by_customer=by_customer)
    r.answers = json.dumps(answers, ensure_ascii=False, sort_keys=True)
    db.session.add(r)
    db.session.flush()
    audit.record("feedback.response.created", actor=actor, target=r, customer=customer.number,
                 template=version.template_id, version=version.number, by_customer=by_customer,
                 fields=",".join(sorted(k for k, v in answers.items() if v not in (None, "", []))))
    return r


def responses(actor, customer_id=None, template_id=None, limit=500):
    stmt = scoped(select(Response), actor, Response).order_by(Response.created_at.desc(), Response.id.desc())
    if customer_id is not None:
        stmt = stmt.where(Response.customer_id == customer_id)
    if template_id is not None:
        stmt = stmt.join(TemplateVersion).where(TemplateVersion.template_id == template_id)
    return db.session.execute(stmt.limit(limit)).scalars().all()


def mark_seen(actor, response):
    if response.by_customer and response.seen_at is None and actor.id == response.owner_id:
        response.seen_at = utcnow()
        audit.record("feedback.response.seen", actor=actor, target=response)


def unseen_count(user):
    return db.session.scalar(select(func.count(Response.id)).where(
        Response.owner_id == user.id, Response.by_customer.is_(True), Response.seen_at.is_(None),
        Response.department_id == user.department_id)) or 0


# --- one-time links ------------------------------------------------------------------------------


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create_link(actor, customer, version, days):
    if not isinstance(days, int) or not 1 <= days <= LINK_DAYS_MAX:
        raise field_error("days", _("Choose between 1 and %(n)s days.", n=LINK_DAYS_MAX))
    token = secrets.token_urlsafe(32)
    link = Link(token_hash=token_hash(token), customer_id=customer.id, department_id=customer.department_id,
                version_id=version.id, created_by=actor.id, expires_at=utcnow() + timedelta(days=days))
    db.session.add(link)
    db.session.flush()
    audit.record("feedback.link.created", actor=actor, target=link, customer=customer.number,
                 template=version.template_id, version=version.number, days=days)
    return link, token


def find_link(token):
    """(link, state): state is "ok", "expired", "used" or "invalid" (unknown, tampered, or its
    department no longer uses the module)."""
    if not token or len(token) > 100 or not re.fullmatch(r"[A-Za-z0-9_-]+", token):
        return None, "invalid"
    link = db.session.execute(select(Link).where(Link.token_hash == token_hash(token))).scalar_one_or_none()
    if link is None or not is_enabled(MODULE, link.department_id):
        return None, "invalid"
    if link.used_at is not None:
        return link, "used"
    expires = link.expires_at if link.expires_at.tzinfo else link.expires_at.replace(tzinfo=UTC)
    if expires <= utcnow():
        return link, "expired"
    return link, "ok"


def throttled(token, address, record=True, now=None):
    """True when the token or the address went past its limit in the window. ``record`` counts
    this request (a submission); showing the form only reads the counters, so a GET changes
    nothing. Tokens are 256-bit random values: guessing them is hopeless, so what is limited is
    what writes (submissions, failed or not) and whoever went past the limit is refused pages too."""
    now = now or utcnow()
    window = timedelta(minutes=module_setting(MODULE, "link_window_minutes", 10))
    per_token = module_setting(MODULE, "link_limit_per_token", 20)
    per_address = module_setting(MODULE, "link_limit_per_address", 60)
    keys = (f"t:{token_hash(token or '')}", f"a:{hashlib.sha256((address or '').encode()).hexdigest()}")
    counts = [db.session.scalar(select(func.count(Hit.id)).where(Hit.key == k, Hit.at >= now - window)) or 0
              for k in keys]
    over = counts[0] >= per_token or counts[1] >= per_address
    if record:
        db.session.execute(delete(Hit).where(Hit.at < now - window))
        for k in keys:
            db.session.add(Hit(key=k, at=now))
        db.session.commit()
    return over


def submit_link(link, answers):
    """The customer's one submission: stored, the link spent (in the same transaction; a second
    submission racing this one finds used_at set or fails on the version check)."""
    spent = db.session.execute(
        Link.__table__.update().where(Link.id == link.id, Link.used_at.is_(None)).values(used_at=utcnow()))
    if spent.rowcount != 1:
        raise ServiceError(_("This link has already been used."))
    customer = db.session.get(Customer, link.customer_id)
    r = store_response(None, customer, link.version, answers, by_customer=True)
    link.response_id = r.id
    audit.record("feedback.link.used", target=link, response=r.id)
    return r


def company_name():
    from flask import current_app
    return current_app.config.get("COMPANY_NAME") or "kehu"


def qr_path(url):
    """The QR code of ``url`` as one SVG path (module squares), drawn by the autoescaped PDF
    template: nothing fetched, nothing marked safe. None when segno is not installed."""
    try:
        import segno
    except ImportError:
        return None
    qr = segno.make(url, error="m")
    parts = []
    for y, row in enumerate(qr.matrix):
        for x, dark in enumerate(row):
            if dark:
                parts.append(f"M{x + 4} {y + 4}h1v1h-1z")
    return {"d": "".join(parts), "size": len(qr.matrix) + 8}


# --- follow-up plans -----------------------------------------------------------------------------


def department_staff(department_id):
    return db.session.execute(select(User).where(User.department_id == department_id, User.active.is_(True),
                                                 User.role.in_(("head", "sales", "service")))
                              .order_by(User.username)).scalars().all()


def create_plan(actor, response, problems, actions):
    """A follow-up plan of a filled form: problems found and actions [(text, owner_id, due date)]."""
    problems = (problems or "").strip()
    if not problems:
        raise field_error("problems", _("Describe the problems found."))
    if len(problems) > PLAN_MAX:
        raise field_error("problems", _("At most %(n)s characters.", n=PLAN_MAX))
    if not actions:
        raise field_error("actions", _("Give at least one action."))
    staff = {u.id for u in department_staff(response.department_id)}
    plan = Plan(response=response, created_by=actor.id)
    db.session.add(plan)
    plan.problems = problems
    db.session.flush()
    for text, owner_id, due_on in actions:
        if owner_id not in staff:
            raise field_error("actions", _("Choose an owner of the department."))
        a = Action(plan=plan, department_id=response.department_id, owner_id=owner_id, due_on=due_on)
        db.session.add(a)
        a.description = text
    db.session.flush()
    audit.record("feedback.plan.created", actor=actor, target=plan, response=response.id,
                 actions=len(actions), fields="problems,actions")
    return plan


def may_plan(actor, response):
    return actor.role == "head" or response.owner_id == actor.id


def complete_action(actor, action, result):
    result = (result or "").strip()
    if not result:
        raise field_error("result", _("Record the result."))
    if len(result) > PLAN_MAX:
        raise field_error("result", _("At most %(n)s characters.", n=PLAN_MAX))
    if action.done_at is not None:
        raise ServiceError(_("This action is already completed."))
    if not (action.owner_id == actor.id or actor.role == "head"):
        raise ServiceError(_("Only the action's owner or the head completes it."))
    action.result = result
    action.done_at = utcnow()
    action.done_by = actor.id
    audit.record("feedback.action.completed", actor=actor, target=action, fields="result")


def open_actions(actor, today=None, mine=False):
    """Open actions in remit, earliest due first, with their state ("overdue", "due", "later")."""
    today = today or local_today()
    stmt = scoped(select(Action), actor, Action).where(Action.done_at.is_(None)).order_by(Action.due_on, Action.id)
    if mine or actor.role != "head":
        stmt = stmt.where(Action.owner_id == actor.id)
    return [(a, action_state(a, today)) for a in db.session.execute(stmt).scalars()]


def action_state(action, today=None):
    today = today or local_today()
    if action.done_at is not None:
        return "done"
    if action.due_on < today:
        return "overdue"
    if action.due_on <= today + timedelta(days=module_setting(MODULE, "due_soon_days", 3)):
        return "due"
    return "later"


# --- summary ------------------------------------------------------------------------------------


def period_bounds(start, end):
    """UTC bounds of [start, end] in the company's zone."""
    from core.api import local_now
    tz = local_now().tzinfo
    return (datetime.combine(start, time.min, tz).astimezone(UTC),
            datetime.combine(end + timedelta(days=1), time.min, tz).astimezone(UTC))


def summary(actor, template, start, end):
    """Figures of a template's filled forms in a period: per question (by key, labelled as in the
    newest version that has it) counts per option, the average of ratings and numbers, and the
    free-text answers."""
    lo, hi = period_bounds(start, end)
    rows = db.session.execute(
        scoped(select(Response), actor, Response).join(TemplateVersion)
        .where(TemplateVersion.template_id == template.id, Response.created_at >= lo, Response.created_at < hi)
        .order_by(Response.created_at)).scalars().all()
    questions = {}
    for v in template.versions:
        for q in v.question_list:
            questions.pop(q["key"], None)
            questions[q["key"]] = q
    for q in questions_of(template):
        questions.setdefault(q["key"], q)
    items = []
    answered = [(r, answers_of(r)) for r in rows]
    for key, q in questions.items():
        values = [a.get(key) for _r, a in answered if a.get(key) not in (None, "", [])]
        item = {"key": key, "label": q["label"], "kind": q["kind"], "answered": len(values),
                "counts": None, "average": None, "texts": []}
        if q["kind"] in ("single", "multi", "yesno", "rating"):
            if q["kind"] == "rating":
                options = ["1", "2", "3", "4", "5"]
            elif q["kind"] == "yesno":
                options = ["yes", "no"]
            else:
                options = list(q.get("options") or [])
            counts = {o: 0 for o in options}
            for v in values:
                for one in (v if isinstance(v, list) else [v]):
                    counts[str(one)] = counts.get(str(one), 0) + 1
            if q["kind"] == "yesno":
                counts = {_("Yes"): counts.get("yes", 0), _("No"): counts.get("no", 0)}
            item["counts"] = counts
        if q["kind"] in ("rating", "number"):
            numbers = []
            for v in values:
                try:
                    numbers.append(float(v))
                except (TypeError, ValueError):
                    continue
            item["average"] = round(sum(numbers) / len(numbers), 2) if numbers else None
        if q["kind"] in ("short", "long", "date", "number"):
            item["texts"] = [str(v) for v in values]
        items.append(item)
    return {"total": len(rows), "by_customer": sum(1 for r in rows if r.by_customer), "items": items}


def summary_rows(figures):
    rows = [["合计", "", "填写份数", figures["total"]], ["合计", "", "客户自填", figures["by_customer"]]]
    for item in figures["items"]:
        for option, count in (item["counts"] or {}).items():
            rows.append([item["label"], pick(FIELD_KINDS[item["kind"]]), option, count])
        if item["average"] is not None:
            rows.append([item["label"], pick(FIELD_KINDS[item["kind"]]), "平均值", item["average"]])
        for text in item["texts"]:
            rows.append([item["label"], pick(FIELD_KINDS[item["kind"]]), "回答", text])
    return rows


def local_text(dt):
    return to_local(dt).strftime("%Y-%m-%d %H:%M") if dt is not None else ""


# --- handover -----------------------------------------------------------------------------------


def hand_over(from_user_id, to_user_id, actor):
    """A leaver's filled forms (to be told of) and open follow-up actions go to the colleague."""
    moved = 0
    for r in db.session.execute(select(Response).where(Response.owner_id == from_user_id)).scalars():
        r.owner_id = to_user_id
        moved += 1
    for a in db.session.execute(select(Action).where(Action.owner_id == from_user_id,
                                                     Action.done_at.is_(None))).scalars():
        a.owner_id = to_user_id
        moved += 1
    if moved:
        db.session.flush()
        audit.record("feedback.handover", actor=actor, target_type="core_user", target_id=from_user_id,
                     to_user_id=to_user_id, moved=moved)
    return moved


# --- the customer's data key is replaced --------------------------------------------------------


def rekey(customer, old_key, new_key):
    """customers.rekey: answers, plan problems, actions and results follow the customer to its
    new data key (same AAD). Returns how many values were re-encrypted."""
    moved = 0
    rows = db.session.execute(select(Response).where(Response.customer_id == customer.id)).scalars().all()
    targets = []
    for r in rows:
        targets.append((r, "answers"))
        for plan in r.plans:
            targets.append((plan, "problems"))
            targets.extend((a, f) for a in plan.actions for f in ("description", "result"))
    for obj, name in targets:
        column = f"{name}_ct"
        token = getattr(obj, column)
        if token is None:
            continue
        aad = type(obj).__dict__[name].aad(obj)
        setattr(obj, column, crypto.encrypt(new_key, crypto.decrypt(old_key, token, aad), aad))
        moved += 1
    return moved
