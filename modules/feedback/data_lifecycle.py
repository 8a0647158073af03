"""Feedback in the data lifecycle (when the lifecycle module is installed): a destroyed customer's
answers and follow-up texts are emptied and its open links withdrawn; a copy request lists every
filled form and plan."""
from flask_babel import gettext as _
from sqlalchemy import delete, select

from core.api import crypto, db, to_local

from .models import Link, Response
from .services import answer_text, answers_of


def destroy(customer, actor):
    touched = 0
    for r in db.session.execute(select(Response).where(Response.customer_id == customer.id)).scalars():
        r.answers_ct = None
        for plan in r.plans:
            plan.problems_ct = None
            for action in plan.actions:
                action.description_ct, action.result_ct = None, None
        touched += 1
    db.session.execute(delete(Link).where(Link.customer_id == customer.id))  # no form to fill any more
    db.session.flush()
    return touched


def _text(getter):
    try:
        return getter() or ""
    except crypto.DecryptionError:
        return "?"


def subject_data(customer):
    from modules.lifecycle import Section
    rows = []
    for r in db.session.execute(select(Response).where(Response.customer_id == customer.id)
                                .order_by(Response.created_at, Response.id)).scalars():
        answers = answers_of(r)
        text = "；".join(f"{q['label']}：{answer_text(q, answers.get(q['key']))}"
                        for q in r.version.question_list if answers.get(q["key"]) not in (None, "", []))
        rows.append((f"{to_local(r.created_at):%Y-%m-%d} {r.version.title}", text))
        for plan in r.plans:
            actions = "；".join(_text(lambda a=a: a.description) for a in plan.actions)
            rows.append((_("Follow-up plan"), "；".join(x for x in (_text(lambda p=plan: p.problems), actions) if x)))
    return [Section(_("Customer feedback"), rows)] if rows else []
