"""The application factory."""
from __future__ import annotations

import logging
import os
from datetime import UTC, timedelta
from pathlib import Path

import sqlalchemy.exc
from flask import Flask, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_bootstrap import Bootstrap5
from flask_login import current_user
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFError, CSRFProtect
from jinja2 import ChoiceLoader, FileSystemLoader

from core import access, crypto, enablement, hooks, i18n, numbering  # noqa: F401 - numbering's table
from core.db import configure_postgresql, configure_sqlite, db
from core.modules import extra_module_paths, load_all

ROOT = Path(__file__).resolve().parent.parent
csrf = CSRFProtect()
migrate = Migrate()
bootstrap = Bootstrap5()


class SessionInterface(SecureCookieSessionInterface):
    """Session cookie marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


class TrustedProxies:
    """Honour X-Forwarded-For/-Proto/-Host/-Port only when the request comes from a proxy named
    in KEHU_TRUSTED_PROXIES (addresses or networks, comma-separated): then the client's address,
    HTTPS (Secure cookie, HSTS) and host are the proxy's word; from anyone else they are ignored."""

    def __init__(self, wsgi_app, trusted):
        import ipaddress

        from werkzeug.middleware.proxy_fix import ProxyFix
        self.plain = wsgi_app
        self.proxied = ProxyFix(wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)
        self.networks = []
        for item in trusted:
            try:
                self.networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"KEHU_TRUSTED_PROXIES: {item!r} is not an address or network") from None

    def _trusted(self, address):
        import ipaddress
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def __call__(self, environ, start_response):
        if self.networks and self._trusted(environ.get("REMOTE_ADDR", "")):
            return self.proxied(environ, start_response)
        return self.plain(environ, start_response)


def _trusted_proxies():
    value = os.environ.get("KEHU_TRUSTED_PROXIES", "")
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _instance_path(test_config):
    path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("KEHU_INSTANCE") or "instance"
    return str(Path(path).resolve())


def _defaults(app):
    inst = Path(app.instance_path)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=os.environ.get("KEHU_DATABASE_URL") or f"sqlite:///{inst / 'kehu.db'}",
        SECRET_KEY_FILE=os.environ.get("KEHU_SECRET_KEY_FILE") or str(inst / "secret.key"),
        MASTER_KEY_FILE=os.environ.get("KEHU_MASTER_KEY_FILE") or str(inst / "master.key"),
        COMPANY_NAME=os.environ.get("KEHU_COMPANY_NAME", "kehu"),
        BABEL_DEFAULT_TIMEZONE=os.environ.get("KEHU_TIMEZONE") or "Asia/Shanghai",
        UPLOAD_FOLDER=str(inst / "uploads"),
        TRUSTED_PROXIES=_trusted_proxies(),  # e.g. KEHU_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8
        AUDIT_CHECKPOINT_FILE=os.environ.get("KEHU_AUDIT_CHECKPOINT_FILE") or str(inst / "audit.checkpoint"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,  # set per request by SessionInterface
        SESSION_COOKIE_NAME="kehu_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),  # absolute lifetime
        SESSION_IDLE_MINUTES=30,
        # the cookie is signed and sent again when the session changes (sign-in, the activity mark
        # of _session_timeouts at most once a minute), not on every response
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=20 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=8 * 3600,  # long complaint forms must not expire under the user
        BOOTSTRAP_SERVE_LOCAL=True,  # users may be offline: no CDN
        LOGIN_MAX_FAILURES=5,  # per account, then locked for LOGIN_ACCOUNT_LOCK_MINUTES (growing)
        LOGIN_ACCOUNT_LOCK_MINUTES=15,
        LOGIN_MAX_ADDRESS_FAILURES=20,  # per client address within the window, then growing delays
        LOGIN_LOCK_MINUTES=15,  # the window, and the longest delay of an address
        LOGIN_AUDIT_EACH=20,  # failures of an address audited one by one per window; then summarised
        PAGE_SIZE=50,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
    )


