"""Anomaly alerts: rules read the audit trail from the last entry they saw, right after a request
commits audit entries (hook ``core.audit_appended``) and from cron (`kehu alerts run`), and raise
alerts the security officer acknowledges with a note or turns into an incident.

Rules and their settings (``OVERSIGHT_<NAME>``); the defaults stay quiet on ordinary office work:

burst        BURST_COUNT (30) reveals or exports (BURST_ACTIONS) by one account within
             BURST_MINUTES (10)
off_hours    sign-ins, reveals or exports (OFF_HOURS_ACTIONS) outside WORK_HOURS ("07:00-21:00",
             company time) or on a day not in WORK_DAYS ("123456", ISO weekdays; Monday is 1); one
             alert per account and day
denied_rows  DENIED_COUNT (10) refused requests for existing records outside the account's
             department (core.access.row_denied) within DENIED_MINUTES (10)
new_address  a sign-in from an address the account did not use in ADDRESS_DAYS (90), after
             FAILURE_COUNT (5) failed sign-ins of the account within FAILURE_MINUTES (30)

RULES lists the rules in force (all four by default)."""
from __future__ import annotations

import fnmatch
from collections import defaultdict
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select

from core.api import (
    ServiceError,
    User,
    audit,
    audit_feed,
    db,
    is_enabled,
    module_setting,
    to_local,
    utcnow,
)

from .models import RULES, Alert, Cursor

BURST_ACTIONS = ("*.revealed", "*.exported", "*.export.completed")
OFF_HOURS_ACTIONS = ("core.auth.signed_in", "*.revealed", "*.exported", "*.export.completed")
ROW_DENIED, SIGNED_IN = "core.access.row_denied", "core.auth.signed_in"
MAX_IDS = 500
RULE_LABELS = {
    "burst": {"zh_CN": "短时间内大量查看明文或导出", "en": "Many reveals or exports in a short time"},
    "off_hours": {"zh_CN": "非工作时间操作", "en": "Activity outside working hours"},
    "denied_rows": {"zh_CN": "反复访问其他部门的记录被拒绝", "en": "Repeated refusals on other departments' records"},
    "new_address": {"zh_CN": "多次登录失败后从新地址登录", "en": "Sign-in from a new address after many failures"},
}


def _s(name, default):
    return module_setting("oversight", name, default)


def _matches(action, patterns):
    return any(fnmatch.fnmatchcase(action, p) if "*" in p else action == p for p in patterns)


def _minutes(name, default):
    return timedelta(minutes=int(_s(name, default)))


# --- reading the trail -----------------------------------------------------------------------------

def _cursor():
    row = db.session.execute(select(Cursor).where(Cursor.id == 1).with_for_update()).scalar_one_or_none()
    if row is None:
        row = Cursor(id=1, last_entry_id=0)
        db.session.add(row)
        db.session.flush()
    return row


def evaluate(limit=1000, lag=0):
    """Read up to ``limit`` entries after the cursor of the actions the rules in force watch, through
    those rules, and move the cursor past what was read; returns (entries read, alerts raised or
    extended). The caller commits. With ``lag``, a cursor that read nothing watched stays where it
    is until the trail is more than ``lag`` entries ahead (each request would otherwise write it)."""
    in_force = [name for name in RULES if name in set(_s("rules", RULES))]
    # only the actions the rules in force look at: after an import of 10,000 customers the
    # requests that followed each decoded 500 entries of it (~28 ms) until the cursor caught up
    watched = sorted({action for name in in_force for action in RULE_ACTIONS[name]()})
    head = audit_feed.head_id()
    seen = db.session.scalar(select(Cursor.last_entry_id).where(Cursor.id == 1)) or 0
    if head <= seen + lag and not audit_feed.after(seen, 1, actions=watched, until_id=head):
        return 0, []  # nothing to read nor to move: no lock (on SQLite, the write lock)
    cursor = _cursor()
    new = audit_feed.after(cursor.last_entry_id, limit, actions=watched, until_id=head)
    touched = []
    if new:
        for name in in_force:
            touched.extend(RULE_CHECKS[name](new))
    moved_to = new[-1].id if len(new) == limit else head
    if new or moved_to > cursor.last_entry_id + lag:
        cursor.last_entry_id = moved_to
        db.session.flush()
    return len(new), list(dict.fromkeys(touched))


def run_all(limit=1000):
    """Read the whole backlog (the cron command); commits after each batch."""
    read, touched = 0, []
    while True:
        n, alerts = evaluate(limit)
        db.session.commit()
        read += n
        touched.extend(a.id for a in alerts)
        if n < limit:
            return read, list(dict.fromkeys(touched))


