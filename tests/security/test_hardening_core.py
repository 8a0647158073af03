"""Issue 10, core side: administrators kept away from customer data, the forced password change,
sign-in throttling by growing delays with summarised audit entries, equal timing, trusted proxies,
no search terms in access logs, the secret key's file mode, and wrong current passwords."""
from __future__ import annotations

import logging
import threading
import urllib.request
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import access, services
from core.audit import AuditEntry
from core.crypto import KeyringError
from core.db import db
from core.models import LoginThrottle, RoleChange, RoleGrant, User, utcnow
from tests.conftest import PASSWORD, make_config


def entries(app, action):
    with app.app_context():
        return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                  .order_by(AuditEntry.id)).scalars().all()


def user(app, username):
    with app.app_context():
        return db.session.execute(select(User).where(User.username == username)).scalar_one()


def sign_in(client, username, password=PASSWORD, **kwargs):
    return client.post("/login", data={"username": username, "password": password}, **kwargs)


# --- point 4: the administrator and customer data -----------------------------------------------

@pytest.mark.parametrize("permission", ["customers.view", "customers.reveal_l2", "archives.view", "core.audit.view",
                                        "core.roles.confirm"])
def test_customer_data_and_audit_permissions_are_never_granted_to_the_admin_role(app, client, login_as, permission):
    login_as(client, "root", role="admin", dept=None)
    before = {g for g in _grants(app, "admin")}
    response = client.post("/admin/roles", data={"role": "admin", "permission": [*before, permission]},
                           follow_redirects=True)
    assert "从不拥有客户数据或审计权限" in response.get_data(as_text=True)
    assert _grants(app, "admin") == before and permission not in before


def _grants(app, role):
    with app.app_context():
        return set(db.session.execute(select(RoleGrant.permission).where(RoleGrant.role == role)).scalars())


def test_a_grant_smuggled_into_the_database_gives_the_admin_nothing(app, client, login_as, make_customer):
    customer_id = make_customer("sales1")
    with app.app_context():
        db.session.add_all([RoleGrant(role="admin", permission="customers.view"),
                            RoleGrant(role="admin", permission="core.audit.view")])
        db.session.commit()
    login_as(client, "root", role="admin", dept="D1")  # an admin carrying a department, even
    assert client.get(f"/customers/{customer_id}").status_code == 403
    assert client.get("/audit/").status_code == 403


def test_an_administrator_cannot_change_their_own_role(app, client, login_as):
    login_as(client, "root", role="admin", dept=None)
    me = user(app, "root")
    page = client.post(f"/admin/users/{me.id}", data={"role": "security", "active": "1"},
                       follow_redirects=True).get_data(as_text=True)
    assert "不能更改自己的角色" in page
    assert user(app, "root").role == "admin"


def test_moving_an_account_into_a_data_role_waits_for_the_security_officer(app, client, login_as, make_user,
                                                                           department):
    target = make_user("second_admin", "admin", None)
    d1 = department("D1")
    login_as(client, "root", role="admin", dept=None)
    page = client.post(f"/admin/users/{target}", data={"role": "head", "department_id": str(d1), "active": "1"},
                       follow_redirects=True).get_data(as_text=True)
    assert "等待安全管理员确认" in page
    assert user(app, "second_admin").role == "admin"  # not yet
    [requested] = entries(app, "core.user.role_change_requested")
    assert requested.details_dict["actor_role"] == "admin" and requested.details_dict["to_role"] == "head"
    assert client.get("/admin/role-changes").status_code == 403  # the admin cannot confirm it

    officer = app.test_client()
    login_as(officer, "officer", role="security", dept=None)
    page = officer.get("/admin/role-changes").get_data(as_text=True)
    with app.app_context():
        change = db.session.execute(select(RoleChange)).scalar_one()
    assert f'id="role-change-{change.id}"' in page and "second_admin" in page
    officer.post(f"/admin/role-changes/{change.id}/confirm")
    moved = user(app, "second_admin")
    assert (moved.role, moved.department_id) == ("head", d1)
    [confirmed] = entries(app, "core.user.role_change_confirmed")
    assert (confirmed.actor, confirmed.details_dict["requested_by"]) == ("officer", user(app, "root").id)


def test_the_requester_cannot_confirm_their_own_role_change(app, make_user, department):
    requester = make_user("officer2", "security", None)
    target = make_user("admin3", "admin", None)
    d1 = department("D1")
    with app.test_request_context():
        actor, account = db.session.get(User, requester), db.session.get(User, target)
        change = services.request_role_change(actor, account, "sales", db.session.get(services.Department, d1))
        with pytest.raises(services.ServiceError):
            services.decide_role_change(actor, change, True)
        db.session.rollback()
        assert db.session.get(User, target).role == "admin"


