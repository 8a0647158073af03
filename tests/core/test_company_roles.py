"""A module's company_roles: users of those roles (who have no department, like the security
officer) use the installed module whatever their department; others still need enablement."""
from __future__ import annotations

from pathlib import Path

import pytest

from core import services
from core.app import create_app
from core.db import db
from core.models import Department
from core.modules import Manifest, ModuleError
from tests.conftest import PASSWORD, PG_URL, _reset_postgres, make_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def company_app(tmp_path):
    if PG_URL:
        _reset_postgres(PG_URL)
    app = create_app(make_config(tmp_path, MODULE_PATHS=[str(FIXTURES / "modules_company")]))
    with app.app_context():
        db.create_all()
        services.grant_defaults("core")
        for name in app.extensions["kehu.modules"]:
            services.install_module("test", name)
        dept = services.create_department("test", "C1", "一部")
        services.create_user("test", "cw_security", PASSWORD, "security", None)
        services.create_user("test", "cw_head", PASSWORD, "head", dept)
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _client(app, username):
    client = app.test_client()
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302
    return client


def test_a_company_role_uses_the_module_without_a_department(company_app):
    security = _client(company_app, "cw_security")
    assert security.get("/compwide/").status_code == 200
    assert 'id="menu-compwide-index"' in security.get("/").get_data(as_text=True)


def test_other_roles_still_need_their_department_to_enable_it(company_app):
    head = _client(company_app, "cw_head")
    assert head.get("/compwide/").status_code == 404
    assert 'id="menu-compwide-index"' not in head.get("/").get_data(as_text=True)
    with company_app.app_context():
        services.enable_module("test", "compwide", db.session.query(Department).filter_by(code="C1").one())
        db.session.commit()
    assert head.get("/compwide/").status_code == 200


def test_unknown_company_roles_are_refused():
    manifest = Manifest(name="x", version="1.0.0", title={"zh_CN": "x", "en": "x"}, company_roles=("auditor",))
    with pytest.raises(ModuleError, match="unknown roles"):
        manifest.check("x")


def test_a_menu_badge_shows_its_count_and_hides_zero(company_app):
    home = _client(company_app, "cw_security").get("/").get_data(as_text=True)
    assert '<span class="badge rounded-pill text-bg-danger" id="badge-compwide-index">3</span>' in home
    with company_app.app_context():
        services.enable_module("test", "compwide", db.session.query(Department).filter_by(code="C1").one())
        db.session.commit()
    home = _client(company_app, "cw_head").get("/").get_data(as_text=True)
    assert 'id="menu-compwide-index"' in home and 'id="badge-compwide-index"' not in home
