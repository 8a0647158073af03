"""Policy acknowledgement, training, confidentiality reviews and who is overdue: plain functions
taking the actor. Settings (``module_setting("oversight", NAME)``, config ``OVERSIGHT_<NAME>``):

ACK_GATE (True)              every user of a department using the module acknowledges the current
                             policy before any other page
ACK_GRACE_DAYS (7)           after publication, an acknowledgement still missing is overdue
TRAINING_INTERVAL_DAYS (365) a user is overdue when their last training is older than this
TRAINING_GRACE_DAYS (30)     new accounts have this long for their first training
WITHHOLD_REVEAL (False)      users overdue with either lose WITHHELD_PERMISSIONS until done
WITHHELD_PERMISSIONS         ("customers.reveal_l2", "customers.reveal_l3")
REVIEW_PERMISSIONS           ("customers.reveal_l3",): who holds one needs a current 保密审查
REVIEW_VALID_DAYS (365)      the default validity of a confidentiality review
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask import g, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from core.api import (
    Finding,
    ServiceError,
    User,
    WorkItem,
    audit,
    can,
    db,
    is_enabled,
    local_today,
    module_setting,
    role_permissions,
    to_local,
    utcnow,
)

from .models import Acknowledgement, Attendance, Policy, Review, Training
from .permissions import ALERTS, MANAGE

TITLE_MAX, BODY_MAX, NOTE_MAX = 200, 50000, 500


class OversightError(ServiceError):
    """Bad input; ``field`` names the form field the message belongs next to."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field

    def __str__(self):
        return str(self.args[0])


def setting(name, default):
    return module_setting("oversight", name, default)


def _local_date(dt):
    return to_local(dt).date()


# --- the policy ------------------------------------------------------------------------------------

def current_policy():
    """The newest published version, or None (memoised for the request)."""
    if "oversight_policy" not in g:
        g.oversight_policy = db.session.execute(
            select(Policy).order_by(Policy.version.desc()).limit(1)).scalar_one_or_none()
    return g.oversight_policy


def policies():
    return db.session.execute(select(Policy).order_by(Policy.version.desc())).scalars().all()


def publish(actor, title, body):
    title, body = (title or "").strip(), (body or "").strip()
    if not title:
        raise OversightError(_("Enter the title of the policy."), "title")
    if not body:
        raise OversightError(_("Enter the text of the policy."), "body")
    if len(title) > TITLE_MAX or len(body) > BODY_MAX:
        raise OversightError(_("The policy text is too long."), "body")
    version = (db.session.scalar(select(func.max(Policy.version))) or 0) + 1
    policy = Policy(version=version, title=title, body=body, published_by=actor.id, published_at=utcnow())
    db.session.add(policy)
    db.session.flush()
    audit.record("oversight.policy.published", target=policy, actor=actor, version=version)
    g.pop("oversight_policy", None)
    return policy


def has_acknowledged(user, policy):
    return db.session.scalar(select(func.count()).select_from(Acknowledgement).where(
        Acknowledgement.policy_id == policy.id, Acknowledgement.user_id == user.id)) > 0


def acknowledge(user, policy):
    """Record that ``user`` read and accepted ``policy`` (once per version)."""
    if has_acknowledged(user, policy):
        return False
    db.session.add(Acknowledgement(policy_id=policy.id, user_id=user.id, at=utcnow()))
    audit.record("oversight.policy.acknowledged", target=policy, actor=user, version=policy.version)
    return True


def acknowledgement_counts():
    return dict(db.session.execute(select(Acknowledgement.policy_id, func.count())
                                   .group_by(Acknowledgement.policy_id)).all())


def gate(user, endpoint):
    """core.gates: the current policy first, until the user has acknowledged it. The administrator
    works with accounts, not customer data, and is not held."""
    if not setting("ack_gate", True) or user.role == "admin" or endpoint == "oversight.acknowledge":
        return None
    policy = current_policy()
    if policy is None or has_acknowledged(user, policy):
        return None
    return url_for("oversight.acknowledge")


# --- training --------------------------------------------------------------------------------------

