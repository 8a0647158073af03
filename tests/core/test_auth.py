"""Sign-in and sign-out: one message for every failure, lockouts, cookies, headers, CSRF, tokens."""
from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

import pytest
from flask_babel import gettext
from sqlalchemy import select

from core.audit import AuditEntry
from core.db import db
from core.models import User, utcnow
from tests.conftest import PASSWORD, csrf_token

COOKIE = "kehu_session"
WRONG = "Wrong user name or password, or the account is locked."


def entries(app, action):
    with app.app_context():
        return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                  .order_by(AuditEntry.id)).scalars().all()


def user_row(app, username):
    with app.app_context():
        return db.session.execute(select(User).where(User.username == username)).scalar_one()


def translated(app, msgid):
    """The text as the default (Chinese) interface shows it, whether a catalogue exists or not."""
    with app.test_request_context():
        return gettext(msgid)


def alerts(response):
    return [html.unescape(m).strip()
            for m in re.findall(r'role="alert">(.*?)</div>', response.get_data(as_text=True), re.S)]


def sign_in(client, username, password=PASSWORD, **kwargs):
    return client.post("/login", data={"username": username, "password": password}, **kwargs)


def signed_in(client):
    return client.get("/").status_code == 200


def test_sign_in_works_and_is_audited(app, client, make_user):
    make_user("alice", "sales", "D1")
    assert not signed_in(client)
    response = sign_in(client, "alice")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert signed_in(client)
    assert "alice" in client.get("/").get_data(as_text=True)
    entry = entries(app, "core.auth.signed_in")[-1]
    assert (entry.actor, entry.role, entry.result) == ("alice", "sales", "ok")


def test_one_message_for_unknown_user_and_wrong_password(app, client, make_user):
    make_user("alice")
    unknown = sign_in(client, "nobody", "Whatever-pass-1")
    wrong = sign_in(client, "alice", "Not-the-password-1")
    assert unknown.status_code == wrong.status_code == 200
    assert alerts(unknown) == alerts(wrong) == [translated(app, WRONG)]
    assert not signed_in(client)
    reasons = [e.details_dict["reason"] for e in entries(app, "core.auth.failed")]
    assert reasons == ["unknown user", "password"]


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_FAILURES": 3}])
def test_account_locks_after_max_failures(app, client, make_user):
    make_user("victim")
    make_user("bystander")
    for _ in range(3):
        assert sign_in(client, "victim", "Not-the-password-1").status_code == 200
    locked = sign_in(client, "victim")  # the right password no longer helps
    assert locked.status_code == 200 and alerts(locked) == [translated(app, WRONG)]
    assert not signed_in(client)
    victim = user_row(app, "victim")
    assert victim.locked_until is not None and victim.locked_until > utcnow()

    lock = entries(app, "core.user.locked")
    assert [(e.target_id, e.result) for e in lock] == [(str(victim.id), "locked")]
    reasons = [e.details_dict["reason"] for e in entries(app, "core.auth.failed")]
    assert reasons == ["password", "password", "password", "account locked"]

    # the lock is per account: another user signs in from the same address
    assert sign_in(client, "bystander").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_FAILURES": 2}])
def test_account_lock_expires(app, client, make_user):
    make_user("victim")
    for _ in range(2):
        sign_in(client, "victim", "Not-the-password-1")
    assert sign_in(client, "victim").status_code == 200
    with app.app_context():
        user = db.session.execute(select(User).where(User.username == "victim")).scalar_one()
        user.locked_until = utcnow().replace(year=2000)  # the lock period has passed
        db.session.commit()
    assert sign_in(client, "victim").status_code == 302
    assert user_row(app, "victim").failed_logins == 0


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_ADDRESS_FAILURES": 3}])
def test_address_locks_after_max_failures_across_accounts(app, client, make_user):
    make_user("real")
    for i in range(3):  # password spraying: a different name each time
        sign_in(client, f"ghost{i}", "Whatever-pass-1")
    response = sign_in(client, "real")
    assert response.status_code == 429
    assert not signed_in(client)
    failed = entries(app, "core.auth.failed")[-1]
    assert (failed.actor, failed.details_dict["reason"]) == ("real", "address locked")
    # another address is not affected
    other = app.test_client()
    assert sign_in(other, "real", environ_base={"REMOTE_ADDR": "192.0.2.77"}).status_code == 302