def test_a_refused_role_change_changes_nothing(app, client, login_as, make_user):
    target = make_user("sales7", "sales", "D1")
    login_as(client, "root", role="admin", dept=None)
    client.post(f"/admin/users/{target}", data={"role": "admin", "active": "1"})
    officer = app.test_client()
    login_as(officer, "officer", role="security", dept=None)
    with app.app_context():
        change_id = db.session.execute(select(RoleChange.id)).scalar_one()
    officer.post(f"/admin/role-changes/{change_id}/refuse")
    assert user(app, "sales7").role == "sales"
    assert [e.details_dict["to_role"] for e in entries(app, "core.user.role_change_refused")] == ["admin"]


def test_module_permissions_never_reach_the_admin_role_by_default(app):
    with app.app_context():
        assert access.grantable("admin", "core.users.manage") and not access.grantable("admin", "grading.view")
        assert not [g for g in _grants(app, "admin") if not g.startswith("core.")]


# --- point 6: the forced password change --------------------------------------------------------

def test_until_the_password_is_changed_every_page_leads_to_the_change_form(app, client, login_as):
    login_as(client, "newbie", role="sales", dept="D1")
    with app.app_context():
        db.session.execute(db.update(User).where(User.username == "newbie").values(must_change_password=True))
        db.session.commit()
    for url in ("/", "/customers/", "/customers/new"):
        response = client.get(url)
        assert response.status_code == 302 and response.headers["Location"].endswith("/account/password"), url
    assert client.post("/customers/new", data={"kind": "person", "name": "偷偷"}).status_code == 302
    assert client.get("/account/password").status_code == 200
    client.post("/account/password", data={"current": PASSWORD, "new": "Another-pass-77", "confirm": "Another-pass-77"})
    assert sign_in(app.test_client(), "newbie", "Another-pass-77").status_code == 302
    again = app.test_client()
    sign_in(again, "newbie", "Another-pass-77")
    assert again.get("/customers/").status_code == 200


# --- points 7 and 8: throttling, summaries, timing ------------------------------------------------

THROTTLE = {"LOGIN_MAX_ADDRESS_FAILURES": 3, "LOGIN_AUDIT_EACH": 3, "LOGIN_MAX_FAILURES": 50}


def _throttle_row(app, address="127.0.0.1"):
    with app.app_context():
        return db.session.get(LoginThrottle, address)


def _expire_delay(app, address="127.0.0.1"):
    with app.app_context():
        row = db.session.get(LoginThrottle, address)
        row.locked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()


@pytest.mark.parametrize("config_overrides", [THROTTLE])
def test_an_address_gets_growing_delays_not_a_fixed_lock(app, client):
    for i in range(3):
        sign_in(client, f"ghost{i}", "Guess-pass-1")
    first = _throttle_row(app)
    first_delay = first.locked_until - utcnow()
    assert timedelta(0) < first_delay <= timedelta(seconds=1)
    assert sign_in(client, "ghost9", "Guess-pass-1").status_code == 429
    _expire_delay(app)
    sign_in(client, "ghost3", "Guess-pass-1")
    second_delay = _throttle_row(app).locked_until - utcnow()
    assert timedelta(seconds=1) < second_delay <= timedelta(seconds=2)


@pytest.mark.parametrize("config_overrides", [THROTTLE])
def test_posts_during_a_delay_neither_count_nor_extend_it(app, client):
    for i in range(3):
        sign_in(client, f"ghost{i}", "Guess-pass-1")
    before = _throttle_row(app)
    for _ in range(5):
        assert client.post("/login", data={"username": "", "password": ""}).status_code == 429
        assert sign_in(client, "ghostX", "Guess-pass-1").status_code == 429
    after = _throttle_row(app)
    assert (after.failures, after.locked_until) == (before.failures, before.locked_until)


@pytest.mark.parametrize("config_overrides", [THROTTLE])
def test_a_flood_of_failures_leaves_a_few_entries_and_one_summary(app, client, monkeypatch):
    for i in range(12):
        _expire_delay(app) if i >= 3 else None
        client.post("/login", data={"username": f"tool{i}" if i % 2 else "", "password": "x"})
    assert len(entries(app, "core.auth.failed")) == 3
    with app.app_context():  # the window ends; the next sign-in attempt from anywhere writes the summary
        row = db.session.get(LoginThrottle, "127.0.0.1")
        row.window_start = utcnow() - timedelta(hours=1)
        row.locked_until = None
        db.session.commit()
    sign_in(app.test_client(), "someone", "Guess-pass-1", environ_base={"REMOTE_ADDR": "192.0.2.10"})
    [summary] = entries(app, "core.auth.failures_summarised")
    assert (summary.details_dict["address"], summary.details_dict["failures"]) == ("127.0.0.1", 9)