def subject_users():
    """The active accounts the policy and training apply to: everyone but administrators whose
    department uses the module (and the security officers, company-wide)."""
    users = db.session.execute(select(User).where(User.active.is_(True), User.role != "admin")
                               .order_by(User.username)).scalars().all()
    return [u for u in users if is_enabled("oversight", u.department_id, user=u)]


def trainings():
    return db.session.execute(select(Training).order_by(Training.held_on.desc(), Training.id.desc())).scalars().all()


def record_training(actor, *, title, held_on, trainer, topics, attendee_ids):
    title, trainer, topics = (title or "").strip(), (trainer or "").strip(), (topics or "").strip()
    if not title:
        raise OversightError(_("Enter the title of the session."), "title")
    if not trainer:
        raise OversightError(_("Enter who gave the training."), "trainer")
    if not isinstance(held_on, date):
        raise OversightError(_("Enter the date of the session."), "held_on")
    if held_on > local_today():
        raise OversightError(_("A training session is recorded after it took place."), "held_on")
    ids = {int(i) for i in attendee_ids or ()}
    if not ids:
        raise OversightError(_("Choose who attended."), "attendees")
    users = db.session.execute(select(User).where(User.id.in_(ids), User.active.is_(True))).scalars().all()
    if len(users) != len(ids):
        raise OversightError(_("An attendee is not an active account."), "attendees")
    training = Training(title=title[:TITLE_MAX], held_on=held_on, trainer=trainer[:100], topics=topics[:5000],
                        recorded_by=actor.id, recorded_at=utcnow())
    training.attendance = [Attendance(user_id=u.id) for u in users]
    db.session.add(training)
    db.session.flush()
    audit.record("oversight.training.recorded", target=training, actor=actor, attendees=sorted(ids),
                 held_on=held_on.isoformat())
    return training


def last_training(user):
    return db.session.scalar(select(func.max(Training.held_on)).join(Attendance).where(Attendance.user_id == user.id))


# --- who is overdue --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Standing:
    """Where one user stands: the current policy acknowledged or not (and overdue), their last
    training and when the next is due."""

    user: object
    acknowledged: bool
    ack_overdue: bool
    last_training: date | None
    training_due: date
    training_overdue: bool

    @property
    def overdue(self):
        return self.ack_overdue or self.training_overdue


def _standing(user, today, policy, acknowledged, last):
    ack_overdue = (not acknowledged
                   and (today - _local_date(policy.published_at)).days > int(setting("ack_grace_days", 7)))
    if last is not None:
        due = last + timedelta(days=int(setting("training_interval_days", 365)))
    else:
        due = _local_date(user.created_at) + timedelta(days=int(setting("training_grace_days", 30)))
    return Standing(user, acknowledged, ack_overdue, last, due, due < today)


def standing(user, today=None):
    policy = current_policy()
    acknowledged = policy is None or has_acknowledged(user, policy)
    return _standing(user, today or local_today(), policy, acknowledged, last_training(user))


def standings(today=None):
    """Where every user the policy applies to stands (three queries, whatever their number)."""
    today, policy = today or local_today(), current_policy()
    acked = set() if policy is None else set(db.session.execute(
        select(Acknowledgement.user_id).where(Acknowledgement.policy_id == policy.id)).scalars())
    last = dict(db.session.execute(select(Attendance.user_id, func.max(Training.held_on))
                                   .join(Training).group_by(Attendance.user_id)).all())
    return [_standing(u, today, policy, policy is None or u.id in acked, last.get(u.id)) for u in subject_users()]


def overdue_users(today=None):
    return [s for s in standings(today) if s.overdue]


def withholding():
    return bool(setting("withhold_reveal", False))


def withheld_permissions(user):
    """core.withheld_permissions: with OVERSIGHT_WITHHOLD_REVEAL, a user overdue with the policy
    or training loses the reveal rights until it is done."""
    if not withholding() or user.role == "admin":
        return set()
    if standing(user).overdue:
        return set(setting("withheld_permissions", ("customers.reveal_l2", "customers.reveal_l3")))
    return set()


# --- confidentiality reviews -----------------------------------------------------------------------