def create_app(test_config=None, *, uninitialised_ok=False, load_modules=True):
    """Build the app. Without its key files the app refuses to start (``kehu init`` makes them);
    ``uninitialised_ok`` lets `kehu init` itself run."""
    app = Flask("kehu", instance_path=_instance_path(test_config), root_path=str(ROOT),
                template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    _defaults(app)
    if test_config:
        app.config.update(test_config)
    app.session_interface = SessionInterface()
    app.wsgi_app = TrustedProxies(app.wsgi_app, app.config["TRUSTED_PROXIES"])
    app.logger.setLevel(logging.INFO)

    secret_file = Path(app.config["SECRET_KEY_FILE"])
    if not app.config.get("SECRET_KEY"):
        if secret_file.exists():
            if os.name == "posix" and secret_file.stat().st_mode & 0o077:  # as strict as the master key
                raise crypto.KeyringError(
                    f"secret key file {secret_file} is readable by group or others "
                    f"(mode {secret_file.stat().st_mode & 0o777:04o}): run `chmod 600 {secret_file}`")
            app.config["SECRET_KEY"] = secret_file.read_text().strip()
        elif not uninitialised_ok:
            raise crypto.KeyringError(f"secret key file {secret_file} is missing: run `kehu init` "
                                      "or set KEHU_SECRET_KEY_FILE")
    app.extensions.update({
        "kehu.migration_paths": [], "kehu.cli": [], "kehu.menus": [],
        "kehu.template_paths": [], "kehu.translation_paths": [], "kehu.modules": {},
    })
    hooks.init_app(app)

    db.init_app(app)
    with app.app_context():
        configure_sqlite(db.engine)
        configure_postgresql(db.engine)
    if Path(app.config["MASTER_KEY_FILE"]).exists() or not uninitialised_ok:
        crypto.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))

    @migrate.configure
    def _version_locations(config):
        paths = [str(ROOT / "migrations" / "versions"), *app.extensions["kehu.migration_paths"]]
        config.set_main_option("version_locations", os.pathsep.join(paths))
        return config

    csrf.init_app(app)
    bootstrap.init_app(app)
    access.init_app(app)
    from core import auth, views
    auth.init_app(app)
    views.init_app(app)

    # without module code (safe mode) no installed module can be told "missing"
    app.extensions["kehu.modules_loaded"] = load_modules and not app.config.get("SAFE_MODE")
    if app.extensions["kehu.modules_loaded"]:
        paths = extra_module_paths() + list(app.config.get("MODULE_PATHS", ()))
        app.extensions["kehu.modules"] = load_all(app, paths)
    app.jinja_loader = ChoiceLoader([FileSystemLoader(app.template_folder)] + [
        FileSystemLoader(p) for p in app.extensions["kehu.template_paths"]])
    i18n.init_app(app, app.extensions["kehu.translation_paths"])
    from core import cli
    cli.register_module_commands(app)
    access.check_endpoints(app)

    app.before_request(_write_intent)
    app.before_request(_session_timeouts)
    app.before_request(auth.force_password_change)
    app.before_request(auth.run_gates)
    app.before_request(enablement.guard)
    if app.extensions["kehu.modules_loaded"]:
        enablement.skip_refused_context(app)
    app.after_request(_security_headers)
    from core import watch
    watch.init_app(app)
    _error_pages(app)
    app.context_processor(_template_globals)
    app.add_template_filter(i18n.local_datetime, "local_datetime")
    app.add_template_filter(i18n.local_date, "local_date")
    if app.extensions.get("kehu.keyring") is not None:
        from core import pdf
        pdf.init_app(app)
    return app


def _write_intent():
    """A request that changes things (POST, PUT, PATCH, DELETE) takes SQLite's write lock before
    its first read, as one write transaction; a GET begins a read transaction, runs beside the
    others, and takes the lock only for what it writes (an audit entry), see core.db."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        from core.db import write_lock
        write_lock()


SEEN_EVERY = 60  # seconds: how often an active session's activity mark is rewritten


def _session_timeouts():
    """Idle timeout and absolute lifetime of a sign-in (the cookie is re-signed with the activity
    mark, so its own expiry would never come for an active user). The mark is rewritten at most
    every SEEN_EVERY seconds: an unchanged session is neither signed nor sent again (5 % of a list
    page's instructions), and the idle timeout counts from up to a minute before the last request."""
    from datetime import datetime

    from flask import current_app
    from flask_login import logout_user
    if not session.permanent:  # setting it marks the session changed
        session.permanent = True
    if not current_user.is_authenticated:
        return
    now = datetime.now(UTC).timestamp()
    idle = current_app.config["SESSION_IDLE_MINUTES"] * 60
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    if now - session.get("seen", now) > idle or now - session.get("signed_in_at", 0) > lifetime:
        logout_user()
        session.clear()
        return
    if now - session.get("seen", 0) >= SEEN_EVERY:
        session["seen"] = now


def _security_headers(response):
    h = response.headers
    h.setdefault("Content-Security-Policy",
                 "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                 "img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
                 "frame-ancestors 'none'")
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    static = request.endpoint == "static" or (request.endpoint or "").endswith(".static")
    # pages with personal data must not linger in browser or proxy caches. Signed in is read
    # from the session, not current_user: a page that committed its audit entry would reload the
    # expired user from the database just for this
    if not static and session.get("_user_id") is not None:
        h["Cache-Control"] = "no-store"
    return response


def _error_pages(app):
    def page(code):
        def handler(error):
            if code != 500:
                return render_template(f"errors/{code}.html", error=error), code
            db.session.rollback()
            try:
                return render_template("errors/500.html", error=error), 500
            except Exception:  # the layout needs the database; when that is what failed, plain text
                return ("500 · 服务器内部错误，未保存任何内容。请稍后重试。 / Server error; nothing was saved.",
                        500, {"Content-Type": "text/plain; charset=utf-8"})
        return handler

    for code in (400, 403, 404, 405, 413, 429, 500):
        app.register_error_handler(code, page(code))

    def bad_value(error):
        # a number beyond 64 bits or a NUL that got past the forms: the request is bad, not the server
        db.session.rollback()
        return render_template("errors/400.html", error=error), 400

    app.register_error_handler(OverflowError, bad_value)
    app.register_error_handler(sqlalchemy.exc.DataError, bad_value)

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("errors/csrf.html", error=error), 400


def _can(permission):
    """``{% if can("customers.export") %}`` in templates: the signed-in user holds it."""
    return current_user.is_authenticated and access.can(current_user, permission)


def _template_globals():
    from core import menus
    from core.audit import action_label
    from core.models import ROLE_LABELS
    return {"menu_items": menus.visible, "role_label": ROLE_LABELS.get, "can": _can,
            "action_label": action_label}