def test_every_refusal_costs_one_hash_verification(app, client, make_user, monkeypatch):
    make_user("locked_one")
    with app.app_context():
        db.session.execute(db.update(User).where(User.username == "locked_one")
                           .values(locked_until=utcnow() + timedelta(minutes=10)))
        db.session.commit()
    from argon2 import PasswordHasher
    calls = []

    class Counting(PasswordHasher):
        def verify(self, hash, password):
            calls.append(1)
            return super().verify(hash, password)

    real = app.extensions["kehu.hasher"]
    monkeypatch.setitem(app.extensions, "kehu.hasher", Counting(time_cost=real.time_cost,
                                                                memory_cost=real.memory_cost,
                                                                parallelism=real.parallelism))
    for name in ("locked_one", "nobody_here", "locked_one"):
        calls.clear()
        sign_in(client, name, "Wrong-pass-123")
        assert len(calls) == 1, name
    calls.clear()
    client.post("/login", data={"username": "", "password": ""})
    assert len(calls) == 1


# --- point 7: proxies ----------------------------------------------------------------------------

@pytest.mark.parametrize("config_overrides", [{"TRUSTED_PROXIES": ("10.1.2.3",)}])
def test_forwarded_headers_count_only_from_a_trusted_proxy(app, client, make_user):
    make_user("behind")
    headers = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}
    via_proxy = app.test_client()
    response = sign_in(via_proxy, "behind", environ_base={"REMOTE_ADDR": "10.1.2.3"}, headers=headers)
    assert "Secure" in response.headers["Set-Cookie"] and "Strict-Transport-Security" in response.headers
    assert entries(app, "core.auth.signed_in")[-1].address == "203.0.113.5"
    direct = sign_in(client, "behind", environ_base={"REMOTE_ADDR": "198.51.100.7"}, headers=headers)
    assert "Secure" not in direct.headers["Set-Cookie"] and "Strict-Transport-Security" not in direct.headers
    assert entries(app, "core.auth.signed_in")[-1].address == "198.51.100.7"


def test_a_bad_trusted_proxy_setting_stops_start_up_with_one_line(tmp_path):
    from core.app import create_app
    with pytest.raises(ValueError, match=r"^KEHU_TRUSTED_PROXIES: 'ten\.0\.0\.1' is not an address or network$"):
        create_app(make_config(tmp_path, TRUSTED_PROXIES=("ten.0.0.1",)))


# --- point 9: no search terms in the access log ---------------------------------------------------

def test_the_development_server_log_has_no_query_strings(app, caplog):
    from werkzeug.serving import make_server

    from core.cli import redacting_request_handler
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=redacting_request_handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            url = f"http://127.0.0.1:{server.server_port}/customers/?q=11010519491231002X"
            urllib.request.urlopen(url, timeout=10)  # to the sign-in page, which keeps ?next=…
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/healthz?phone=13800138000", timeout=10)
    finally:
        server.shutdown()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "GET /healthz?… HTTP/1.1" in logged
    assert "11010519491231002X" not in logged and "13800138000" not in logged


def test_the_gunicorn_access_log_format_leaves_out_query_and_referer():
    import runpy
    from pathlib import Path
    conf = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
    fmt = conf["access_log_format"]
    assert "%(U)s" in fmt and not any(k in fmt for k in ("%(r)s", "%(q)s", "%(f)s", "%({"))


# --- point 11, core: key file modes, wrong current passwords --------------------------------------

def test_a_secret_key_file_readable_by_others_is_refused(tmp_path):
    from core.app import create_app
    config = make_config(tmp_path)
    secret = tmp_path / "instance" / "secret.key"
    secret.chmod(0o644)
    with pytest.raises(KeyringError, match="secret key file .* is readable by group or others"):
        create_app(config)


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_FAILURES": 3}])
def test_wrong_current_passwords_are_audited_and_lock_the_account(app, client, login_as):
    login_as(client, "changer", role="sales", dept="D1")
    for _ in range(3):
        client.post("/account/password", data={"current": "Wrong-pass-123", "new": "Another-pass-77",
                                               "confirm": "Another-pass-77"})
    failed = [e for e in entries(app, "core.auth.failed") if e.details_dict.get("reason") == "current password"]
    assert len(failed) == 3 and failed[0].actor == "changer"
    assert user(app, "changer").locked_until > utcnow()
    page = client.post("/account/password", data={"current": PASSWORD, "new": "Another-pass-77",
                                                  "confirm": "Another-pass-77"}).get_data(as_text=True)
    assert "错误次数过多" in page  # even the right password waits out the lock
    assert [e.action for e in entries(app, "core.user.locked")] == ["core.user.locked"]
