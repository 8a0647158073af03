"""Fixtures in the manner of Flask's tutorial: app, client, runner, plus users and modules.

The suite runs against SQLite always, and against PostgreSQL when KEHU_TEST_DATABASE_URL is set
(each test gets an empty schema there)."""
from __future__ import annotations

import contextlib
import os
import re

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import create_engine, text

from core import crypto, services
from core.db import db
from core.models import Department, User

PASSWORD = "Correct-horse-42"


def _declare_test_audit_actions():
    """Audit actions the core tests write directly (audit.record refuses undeclared actions)."""
    from core import audit
    from core.modules import AuditAction
    for name in ("test.filler", "test.details", "test.xss", "test.migrated", "test.printed"):
        audit.declare(AuditAction(name, {"zh_CN": "测试", "en": "Test"}))


_declare_test_audit_actions()
PG_URL = os.environ.get("KEHU_TEST_DATABASE_URL")
# The cipher suite of every test instance's master key: KEHU_TEST_CRYPTO=sm runs the whole suite
# with the national suite (SM4-GCM, HMAC-SM3). Tests marked with `both_suites` run under each.
TEST_CRYPTO = os.environ.get("KEHU_TEST_CRYPTO", crypto.DEFAULT_SUITE)
both_suites = pytest.mark.parametrize("crypto_suite", sorted(crypto.SUITES), indirect=True)
FAST_ARGON2 = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


_RESETS = [0]
# What dropping and re-creating every table churns in the system catalogs.
CHURNED_CATALOGS = ("pg_attribute", "pg_depend", "pg_class", "pg_index", "pg_constraint", "pg_type",
                    "pg_attrdef", "pg_sequence", "pg_trigger", "pg_statistic")


def _reset_postgres(url):
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    _RESETS[0] += 1
    if _RESETS[0] % 100 == 1:  # the first reset of a run, then every 100th
        _vacuum_catalogs(engine)
    engine.dispose()


def _vacuum_catalogs(engine):
    """Each reset leaves thousands of dead rows in the system catalogs; where PostgreSQL runs
    without autovacuum (this project's CI machine does) they pile up run after run (1.8 million in
    pg_attribute after a day) and every DDL statement and catalog lookup slows down with them.
    Vacuuming them takes a second; a role that may not is warned, not failed."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM " + ", ".join(f"pg_catalog.{name}" for name in CHURNED_CATALOGS)))


@contextlib.contextmanager
def captured_statements(app):
    """The (statement, parameters) the app's engine runs inside the block, in order."""
    from sqlalchemy import event
    statements = []

    def remember(conn, cursor, statement, parameters, *args):
        statements.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", remember)


def sqlite_plan(sql, params):
    """SQLite's EXPLAIN QUERY PLAN of a captured statement, its steps joined in one line (inside
    an app context)."""
    rows = db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
    return " ".join(row[-1] for row in rows)


def make_config(tmp_path, *, crypto_suite=None, **extra):
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    master, secret = instance / "master.key", instance / "secret.key"
    if not master.exists():
        crypto.Keyring.generate(master, suite=crypto_suite or TEST_CRYPTO)
        crypto.generate_secret_key_file(secret)
    config = {
        "TESTING": True,
        "WTF_CSRF_ENABLED": False,
        "INSTANCE_PATH": str(instance),
        "MASTER_KEY_FILE": str(master),
        "SECRET_KEY_FILE": str(secret),
        "SQLALCHEMY_DATABASE_URI": PG_URL or f"sqlite:///{instance / 'kehu.db'}",
        "RUN_MIGRATIONS": False,
        "PASSWORD_HASH_PARAMS": FAST_ARGON2,
        "UPLOAD_FOLDER": str(instance / "uploads"),
    }
    config.update(extra)
    return config


@pytest.fixture
def config_overrides():
    """Override in a test module to change the app's configuration."""
    return {}


