"""Sign-in and sign-out: argon2 password hashes, lockout per account and per address, audited."""
from __future__ import annotations

import functools
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_principal import AnonymousIdentity, Identity, identity_changed
from flask_wtf import FlaskForm
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from core import audit
from core.access import grants_columns, public, remember_grants, safe_local_url, signed_in
from core.db import db
from core.i18n import LOCALES
from core.models import LoginThrottle, User, utcnow
from core.validation import CleanText

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
MIN_PASSWORD = 10


def _hasher():
    return current_app.extensions["kehu.hasher"]


def hash_password(password):
    return _hasher().hash(password)


def check_password(user, password):
    """Verify, and upgrade the stored hash when argon2's parameters have moved on."""
    try:
        _hasher().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return True


def validate_new_password(password, username=""):
    """Returns an error message, or None when the password is acceptable."""
    if len(password) < MIN_PASSWORD:
        return _("The password must have at least %(n)d characters.", n=MIN_PASSWORD)
    if len(password) > 128:
        return _("The password must have at most 128 characters.")
    if username and username.lower() in password.lower():
        return _("The password must not contain the user name.")
    if len(set(password)) < 4:
        return _("The password is too simple.")
    return None


class LoginForm(FlaskForm):
    # CleanText refuses NUL and control characters before they reach the database
    username = StringField(_l("User name"), validators=[DataRequired(), CleanText("name"), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired()])
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=128)])
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(), EqualTo("new", message=_l("The passwords differ."))])


@functools.cache
def _user_by_token():
    # with the department the header shows on every page and the grants every page checks: one
    # statement instead of three; built once per process (the joined load alone cost ~0.1 ms to
    # build on every request)
    return (select(User, *grants_columns(User.role)).options(joinedload(User.department))
            .where(User.session_token == bindparam("token")))


@login_manager.user_loader
def load_user(token):
    row = db.session.execute(_user_by_token(), {"token": token}).one_or_none()
    if row is None or not row[0].active:
        return None
    user, modules, grants = row
    remember_grants(user, modules, grants)
    return user


def _address():
    # behind a proxy named in TRUSTED_PROXIES this is the client's address (see core.app)
    return (request.remote_addr or "unknown")[:64]


def _burn(password):
    """One hash verification: every refusal costs the same time, so timing tells nothing about
    which names exist or are locked."""
    try:
        _hasher().verify(current_app.extensions["kehu.dummy_hash"], password or "")
    except VerificationError:
        pass


def _window():
    return timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])


def _throttle(address):
    row = db.session.get(LoginThrottle, address)
    now = utcnow()
    if row is None:
        try:  # several sign-ins from a new address at once: one insert wins, the others read it
            with db.session.begin_nested():
                db.session.add(LoginThrottle(address=address, failures=0, window_start=now, unaudited=0))
        except IntegrityError:
            pass
        row = db.session.get(LoginThrottle, address)
    elif now - row.window_start > _window() and not (row.locked_until and row.locked_until > now):
        _summarise(row)
        row.failures, row.window_start, row.locked_until = 0, now, None
    return row


def _summarise(row):
    """One audit entry for the failures of an address that were counted but not written one by
    one (a tool hammering the form must not flood the trail)."""
    if row.unaudited:
        audit.record("core.auth.failures_summarised", actor="", result="failed", address=row.address,
                     failures=row.unaudited, since=row.window_start.isoformat(timespec="seconds"))
        row.unaudited = 0


def _summarise_expired():
    """Summaries of other addresses whose window has ended, written by whichever sign-in comes next."""
    cutoff = utcnow() - _window()
    for row in db.session.execute(select(LoginThrottle).where(
            LoginThrottle.unaudited > 0, LoginThrottle.window_start < cutoff).limit(20)).scalars():
        _summarise(row)


def _delay(failures, threshold, cap):
    """Growing delays past a threshold: 1 s, 2 s, 4 s … up to ``cap``."""
    if failures < threshold:
        return None
    return min(timedelta(seconds=2 ** min(failures - threshold, 30)), cap)