def test_logout_is_post_only(client, login_as):
    login_as(client, "alice")
    assert client.get("/logout").status_code == 405
    assert signed_in(client)
    response = client.post("/logout")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert not signed_in(client)


def test_a_replayed_cookie_is_anonymous_after_logout(app, client, login_as):
    login_as(client, "alice")
    stolen = client.get_cookie(COOKIE).value
    client.post("/logout")
    assert entries(app, "core.auth.signed_out")[-1].actor == "alice"

    thief = app.test_client()
    thief.set_cookie(COOKIE, stolen)
    assert not signed_in(thief)
    client.set_cookie(COOKIE, stolen)
    assert not signed_in(client)


def test_session_cookie_flags(app, make_user):
    make_user("alice")
    plain = sign_in(app.test_client(), "alice")
    cookie = next(c for c in plain.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie

    secure = sign_in(app.test_client(), "alice", base_url="https://localhost")
    cookie = next(c for c in secure.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_security_headers(client, login_as):
    anonymous = client.get("/login")
    csp = anonymous.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "unsafe-eval" not in csp and "script-src 'self';" in csp
    assert anonymous.headers["X-Content-Type-Options"] == "nosniff"
    assert anonymous.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in anonymous.headers  # only over HTTPS

    login_as(client, "alice")
    page = client.get("/")
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert client.get("/not-a-page").headers["Content-Security-Policy"] == csp  # error pages too


@pytest.mark.parametrize("config_overrides", [{"WTF_CSRF_ENABLED": True}])
def test_csrf_rejects_a_post_without_token_with_the_friendly_page(app, client, make_user):
    make_user("alice")
    response = sign_in(client, "alice")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert translated(app, "Form expired") in body
    assert "<nav" in body  # the site's layout, not a bare error page
    assert not signed_in(client)

    token = csrf_token(client.get("/login").get_data(as_text=True))
    assert token
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    assert signed_in(client)
    # signed in, a forged POST (no token) to sign out is refused too
    assert client.post("/logout").status_code == 400
    assert signed_in(client)
    token = csrf_token(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert not signed_in(client)


def test_password_change_rotates_the_session_token(app, client, login_as):
    login_as(client, "alice")
    other = login_as(app.test_client(), "alice")  # a second browser
    token = user_row(app, "alice").session_token
    new = "Brand-new-secret-77"

    weak = client.post("/account/password", data={"current": PASSWORD, "new": "short", "confirm": "short"})
    assert weak.status_code == 200
    assert user_row(app, "alice").session_token == token and signed_in(other)

    response = client.post("/account/password", data={"current": PASSWORD, "new": new, "confirm": new})
    assert response.status_code == 302
    assert user_row(app, "alice").session_token != token
    assert signed_in(client)  # the session that changed it goes on
    assert not signed_in(other)  # every other session ends
    assert entries(app, "core.user.password_changed")[-1].actor == "alice"

    fresh = app.test_client()
    assert sign_in(fresh, "alice").status_code == 200
    assert sign_in(fresh, "alice", new).status_code == 302


def test_wrong_current_password_changes_nothing(app, client, login_as):
    login_as(client, "alice")
    token = user_row(app, "alice").session_token
    new = "Brand-new-secret-77"
    response = client.post("/account/password", data={"current": "Wrong-current-1", "new": new, "confirm": new})
    assert response.status_code == 200
    assert user_row(app, "alice").session_token == token
    assert sign_in(app.test_client(), "alice").status_code == 302


def test_session_fixation_nothing_planted_survives_sign_in(app, client, make_user):
    make_user("alice")
    client.get("/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by-an-attacker"
    before = client.get_cookie(COOKIE).value
    assert sign_in(client, "alice").status_code == 302
    after = client.get_cookie(COOKIE).value
    assert before != after
    with client.session_transaction() as sess:
        assert "planted" not in sess

    # the pre-login cookie does not carry the signed-in session
    attacker = app.test_client()
    attacker.set_cookie(COOKIE, before)
    assert not signed_in(attacker)


OFFSITE = [
    "//evil.example/phish", "https://evil.example/", "http:evil.example", "/\\evil.example",
    "\\\\evil.example", "/\t/evil.example",
    "/\n/evil.example", "javascript:alert(1)",
]


@pytest.mark.parametrize("target", OFFSITE)
def test_next_open_redirect_is_refused(client, make_user, target):
    make_user("alice")
    response = client.post("/login", query_string={"next": target},
                           data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert browser_host(response.headers["Location"]) == "kehu.example"


def browser_host(location):
    """The host a browser goes to from a Location header read on https://kehu.example/: browsers
    turn backslashes into slashes and drop tabs and newlines before resolving (WHATWG URL)."""
    cleaned = re.sub(r"[\t\n\r]", "", location.replace("\\", "/")).strip("\x00 ")
    return urlsplit(urljoin("https://kehu.example/login", cleaned)).netloc


@pytest.mark.parametrize("target", OFFSITE)
def test_language_switch_refuses_offsite_next(client, target):
    response = client.post("/language", data={"locale": "en", "next": target})
    assert response.status_code == 302
    assert browser_host(response.headers["Location"]) == "kehu.example"


def test_next_to_a_local_page_is_followed(client, make_user):
    make_user("alice")
    response = client.post("/login", query_string={"next": "/account/password"},
                           data={"username": "alice", "password": PASSWORD})
    assert response.headers["Location"] == "/account/password"


def test_sign_in_name_with_control_characters_is_audited_cleanly(app, client):
    sign_in(client, "evil\x1b[2J\nname", "Whatever-pass-1")
    entry = entries(app, "core.auth.failed")[-1]
    assert not any(ord(c) < 32 for c in entry.actor)
    assert entry.actor.startswith("evil")


def test_a_long_hostile_sign_in_name_fits_the_audit_actor_column(app, client):
    response = sign_in(client, "\x1b" * 64, "Whatever-pass-1")
    assert response.status_code == 200
    assert len(entries(app, "core.auth.failed")[-1].actor) <= 64


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_ADDRESS_FAILURES": 4}])
def test_own_sign_ins_do_not_reset_the_address_lock(app, client, make_user):
    make_user("insider")
    for i in range(4):
        sign_in(client, f"target{i}", "Guess-number-1")
        if i == 1:  # halfway: the insider signs in, which must not wipe the count
            assert sign_in(client, "insider").status_code == 302
            client.post("/logout")
    assert sign_in(client, "insider").status_code == 429


def test_a_throttle_row_inserted_meanwhile_by_another_sign_in_is_reused(app, monkeypatch):
    """Two first sign-ins from one address at once: the loser of the insert reads the winner's row
    instead of answering 500 (seen under load on PostgreSQL)."""
    from core import auth
    from core.db import db
    from core.models import LoginThrottle, utcnow
    with app.test_request_context():
        db.session.add(LoginThrottle(address="10.0.0.9", failures=3, window_start=utcnow()))
        db.session.commit()
        real_get, calls = db.session.get, []

        def missing_at_first(model, key, **kwargs):
            calls.append(key)
            return None if len(calls) == 1 else real_get(model, key, **kwargs)

        monkeypatch.setattr(db.session, "get", missing_at_first)
        row = auth._throttle("10.0.0.9")
        assert row is not None and row.failures == 3


def test_a_signed_in_page_reads_the_user_their_department_and_grants_in_one_statement(app, client, login_as):
    """The header names the user's department on every page and every page checks permissions:
    the department (joined), the installed modules and the role's grants come with the user, not
    in statements of their own."""
    from tests.conftest import captured_statements
    login_as(client, "carol", "sales", "D1")
    with captured_statements(app) as captured:
        page = client.get("/account")
    assert page.status_code == 200
    with app.app_context():
        department = db.session.get(User, user_row(app, "carol").id).department.name
    assert department in page.get_data(as_text=True)
    statements = [s.lower() for s, _p in captured]
    users = [s for s in statements if "from core_user" in s]
    assert len(users) == 1 and "join core_department" in users[0]
    assert not [s for s in statements if s.lstrip().startswith("select core_department.")]
    grants = [s for s in statements if "from core_role_grant" in s or "from core_module_state" in s]
    assert grants == users and "from core_module_state" in users[0]