@pytest.fixture
def crypto_suite(request):
    """The cipher suite of the test instance ("aes" or "sm"): KEHU_TEST_CRYPTO, or each in turn
    for tests marked ``both_suites``."""
    return getattr(request, "param", TEST_CRYPTO)


@pytest.fixture
def app(tmp_path, config_overrides, crypto_suite):
    from core.app import create_app
    if PG_URL:
        _reset_postgres(PG_URL)
    app = create_app(make_config(tmp_path, crypto_suite=crypto_suite, **config_overrides))
    with app.app_context():
        db.create_all()
        services.grant_defaults("core")
        for name in app.extensions["kehu.modules"]:
            services.install_module("test", name)
        db.session.commit()
    yield app
    from core import pdf
    pdf.shutdown(app)  # its warm renderer processes end with the test, not when the app is collected
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    with app.test_request_context():
        yield


@pytest.fixture
def runner(app):
    """Invoke the real `kehu` command against the test app: runner("modules", "list")."""
    from core.cli import main

    def invoke(*args, input=None):
        return CliRunner().invoke(main, list(args), input=input, obj=ScriptInfo(create_app=lambda: app))

    return invoke


@pytest.fixture
def department(app):
    def get(code="D1", name=None):
        with app.app_context():
            dept = db.session.query(Department).filter_by(code=code).one_or_none()
            if dept is None:
                dept = services.create_department("test", code, name or f"部门{code}")
                db.session.commit()
            return dept.id
    return get


@pytest.fixture
def make_user(app, department):
    """Create a user and return its id: make_user("alice", "sales", "D1")."""
    def make(username, role="sales", dept="D1", password=PASSWORD):
        dept_id = department(dept) if dept else None
        with app.app_context():
            dept_obj = db.session.get(Department, dept_id) if dept_id else None
            user = services.create_user("test", username, password, role, dept_obj)
            db.session.commit()
            return user.id
    return make


@pytest.fixture
def login_as(app, make_user):
    """Sign a test client in as a user (created on demand) through the real form."""
    def login(client, username, role="sales", dept="D1"):
        with app.app_context():
            exists = db.session.query(User).filter_by(username=username).one_or_none()
        if exists is None:
            make_user(username, role, dept)
        response = client.post("/login", data={"username": username, "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return client
    return login


@pytest.fixture
def enable_module(app, department):
    def enable(dept_code, name):
        dept_id = department(dept_code)
        with app.app_context():
            services.enable_module("test", name, db.session.get(Department, dept_id))
            db.session.commit()
    return enable


@pytest.fixture
def make_customer(app, make_user):
    """Create a customer in the register for any module's tests and return its id, as a
    salesperson would through the form: with the customer's consent (separate consent when an
    ID number or bank account is given). make_customer("sales1", name="张三", phone="13800138000");
    the owner is created (sales in D1) when missing; ``kind="org"`` takes ``company_name``."""
    def make(owner="sales1", *, kind="person", dept="D1", consent_purposes=("service", "analysis"), **fields):
        from modules.customers.services import create_customer
        with app.app_context():
            user = db.session.query(User).filter_by(username=owner).one_or_none()
        if user is None:
            make_user(owner, "sales", dept)
        data = {"kind": kind, **fields}
        if kind == "person":
            data.setdefault("name", "张三")
        else:
            data.setdefault("company_name", "示例科技有限公司")
        sensitive = bool(fields.get("id_number") or fields.get("bank_account"))
        consent = {"purposes": list(consent_purposes), "channel": "paper", "sensitive": sensitive,
                   "scope": ""}
        with app.test_request_context():
            actor = db.session.query(User).filter_by(username=owner).one()
            customer = create_customer(actor, data, consent=consent)
            db.session.commit()
            return customer.id
    return make


def csrf_token(html):
    """The CSRF token of the first form on a page (for tests that keep CSRF on)."""
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    return match.group(1) if match else None
