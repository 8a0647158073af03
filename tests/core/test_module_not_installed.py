"""A module that is loaded (its folder ships with kehu) but not installed has no tables: nothing
of it may run. Most of the suite installs every module, so this file builds instances without
each optional module in turn and does a day's work in them: a customer with consent through the
form, an import, an export, grading, and every menu page of every role."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from core import services
from core.db import db
from core.models import User
from tests.conftest import PASSWORD, PG_URL, _reset_postgres, make_config

OPTIONAL = ("archives", "complaints", "disclosure", "feedback", "grading", "incidents", "lifecycle",
            "oversight", "visits")
ROLES = (("admin1", "admin", None), ("head1", "head", "D1"), ("sales1", "sales", "D1"),
         ("service1", "service", "D1"), ("security1", "security", None))


def build_without(tmp_path, absent):
    """An instance where ``absent`` was never installed: its tables do not exist."""
    from core.app import create_app
    if PG_URL:
        _reset_postgres(PG_URL)
    app = create_app(make_config(tmp_path))
    with app.app_context():
        modules = app.extensions["kehu.modules"]
        missing = set(modules[absent].contributions["tables"])
        db.metadata.create_all(db.engine, tables=[t for t in db.metadata.sorted_tables if t.name not in missing])
        services.grant_defaults("core")
        for name in modules:
            if name != absent:
                services.install_module("test", name)
        dept = services.create_department("test", "D1", "销售一部")
        for name in modules:
            if name != absent and not modules[name].manifest.required:
                services.enable_module("test", name, dept)
        for username, role, code in ROLES:
            services.create_user("test", username, PASSWORD, role, dept if code else None)
        db.session.commit()
    return app


@pytest.fixture(params=OPTIONAL)
def instance(request, tmp_path):
    app = build_without(tmp_path, request.param)
    yield request.param, app
    from core import pdf
    pdf.shutdown(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def sign_in(app, username):
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def test_a_days_work_without_each_optional_module(instance):
    absent, app = instance
    from modules.customers import io as cio
    from modules.customers.models import Customer
    with app.app_context():
        assert not any(t in db.inspect(db.engine).get_table_names()
                       for t in app.extensions["kehu.modules"][absent].contributions["tables"])

    sales = sign_in(app, "sales1")
    form = sales.get("/customers/new?kind=person")
    assert form.status_code == 200
    saved = sales.post("/customers/new?kind=person", data={
        "name": "王小明", "phone": "13800138000", "home_address": "北京市朝阳区建国路1号",
        "consent_purposes": ["service", "analysis"], "consent_channel": "paper"})
    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]

    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["类型", "名称", "手机", "家庭住址", "负责人"])
    writer.writerow(["个人", "李四", "13900139000", "上海市浦东新区世纪大道2号", "sales1"])
    with app.test_request_context():
        head = db.session.execute(select(User).where(User.username == "head1")).scalar_one()
        result = cio.import_customers(head, out.getvalue().encode("utf-8-sig"), "import.csv",
                                      consent_channel="paper")
        assert result.errors == [], result.errors
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 2
        data, count = cio.export_customers(head, "csv", "季度客户核对")
        exported = data.decode("utf-8-sig")
        assert count == 2
        assert "李四" in exported and "王小明" in exported
        assert "北京市朝阳区建国路1号" not in exported  # masked without an approved request

    absent_urls = [rule.rule for rule in app.url_map.iter_rules()
                   if rule.endpoint.startswith(f"{absent}.") and not rule.arguments and "GET" in rule.methods]
    assert absent_urls, absent
    for username, _role, _code in ROLES:
        client = sign_in(app, username)
        home = client.get("/")
        assert home.status_code == 200, (username, home.status_code)
        with app.test_request_context():
            from core import menus
            user = db.session.execute(select(User).where(User.username == username)).scalar_one()
            urls = [item["url"] for item in menus.visible(user)]
        assert all(not url.startswith(f"/{absent}") for url in urls), (absent, urls)
        for url in urls:
            page = client.get(url)
            assert page.status_code == 200, (absent, username, url, page.status_code)
        for url in absent_urls:  # typed in or from an old bookmark: not found, not a server error
            page = client.get(url)
            assert page.status_code == 404, (absent, username, url, page.status_code)