def on_appended(last_id):
    """core.audit_appended: read what the request wrote (core commits). Most requests write
    nothing a rule watches (views, searches): the cursor then moves every 1,000 entries, so such a
    request only reads, and on SQLite never waits for the write lock here."""
    evaluate(limit=500, lag=1000)


# --- raising -----------------------------------------------------------------------------------------

def _raise(rule, actor_id, actor, entries, joins, address=""):
    """Extend the open alert of this rule and account that ``joins`` accepts, or raise a new one."""
    candidates = db.session.execute(select(Alert).where(Alert.rule == rule, Alert.actor_id == actor_id,
                                                        Alert.status == "open")
                                    .order_by(Alert.id.desc()).limit(5)).scalars().all()
    alert = next((a for a in candidates if joins(a)), None)
    if alert is None:
        alert = Alert(rule=rule, actor_id=actor_id, actor=actor or "", first_at=entries[0].at,
                      last_at=entries[-1].at, entry_ids="", count=0, address=address, raised_at=utcnow())
        db.session.add(alert)
    ids = sorted(set(alert.entries) | {e.id for e in entries})
    alert.count = len(ids)
    alert.entry_ids = ",".join(str(i) for i in ids[-MAX_IDS:])
    alert.first_at = min(alert.first_at, entries[0].at)
    alert.last_at = max(alert.last_at, entries[-1].at)
    db.session.flush()
    return alert


def _by_actor(entries):
    groups = defaultdict(list)
    for e in entries:
        groups[e.actor_id].append(e)
    return groups.items()


def _hits(window, new_ids, span, threshold):
    """Stretches of ``window`` (oldest first) no longer than ``span`` that end at a new entry and
    hold at least ``threshold`` entries."""
    found, start = [], 0
    for i, e in enumerate(window):
        while window[start].at < e.at - span:
            start += 1
        if e.id in new_ids and i - start + 1 >= threshold:
            found.append(window[start:i + 1])
    return found


def _joins_within(span, first):
    return lambda alert: alert.last_at >= first.at - span


def _burst(new):
    actions = RULE_ACTIONS["burst"]()
    threshold, span = int(_s("burst_count", 30)), _minutes("burst_minutes", 10)
    touched = []
    for actor_id, group in _by_actor(e for e in new if e.actor_id and _matches(e.action, actions)):
        window = audit_feed.window(actions=actions, actor_id=actor_id, since=group[0].at - span,
                                   until=group[-1].at, limit=5000)
        for hit in _hits(window, {e.id for e in group}, span, threshold):
            touched.append(_raise("burst", actor_id, group[0].actor, hit, _joins_within(span, hit[0])))
    return touched


def _work_hours():
    start, _sep, end = str(_s("work_hours", "07:00-21:00")).partition("-")

    def minutes(text):
        hours, _c, mins = text.strip().partition(":")
        return int(hours) * 60 + int(mins or 0)
    return minutes(start), minutes(end)


def outside_hours(at):
    local = to_local(at)
    start, end = _work_hours()
    now = local.hour * 60 + local.minute
    return str(local.isoweekday()) not in str(_s("work_days", "123456")) or not start <= now < end


def _off_hours(new):
    actions = RULE_ACTIONS["off_hours"]()
    days = defaultdict(list)
    for e in new:
        if e.actor_id and _matches(e.action, actions) and outside_hours(e.at):
            days[(e.actor_id, to_local(e.at).date())].append(e)
    touched = []
    for (actor_id, day), group in days.items():
        touched.append(_raise("off_hours", actor_id, group[0].actor, group,
                              lambda alert, day=day: to_local(alert.first_at).date() == day))
    return touched


def _foreign(entry, department_id):
    details = entry.details
    if not details.get("exists"):
        return False
    row_department = details.get("row_department")
    return row_department is None or department_id is None or row_department != department_id


def _denied_rows(new):
    threshold, span = int(_s("denied_count", 10)), _minutes("denied_minutes", 10)
    touched = []
    for actor_id, group in _by_actor(e for e in new if e.actor_id and e.action == ROW_DENIED):
        user = db.session.get(User, actor_id)
        department_id = user.department_id if user is not None else None
        group = [e for e in group if _foreign(e, department_id)]
        if not group:
            continue
        window = [e for e in audit_feed.window(actions=[ROW_DENIED], actor_id=actor_id,
                                               since=group[0].at - span, until=group[-1].at, limit=5000)
                  if _foreign(e, department_id)]
        for hit in _hits(window, {e.id for e in group}, span, threshold):
            touched.append(_raise("denied_rows", actor_id, group[0].actor, hit, _joins_within(span, hit[0])))
    return touched


