"""Sign-in and sign-out: argon2 password hashes, lockout per account and per address, audited."""
from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_principal import AnonymousIdentity, Identity, identity_changed
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from core import audit
from core.access import public, safe_local_url, signed_in
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


@login_manager.user_loader
def load_user(token):
    user = db.session.execute(select(User).where(User.session_token == token)).scalar_one_or_none()
    return user if user is not None and user.active else None


def _address():
    return (request.remote_addr or "unknown")[:64]


def _throttle(address):
    row = db.session.get(LoginThrottle, address)
    now = utcnow()
    window = timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])
    if row is None:
        try:  # several sign-ins from a new address at once: one insert wins, the others read it
            with db.session.begin_nested():
                db.session.add(LoginThrottle(address=address, failures=0, window_start=now))
        except IntegrityError:
            pass
        row = db.session.get(LoginThrottle, address)
    elif now - row.window_start > window and not (row.locked_until and row.locked_until > now):
        row.failures, row.window_start, row.locked_until = 0, now, None
    return row


def _fail(user, throttle, username, reason):
    cfg = current_app.config
    lock_for = timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"])
    throttle.failures += 1
    if throttle.failures >= cfg["LOGIN_MAX_ADDRESS_FAILURES"]:
        throttle.locked_until = utcnow() + lock_for
    if user is not None and reason == "password":
        user.failed_logins += 1
        if user.failed_logins >= cfg["LOGIN_MAX_FAILURES"]:
            user.locked_until = utcnow() + lock_for
            audit.record("core.user.locked", target=user, actor=username, result="locked")
    audit.record("core.auth.failed", actor=username, result="failed", reason=reason,
                 target_type="core_user" if user else "", target_id=user.id if user else "")
    db.session.commit()


@bp.route("/login", methods=["GET", "POST"])
@public(kind="form")
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        address = _address()
        throttle = _throttle(address)
        now = utcnow()
        if throttle.locked_until and throttle.locked_until > now:
            audit.record("core.auth.failed", actor=username, result="failed", reason="address locked")
            db.session.commit()
            flash(_("Too many failed sign-ins from this address. Try again later."), "danger")
            return render_template("auth/login.html", form=form), 429
        user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            # verify against a dummy hash so unknown names cost the same time as known ones
            try:
                _hasher().verify(current_app.extensions["kehu.dummy_hash"], form.password.data)
            except VerificationError:
                pass
            _fail(None, throttle, username, "unknown user")
        elif user.locked_until and user.locked_until > now:
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
        # a name or password too long for the form is still a failed attempt on record
        _fail(None, _throttle(_address()), (request.form.get("username") or "").strip(), "invalid input")
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
        if not check_password(user, form.current.data):
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
    return render_template("auth/password.html", form=form)


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