def _fail(user, throttle, username, reason):
    cfg = current_app.config
    throttle.failures += 1
    delay = _delay(throttle.failures, cfg["LOGIN_MAX_ADDRESS_FAILURES"], _window())
    if delay:
        throttle.locked_until = utcnow() + delay
    if user is not None and reason == "password":
        user.failed_logins += 1
        lock = _delay(user.failed_logins, cfg["LOGIN_MAX_FAILURES"], _window())
        if lock:
            # the first lock is the full period (an account under attack), later ones grow from it
            user.locked_until = utcnow() + max(lock, timedelta(minutes=cfg["LOGIN_ACCOUNT_LOCK_MINUTES"]))
            if user.failed_logins == cfg["LOGIN_MAX_FAILURES"]:
                audit.record("core.user.locked", target=user, actor=username, result="locked")
    _record_failure(throttle, username, reason, user)
    db.session.commit()


def _record_failure(throttle, username, reason, user=None):
    """The first failures of an address in a window are audited one by one, later ones summarised."""
    if throttle.failures > current_app.config["LOGIN_AUDIT_EACH"] or reason == "address waiting":
        throttle.unaudited = (throttle.unaudited or 0) + 1
        return
    audit.record("core.auth.failed", actor=username, result="failed", reason=reason,
                 target_type="core_user" if user else "", target_id=user.id if user else "")


def _waiting(throttle):
    return throttle.locked_until is not None and throttle.locked_until > utcnow()


def _refuse_waiting(form, throttle, username):
    """An address inside its delay: refused without looking at the account, not counted again
    (so a tool cannot keep extending it), and summarised in the trail."""
    _burn(form.password.data if form else "")
    if throttle.unaudited == 0 and throttle.failures <= current_app.config["LOGIN_AUDIT_EACH"]:
        audit.record("core.auth.failed", actor=username, result="failed", reason="address locked")
    else:
        throttle.unaudited = (throttle.unaudited or 0) + 1
    db.session.commit()
    flash(_("Too many failed sign-ins from this address. Try again later."), "danger")
    return render_template("auth/login.html", form=form or LoginForm()), 429


@bp.route("/login", methods=["GET", "POST"])
@public(kind="form")
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        throttle = _throttle(_address())
        _summarise_expired()
        now = utcnow()
        if _waiting(throttle):
            return _refuse_waiting(form, throttle, username)
        user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            _burn(form.password.data)  # unknown names cost the same time as known ones
            _fail(None, throttle, username, "unknown user")
        elif user.locked_until and user.locked_until > now:
            _burn(form.password.data)
            _fail(user, throttle, username, "account locked")
        elif not check_password(user, form.password.data):
            _fail(user, throttle, username, "password")
        elif not user.active:
            _fail(user, throttle, username, "inactive")
        else:
            # the address's failure count stays: one valid account must not reset guessing others
            user.failed_logins, user.locked_until = 0, None
            # a fresh session: nothing planted before sign-in survives it
            next_url = session.get("next")
            locale = session.get("locale")  # a language chosen on the sign-in page stays
            session.clear()
            login_user(user)
            if locale in LOCALES:
                session["locale"] = user.locale = locale
            identity_changed.send(current_app._get_current_object(), identity=Identity(user.id))
            session["seen"] = session["signed_in_at"] = utcnow().timestamp()
            audit.record("core.auth.signed_in", actor=user)
            db.session.commit()
            if user.must_change_password:
                flash(_("Please choose a new password."), "warning")
                return redirect(url_for("auth.password"))
            return redirect(safe_local_url(request.args.get("next") or next_url, url_for("main.index")))
        # one message for every failure, so it tells nothing about which accounts exist
        flash(_("Wrong user name or password, or the account is locked."), "danger")
    elif request.method == "POST" and "csrf_token" not in form.errors:
        # a missing, too long or malformed name or password: one failed attempt on record, once
        throttle = _throttle(_address())
        username = (request.form.get("username") or "").strip()
        if _waiting(throttle):
            return _refuse_waiting(None, throttle, username)
        _burn(request.form.get("password"))
        _fail(None, throttle, username, "invalid input")
        flash(_("Wrong user name or password, or the account is locked."), "danger")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@signed_in(kind="action")