def review_permissions():
    return tuple(setting("review_permissions", ("customers.reveal_l3",)))


def needs_review(user):
    """The user's role is granted a right that needs a review (withheld for now or not)."""
    cache = g.setdefault("oversight_role_grants", {})
    if user.role not in cache:
        cache[user.role] = role_permissions(user.role)
    return any(p in cache[user.role] for p in review_permissions())


def current_review(user, today=None):
    today = today or local_today()
    return db.session.execute(select(Review).where(Review.user_id == user.id, Review.expires_on >= today)
                              .order_by(Review.expires_on.desc()).limit(1)).scalar_one_or_none()


def reviews():
    return db.session.execute(select(Review).order_by(Review.reviewed_on.desc(), Review.id.desc())).scalars().all()


def unreviewed(today=None):
    """Active users who may reveal 高度敏感 data without a current confidentiality review."""
    users = db.session.execute(select(User).where(User.active.is_(True)).order_by(User.username)).scalars()
    return [u for u in users if needs_review(u) and current_review(u, today) is None]


def record_review(actor, *, user_id, reviewed_on, expires_on, note):
    user = db.session.get(User, user_id) if user_id else None
    if user is None or not user.active:
        raise OversightError(_("Choose an active account."), "user_id")
    if not isinstance(reviewed_on, date) or reviewed_on > local_today():
        raise OversightError(_("The review date cannot be in the future."), "reviewed_on")
    if not isinstance(expires_on, date) or expires_on <= reviewed_on:
        raise OversightError(_("The review must stay valid after the day it was made."), "expires_on")
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise OversightError(_("The note is too long."), "note")
    review = Review(user_id=user.id, reviewed_on=reviewed_on, expires_on=expires_on, reviewer_id=actor.id,
                    note=note, recorded_at=utcnow())
    db.session.add(review)
    db.session.flush()
    audit.record("oversight.review.recorded", target=user, actor=actor, review_id=review.id,
                 expires_on=expires_on.isoformat())
    return review


# --- the self-check and the work queue ---------------------------------------------------------------

def selfcheck():
    """core.selfcheck: reveal grants without a current confidentiality review, users overdue with
    the policy or training, open alerts."""
    from .alerts import open_count
    findings = []
    missing = unreviewed()
    title = _("Confidentiality reviews")
    if missing:
        findings.append(Finding("oversight.reviews", title, "fail",
                                _("%(n)d users may reveal highly sensitive data without a current confidentiality review.",
                                  n=len(missing)),
                                _("Record their review on Confidentiality reviews, or remove the reveal permission from their role."),
                                tuple(u.username for u in missing)))
    else:
        findings.append(Finding("oversight.reviews", title, "ok",
                                _("Everyone who may reveal highly sensitive data has a current confidentiality review.")))
    late = overdue_users()
    title = _("Policy acknowledgement and training")
    if late:
        findings.append(Finding("oversight.training", title, "warning",
                                _("%(n)d users are overdue with the policy acknowledgement or their training.", n=len(late)),
                                _("Hold a training session and record who attended on Training records; remind those who have "
                                  "not acknowledged the policy."),
                                tuple(s.user.username for s in late)))
    else:
        findings.append(Finding("oversight.training", title, "ok",
                                _("Every user acknowledged the policy and is trained.")))
    alerts = open_count()
    title = _("Anomaly alerts")
    if alerts:
        findings.append(Finding("oversight.alerts", title, "warning", _("%(n)d alerts are open.", n=alerts),
                                _("Look into each alert on Anomaly alerts: acknowledge it with a note or open an incident.")))
    else:
        findings.append(Finding("oversight.alerts", title, "ok", _("No alert is open.")))
    return findings


def work_items(user):
    from .alerts import open_count
    items = []
    if can(user, ALERTS):
        items.append(WorkItem(_("Anomaly alerts to look into"), open_count(), url_for("oversight.alerts"), "danger"))
    if can(user, MANAGE):
        items.append(WorkItem(_("Users overdue with policy or training"), len(overdue_users()),
                              url_for("oversight.policy"), "warning"))
    return items