def _new_address(new):
    threshold, span = int(_s("failure_count", 5)), _minutes("failure_minutes", 30)
    lookback = timedelta(days=int(_s("address_days", 90)))
    touched = []
    for e in new:
        if e.action != SIGNED_IN or not e.actor_id:
            continue
        failures = audit_feed.window(actions=["core.auth.failed"], target_type="core_user", target_id=e.actor_id,
                                     since=e.at - span, until=e.at, limit=5000)
        if len(failures) < threshold:
            continue
        before = audit_feed.window(actions=[SIGNED_IN], actor_id=e.actor_id, since=e.at - lookback,
                                   until=e.at, limit=5000)
        if e.address in {b.address for b in before if b.id != e.id}:
            continue
        touched.append(_raise("new_address", e.actor_id, e.actor, [*failures, e],
                              lambda alert, e=e: alert.address == e.address and alert.last_at >= e.at - span,
                              address=e.address))
    return touched


RULE_CHECKS = {"burst": _burst, "off_hours": _off_hours, "denied_rows": _denied_rows,
               "new_address": _new_address}
# the actions each rule reads among the new entries (the settings may change them): the rules
# themselves and the cursor's filter (evaluate) ask here
RULE_ACTIONS = {"burst": lambda: tuple(_s("burst_actions", BURST_ACTIONS)),
                "off_hours": lambda: tuple(_s("off_hours_actions", OFF_HOURS_ACTIONS)),
                "denied_rows": lambda: (ROW_DENIED,),
                "new_address": lambda: (SIGNED_IN,)}


# --- for people ----------------------------------------------------------------------------------------

def describe(alert):
    """What the alert found, in the user's language."""
    if alert.rule == "burst":
        return _("%(n)d reveals or exports within %(minutes)s minutes", n=alert.count,
                 minutes=_s("burst_minutes", 10))
    if alert.rule == "off_hours":
        return _("%(n)d sign-ins, reveals or exports outside working hours (%(hours)s)", n=alert.count,
                 hours=_s("work_hours", "07:00-21:00"))
    if alert.rule == "denied_rows":
        return _("%(n)d refused requests for existing records of other departments within %(minutes)s minutes",
                 n=alert.count, minutes=_s("denied_minutes", 10))
    return _("Signed in from %(address)s, not used before, after %(n)d failed sign-ins", address=alert.address,
             n=max(alert.count - 1, 0))


def open_count():
    return db.session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "open"))


def alerts(status=None, limit=200):
    stmt = select(Alert).order_by(Alert.status != "open", Alert.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Alert.status == status)
    return db.session.execute(stmt).scalars().all()


class AlertError(ServiceError):
    def __str__(self):
        return str(self.args[0])


def acknowledge(actor, alert, note):
    note = (note or "").strip()
    if not note:
        raise AlertError(_("Write what you found and did about this alert."))
    if len(note) > 2000:
        raise AlertError(_("The note is too long."))
    if alert.status != "open":
        raise AlertError(_("This alert was acknowledged already."))
    alert.status, alert.acknowledged_by, alert.acknowledged_at = "acknowledged", actor.id, utcnow()
    alert.note = note
    audit.record("oversight.alert.acknowledged", target=alert, actor=actor, rule=alert.rule)


def incidents_available(user):
    return is_enabled("incidents", user.department_id, user=user)


def escalate(actor, alert):
    """Open a security incident from the alert (incidents module), its entries as evidence."""
    if alert.incident_number:
        raise AlertError(_("An incident was opened from this alert already."))
    if not incidents_available(actor):
        raise AlertError(_("The incidents module is not installed."))
    from core.api import pick
    from modules.incidents import report_from_alert
    title = f"{pick(RULE_LABELS[alert.rule])}: {alert.actor}"
    incident = report_from_alert(actor, title=title, description=describe(alert), entry_ids=alert.entries)
    alert.incident_number = incident.number
    if alert.status == "open":
        alert.status, alert.acknowledged_by, alert.acknowledged_at = "acknowledged", actor.id, utcnow()
        alert.note = alert.note or _("Incident %(number)s opened.", number=incident.number)
    audit.record("oversight.alert.escalated", target=alert, actor=actor, incident=incident.number)
    return incident