def logout():
    user = current_user._get_current_object()
    user.rotate_session_token()  # a copied cookie stops working too
    audit.record("core.auth.signed_out", actor=user)
    db.session.commit()
    logout_user()
    session.clear()
    identity_changed.send(current_app._get_current_object(), identity=AnonymousIdentity())
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in(kind="form")
def password():
    form = PasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        problem = validate_new_password(form.new.data, user.username)
        if user.locked_until and user.locked_until > utcnow():
            _burn(form.current.data)
            form.current.errors.append(_("Too many wrong passwords. Try again later."))
        elif not check_password(user, form.current.data):
            _wrong_current_password(user)
            form.current.errors.append(_("The current password is wrong."))
        elif problem:
            form.new.errors.append(problem)
        else:
            user.password_hash = hash_password(form.new.data)
            user.must_change_password = False
            user.rotate_session_token()  # ends every other session of this user
            audit.record("core.user.password_changed", target=user)
            db.session.commit()
            login_user(user)
            flash(_("Your password has been changed; other sessions were signed out."), "success")
            return redirect(url_for("main.index"))
    return render_template("auth/password.html", form=form, min_length=MIN_PASSWORD)


class ProfileForm(FlaskForm):
    display_name = StringField(_l("Name"), validators=[DataRequired(), CleanText("name"), Length(max=100)])


@bp.route("/account", methods=["GET", "POST"])
@signed_in(kind="form")
def account():
    """The user's own account: the name colleagues see; the password has its own page."""
    from core import services
    user = current_user._get_current_object()
    form = ProfileForm(data={"display_name": user.display_name})
    if form.validate_on_submit():
        try:
            services.change_display_name(user, form.display_name.data)
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("auth.account"))
        except services.ServiceError as exc:
            db.session.rollback()
            form.display_name.errors.append(str(exc))
    return render_template("auth/account.html", form=form, user=user)


# What a user who must change their password may still reach.
PASSWORD_CHANGE_ENDPOINTS = {"auth.password", "auth.logout", "main.language", "main.healthz", "static"}


def force_password_change():
    """before_request: until a one-time or reset password is changed, every page leads to the
    change form (sign-out and static files excepted)."""
    if not (current_user.is_authenticated and current_user.must_change_password):
        return None
    endpoint = request.endpoint or ""
    if endpoint in PASSWORD_CHANGE_ENDPOINTS or endpoint.endswith(".static"):
        return None
    return redirect(url_for("auth.password"))


def run_gates():
    """before_request, after the forced password change: a module may send a signed-in user to one
    page before any other (hook core.gates), e.g. the customer-information policy to acknowledge.
    Sign-out, the password page, the language switch and static files stay open."""
    if not current_user.is_authenticated:
        return None
    endpoint = request.endpoint or ""
    if endpoint in PASSWORD_CHANGE_ENDPOINTS or endpoint.endswith(".static"):
        return None
    from core import hooks
    user = current_user._get_current_object()
    for _module, gate in hooks.for_user("core.gates", user):
        target = gate(user, endpoint)
        if target:
            return redirect(target)
    return None


def _wrong_current_password(user):
    """A wrong current password counts towards the account's lock like a failed sign-in: a
    borrowed session must not become a password-guessing oracle."""
    cfg = current_app.config
    user.failed_logins += 1
    audit.record("core.auth.failed", actor=user, result="failed", reason="current password",
                 target=user)
    lock = _delay(user.failed_logins, cfg["LOGIN_MAX_FAILURES"], _window())
    if lock:
        user.locked_until = utcnow() + max(lock, timedelta(minutes=cfg["LOGIN_ACCOUNT_LOCK_MINUTES"]))
        audit.record("core.user.locked", target=user, actor=user, result="locked")
    db.session.commit()


def init_app(app):
    # argon2id with the library's current defaults; tests pass cheaper parameters
    app.extensions["kehu.hasher"] = PasswordHasher(**app.config.get("PASSWORD_HASH_PARAMS", {}))
    app.extensions["kehu.dummy_hash"] = app.extensions["kehu.hasher"].hash("kehu-timing-equaliser")
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please sign in.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    app.register_blueprint(bp)
