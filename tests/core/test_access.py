"""Access control: every route declares who may use it, refusals are 403 and audited, and a
change of grants, role or status takes effect on the very next request."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core import access, services
from core.audit import AuditEntry
from core.db import db
from core.models import Department, RoleGrant, User

# Reachable without signing in. Adding to this list is a decision to review, not a formality.
PUBLIC_ENDPOINTS = {"auth.login", "main.healthz", "main.language", "feedback_public.form"}


def entries(app, action):
    with app.app_context():
        return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                  .order_by(AuditEntry.id)).scalars().all()


def user_row(app, username):
    with app.app_context():
        return db.session.execute(select(User).where(User.username == username)).scalar_one()


def grants_of(app, role):
    with app.app_context():
        return set(db.session.execute(select(RoleGrant.permission).where(RoleGrant.role == role)).scalars())


def dept_id(app, code):
    with app.app_context():
        return db.session.execute(select(Department.id).where(Department.code == code)).scalar_one()


def is_login_redirect(response):
    return response.status_code == 302 and response.headers["Location"].split("?")[0].endswith("/login")


# --- route inventory ----------------------------------------------------------------------------

def _inventory(app):
    kinds = {}
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint
        if endpoint == "static" or endpoint.endswith(".static"):
            continue
        view = app.view_functions[endpoint]
        if getattr(view, "kehu_permission", None):
            kinds[endpoint] = ("permission", view.kehu_permission)
        elif getattr(view, "kehu_public", False):
            kinds[endpoint] = ("public", None)
        elif getattr(view, "kehu_signed_in", False):
            kinds[endpoint] = ("signed_in", None)
        else:
            kinds[endpoint] = ("nothing", None)
    return kinds


def test_every_endpoint_declares_a_permission_or_is_explicitly_open(app):
    kinds = _inventory(app)
    assert [e for e, (kind, _) in kinds.items() if kind == "nothing"] == []
    assert {e for e, (kind, _) in kinds.items() if kind == "public"} == PUBLIC_ENDPOINTS
    declared = access.declared()
    undeclared = {e: p for e, (kind, p) in kinds.items() if kind == "permission" and p not in declared}
    assert undeclared == {}
    # the inventory sees the core's pages and the modules' routes alike
    assert kinds["admin.modules"] == ("permission", "core.modules.view")
    assert kinds["audit.trail"] == ("permission", "core.audit.view")
    assert kinds["notices.new"] == ("permission", "notices.post")
    assert kinds["auth.logout"] == ("signed_in", None)


def sample_values(rule):
    """A value for each argument of a URL rule that its converter accepts (any(...) takes one of
    its words, every other converter 1)."""
    values = {}
    for arg, converter in rule._converters.items():
        words = getattr(converter, "items", None)
        values[arg] = sorted(words)[0] if words else 1
    return values


def test_anonymous_requests_to_guarded_routes_go_to_sign_in(app, client):
    adapter = app.url_map.bind("localhost")
    inventory = _inventory(app)
    checked = 0
    for rule in app.url_map.iter_rules():
        kind, _ = inventory.get(rule.endpoint, ("static", None))
        if kind not in ("permission", "signed_in"):
            continue
        values = sample_values(rule)
        if "name" in values:
            values["name"] = "notices"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = adapter.build(rule.endpoint, values, method=method)
            response = client.open(url, method=method)
            assert is_login_redirect(response), (method, url, response.status_code)
            checked += 1
    assert checked >= 15


def test_health_check_is_public(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


# --- refusals -------------------------------------------------------------------------------------

STAFF_REFUSED = [
    ("GET", "/admin/modules", "core.modules.view"),
    ("GET", "/admin/users", "core.users.manage"),
    ("GET", "/admin/roles", "core.roles.manage"),
    ("GET", "/admin/departments", "core.departments.manage"),
    ("GET", "/audit/", "core.audit.view"),
    ("POST", "/admin/modules/notices/install", "core.modules.install"),
    ("POST", "/admin/modules/notices/enable", "core.modules.enable"),
    ("POST", "/admin/roles", "core.roles.manage"),
    ("POST", "/admin/users/1", "core.users.manage"),
    ("POST", "/admin/departments", "core.departments.manage"),
]


@pytest.mark.parametrize("role", ["sales", "service"])
def test_staff_get_403_on_admin_and_audit_pages_and_each_refusal_is_audited(app, client, login_as, role):
    login_as(client, "staff", role=role, dept="D1")
    before = len(entries(app, "core.access.denied"))
    for method, url, _ in STAFF_REFUSED:
        response = client.open(url, method=method, data={"role": role, "permission": "core.roles.manage"})
        assert response.status_code == 403, (method, url)
        assert "403" in response.get_data(as_text=True)  # the friendly page, not a bare error
    denied = entries(app, "core.access.denied")[before:]
    assert [e.details_dict["permission"] for e in denied] == [p for _, _, p in STAFF_REFUSED]
    assert {(e.actor, e.role, e.result) for e in denied} == {("staff", role, "denied")}
    # the refused POSTs changed nothing
    assert "core.roles.manage" not in grants_of(app, role)


def test_head_may_see_modules_but_not_users_or_audit(app, client, login_as):
    login_as(client, "boss", role="head", dept="D1")
    assert client.get("/admin/modules").status_code == 200
    assert client.get("/admin/users").status_code == 403
    assert client.get("/audit/").status_code == 403


def test_admin_holds_no_customer_or_audit_permission_by_default(app):
    admin = grants_of(app, "admin")
    assert "core.audit.view" not in admin
    assert not any(p.startswith(("customers.", "notices.")) for p in admin)


# --- changes take effect at once ----------------------------------------------------------------------

def test_a_changed_grant_takes_effect_on_the_next_request(app, client, login_as, enable_module):
    enable_module("D1", "notices")
    login_as(client, "reader", role="sales", dept="D1")
    assert client.get("/notices/").status_code == 200
    assert 'id="menu-notices-list"' in client.get("/").get_data(as_text=True)

    with app.app_context():
        services.set_grants("test", "sales", grants_of(app, "sales") - {"notices.view"})
        db.session.commit()
    assert client.get("/notices/").status_code == 403
    assert 'id="menu-notices-list"' not in client.get("/").get_data(as_text=True)

    with app.app_context():
        services.set_grants("test", "sales", grants_of(app, "sales") | {"notices.view"})
        db.session.commit()
    assert client.get("/notices/").status_code == 200


def test_a_role_without_any_grant_is_refused_everything_but_its_own_account(app, client, login_as, enable_module):
    """The grants come with the signed-in user as one aggregated column: for a role holding
    none, that column is empty (NULL), which means no permission, not an error."""
    enable_module("D1", "notices")
    login_as(client, "reader", role="service", dept="D1")
    assert client.get("/notices/").status_code == 200
    with app.app_context():
        services.set_grants("test", "service", set())
        db.session.commit()
    assert client.get("/notices/").status_code == 403
    page = client.get("/account")
    assert page.status_code == 200 and 'id="menu-notices-list"' not in page.get_data(as_text=True)


def test_a_demoted_user_is_signed_out_everywhere_at_once(app, client, login_as):
    login_as(client, "boss", role="head", dept="D1")
    assert client.get("/admin/modules").status_code == 200
    admin = login_as(app.test_client(), "root", role="admin", dept=None)
    boss = user_row(app, "boss")
    response = admin.post(f"/admin/users/{boss.id}",
                          data={"role": "sales", "department_id": dept_id(app, "D1"), "active": "1"})
    assert response.status_code == 302
    assert user_row(app, "boss").role == "sales"
    assert user_row(app, "boss").session_token != boss.session_token

    assert is_login_redirect(client.get("/admin/modules"))  # the old session is anonymous now
    login_as(client, "boss")
    assert client.get("/admin/modules").status_code == 403  # signed in again: with the new role
    updated = entries(app, "core.user.updated")[-1]
    assert (updated.actor, updated.target_id, updated.details_dict["fields"]) == ("root", str(boss.id), ["role"])


def test_a_deactivated_user_is_signed_out_and_cannot_sign_in(app, client, login_as):
    login_as(client, "leaver", role="sales", dept="D1")
    assert client.get("/").status_code == 200
    admin = login_as(app.test_client(), "root", role="admin", dept=None)
    leaver = user_row(app, "leaver")
    admin.post(f"/admin/users/{leaver.id}", data={"role": "sales", "department_id": dept_id(app, "D1")})
    assert user_row(app, "leaver").active is False

    assert is_login_redirect(client.get("/"))
    from tests.conftest import PASSWORD
    response = client.post("/login", data={"username": "leaver", "password": PASSWORD})
    assert response.status_code == 200
    assert is_login_redirect(client.get("/"))
    assert entries(app, "core.auth.failed")[-1].details_dict["reason"] == "inactive"


# --- the role editor ------------------------------------------------------------------------------

def test_admin_edits_grants_on_the_roles_page(app, client, login_as):
    login_as(client, "root", role="admin", dept=None)
    page = client.get("/admin/roles").get_data(as_text=True)
    assert 'id="sales-notices.view" checked' in page
    assert 'id="sales-notices.post"' in page
    assert 'id="sales-notices.post" checked' not in page

    wanted = sorted(grants_of(app, "sales") | {"notices.post"})
    response = client.post("/admin/roles", data={"role": "sales", "permission": wanted})
    assert response.status_code == 302
    assert grants_of(app, "sales") == set(wanted)
    change = entries(app, "core.role.grants_changed")[-1]
    assert change.target_id == "sales"
    assert change.details_dict == {"added": ["notices.post"], "removed": []}
    assert 'id="sales-notices.post" checked' in client.get("/admin/roles").get_data(as_text=True)

    # a grant can be taken away the same way
    client.post("/admin/roles", data={"role": "sales", "permission": sorted(set(wanted) - {"notices.view"})})
    assert "notices.view" not in grants_of(app, "sales")
    assert entries(app, "core.role.grants_changed")[-1].details_dict["removed"] == ["notices.view"]


def test_role_editor_refuses_unknown_permissions_and_roles(app, client, login_as):
    login_as(client, "root", role="admin", dept=None)
    before_sales, before_count = grants_of(app, "sales"), len(entries(app, "core.role.grants_changed"))
    client.post("/admin/roles", data={"role": "sales", "permission": ["notices.view", "made.up"]})
    client.post("/admin/roles", data={"role": "overlord", "permission": ["notices.view"]})
    assert grants_of(app, "sales") == before_sales
    assert grants_of(app, "overlord") == set()
    assert len(entries(app, "core.role.grants_changed")) == before_count
    html = client.get("/admin/roles").get_data(as_text=True)
    assert "made.up" in html  # the flashed refusal names it


def test_require_is_decided_by_the_flask_principal_identity(app, make_user):
    """One mechanism: the guard asks Flask-Principal, whose identity provides the user's granted
    permissions as needs; without that identity the same user is refused."""
    from flask import g
    from flask_login import login_user
    from flask_principal import AnonymousIdentity, Identity
    from werkzeug.exceptions import Forbidden

    user_id = make_user("principal_sales", "sales", "D1")
    guarded = access.require("customers.view")(lambda: "shown")
    with app.test_request_context("/customers/"):
        user = db.session.get(User, user_id)
        login_user(user)
        access.principal.set_identity(Identity(user.id))
        assert access.PermissionNeed("customers.view") in g.identity.provides
        assert access.PermissionNeed("core.audit.view") not in g.identity.provides
        assert guarded() == "shown"
        g.identity = AnonymousIdentity()
        with pytest.raises(Forbidden):
            guarded()
