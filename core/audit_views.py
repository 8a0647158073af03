"""The audit trail for people (the security role): actions in words, targets by their names
(customer numbers, through the core.audit_targets hook), filters without internal codes, a CSV
export and the chain check of `kehu audit verify` as a button."""
from __future__ import annotations

import json
from datetime import datetime, time

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core import audit, hooks
from core.access import require
from core.audit import AuditEntry
from core.db import db
from core.i18n import pick
from core.models import ROLE_LABELS, User

bp = Blueprint("audit", __name__, url_prefix="/audit")
RESULTS = {"ok": _l("Succeeded"), "failed": _l("Failed"), "denied": _l("Refused"), "locked": _l("Locked")}
EXPORT_LIMIT = 50000


def _user_names(ids):
    numbers = [int(i) for i in ids if str(i).isdigit()]
    return {str(i): name for i, name in db.session.execute(
        select(User.id, User.username).where(User.id.in_(numbers)))}


def _user_ids(text):
    return [str(i) for i in db.session.execute(select(User.id).where(User.username == text.strip())).scalars()]


def _targets():
    """{target_type: AuditTarget} from every module that offers names for its tables (and the
    core's own accounts, shown by user name)."""
    found = {"core_user": audit.AuditTarget("core_user", {"zh_CN": "用户", "en": "User"}, _user_names, _user_ids)}
    for _module, targets in hooks.call("core.audit_targets", all_departments=True):
        for target in targets or ():
            found[target.target_type] = target
    return found


def _day(value, end=False):
    """A date typed on the page is a day in the company's time zone."""
    try:
        day = datetime.strptime(value or "", "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(day, time.max if end else time.min, tzinfo=get_timezone())


def _filtered(args, targets):
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc())
    if args.get("actor"):
        stmt = stmt.where(AuditEntry.actor == args["actor"].strip())
    if args.get("module"):
        stmt = stmt.where(AuditEntry.action.startswith(args["module"].strip() + ".", autoescape=True))
    if args.get("action"):
        stmt = stmt.where(AuditEntry.action.startswith(args["action"].strip(), autoescape=True))
    if args.get("result"):
        stmt = stmt.where(AuditEntry.result == args["result"].strip())
    if args.get("target_id"):
        stmt = stmt.where(AuditEntry.target_id == args["target_id"].strip())
        if args.get("target_type"):
            stmt = stmt.where(AuditEntry.target_type == args["target_type"].strip())
    if args.get("customer"):  # a customer number (or any name a module's target understands)
        clauses = [(AuditEntry.target_type == t.target_type) & AuditEntry.target_id.in_(ids)
                   for t in targets.values() if (ids := [str(i) for i in t.find(args["customer"].strip())])]
        stmt = stmt.where(db.or_(*clauses)) if clauses else stmt.where(db.false())
    since, until = _day(args.get("since")), _day(args.get("until"), end=True)
    if since:
        stmt = stmt.where(AuditEntry.at >= since)
    if until:
        stmt = stmt.where(AuditEntry.at <= until)
    return stmt


def _describe(entries, targets):
    """{(target_type, target_id): name} for the entries shown."""
    wanted = {}
    for e in entries:
        if e.target_type in targets and e.target_id:
            wanted.setdefault(e.target_type, set()).add(e.target_id)
    names = {}
    for target_type, ids in wanted.items():
        for target_id, text in targets[target_type].describe(sorted(ids)).items():
            names[(target_type, str(target_id))] = text
    return names


def _details_text(entry):
    """Details as one readable line: 字段=…; 理由=… (field names, never personal values)."""
    parts = []
    for key, value in entry.details_dict.items():
        if isinstance(value, list):
            value = "、".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={value}")
    return "; ".join(parts)


def _filters(args):
    return {k: v for k, v in args.items() if v and k in (
        "actor", "module", "action", "result", "customer", "target_type", "target_id", "since", "until")}


@bp.route("/")
@require("core.audit.view")
def trail():
    args, targets = request.args, _targets()
    stmt = _filtered(args, targets)
    before = args.get("before", type=int)
    if before:
        stmt = stmt.where(AuditEntry.id < before)  # keyset paging: no OFFSET scans
    page_size = current_app.config["PAGE_SIZE"]
    entries = db.session.execute(stmt.limit(page_size + 1)).scalars().all()
    more = len(entries) > page_size
    entries = entries[:page_size]
    filters = _filters(args)
    older_url = url_for("audit.trail", **filters, before=entries[-1].id) if more else None
    declared = audit.declared_actions()
    modules = sorted({name.split(".", 1)[0] for name in declared if not name.startswith("test.")})
    module_titles = {name: pick(info.manifest.title) for name, info in current_app.extensions["kehu.modules"].items()}
    module_titles["core"] = _("Platform")
    actions = sorted((a for a in declared.values() if not a.name.startswith("test.")), key=lambda a: a.name)
    people = db.session.execute(select(User.username).order_by(User.username)).scalars().all()
    audit.record("core.audit.viewed", filters=filters)
    db.session.commit()
    return render_template("audit/trail.html", entries=entries, older_url=older_url, args=args,
                           names=_describe(entries, targets), details_text=_details_text, results=RESULTS,
                           modules=modules, module_titles=module_titles, actions=actions, people=people,
                           role_labels=ROLE_LABELS, filters=filters)


@bp.route("/export.csv")
@require("core.audit.view", kind="download")
def export():
    targets = _targets()
    entries = db.session.execute(_filtered(request.args, targets).limit(EXPORT_LIMIT)).scalars().all()
    names = _describe(entries, targets)
    tz = get_timezone()
    rows = [(e.id, e.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), e.actor, pick(ROLE_LABELS.get(e.role, e.role)),
             audit.action_label(e.action), e.action, str(RESULTS.get(e.result, e.result)),
             names.get((e.target_type, e.target_id), f"{e.target_type} {e.target_id}".strip()),
             _details_text(e), e.address) for e in entries]
    header = [_("No."), _("Time"), _("User"), _("Role"), _("Action"), _("Action code"), _("Result"), _("Target"),
              _("Details"), _("Address")]
    audit.record("core.audit.exported", filters=_filters(request.args), rows=len(rows))
    db.session.commit()
    stamp = datetime.now(tz).strftime("%Y%m%d-%H%M")
    from core.exports import csv_response
    return csv_response(header, rows, f"审计日志-{stamp}.csv")


@bp.route("/verify", methods=["POST"])
@require("core.audit.view", kind="action")
def verify():
    """The same check as `kehu audit verify`, for the security officer without a shell."""
    count, broken = audit.verify()
    db.session.rollback()
    if broken:
        audit.record("core.audit.verified", result="failed", entries=count, broken_at=broken[0])
        flash(_("The audit chain is broken at entry %(id)s: %(reason)s", id=broken[0], reason=broken[1]), "danger")
    else:
        audit.record("core.audit.verified", entries=count)
        flash(_("The audit chain is intact: %(n)d entries.", n=count), "success")
    db.session.commit()
    return redirect(url_for("audit.trail"))
