"""Accounts in daily use: an administrator resets a password (one-time, forced change, audited),
a user changes their own name, and the password rules are shown where they apply."""
from __future__ import annotations

import re

from sqlalchemy import select

from core.audit import AuditEntry
from core.db import db
from core.models import User, utcnow
from tests.conftest import PASSWORD


def account(app, username):
    with app.app_context():
        return db.session.execute(select(User).where(User.username == username)).scalar_one()


def test_an_administrator_resets_a_password_once_and_the_user_must_change_it(app, client, login_as, make_user):
    target = make_user("forgetful", "sales", "D1")
    old_session = app.test_client()
    login_as(old_session, "forgetful")
    with app.app_context():  # locked out after too many tries: the reset unlocks
        db.session.execute(db.update(User).where(User.id == target).values(failed_logins=9, locked_until=utcnow()))
        db.session.commit()
    login_as(client, "root", role="admin", dept=None)
    page = client.post(f"/admin/users/{target}/reset-password").get_data(as_text=True)
    password = re.search(r'<code id="one-time-password">([^<]+)</code>', page).group(1)
    assert "只显示这一次" in page and len(password) >= 10
    assert old_session.get("/customers/").status_code == 302  # its sessions ended
    fresh = app.test_client()
    assert fresh.post("/login", data={"username": "forgetful", "password": PASSWORD}).status_code == 200  # old one dead
    response = fresh.post("/login", data={"username": "forgetful", "password": password})
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/password")
    assert fresh.get("/customers/").headers["Location"].endswith("/account/password")
    with app.app_context():
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "core.user.password_reset")).scalar_one()
    assert (entry.actor, entry.target_id) == ("root", str(target)) and password not in entry.details
    assert client.get(f"/admin/users/{target}/reset-password").status_code == 405


def test_an_administrator_does_not_reset_their_own_password_there(app, client, login_as):
    login_as(client, "root", role="admin", dept=None)
    me = account(app, "root")
    page = client.post(f"/admin/users/{me.id}/reset-password", follow_redirects=True).get_data(as_text=True)
    assert "修改密码" in page and account(app, "root").password_hash == me.password_hash


def test_staff_cannot_reset_passwords(app, client, login_as, make_user):
    target = make_user("colleague", "sales", "D1")
    login_as(client, "head1", role="head", dept="D1")
    assert client.post(f"/admin/users/{target}/reset-password").status_code == 403


def test_a_user_changes_their_own_name(app, client, login_as):
    login_as(client, "sales1", role="sales", dept="D1")
    page = client.get("/account").get_data(as_text=True)
    assert "我的账号" in page and "sales1" in page
    client.post("/account", data={"display_name": "王小明"})
    assert account(app, "sales1").display_name == "王小明"
    assert "王小明" in client.get("/").get_data(as_text=True)
    page = client.post("/account", data={"display_name": "\x07"}).get_data(as_text=True)
    assert account(app, "sales1").display_name == "王小明" and "is-invalid" in page
    with app.app_context():
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "core.user.profile_changed")).scalar_one()
    assert "王小明" not in entry.details


def test_the_password_page_shows_the_rules(client, login_as):
    login_as(client, "sales1", role="sales", dept="D1")
    page = client.get("/account/password").get_data(as_text=True)
    assert 'id="password-rules"' in page and "至少 10 个字符" in page
