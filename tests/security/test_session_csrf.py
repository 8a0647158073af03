"""SA-01..SA-05 (security.md Part 5 B) with CSRF protection on, as in production.

Covered elsewhere and not repeated: logout is POST-only and a replayed session cookie is
anonymous, cookie flags over HTTP and HTTPS, the basic security headers, session fixation of
planted session keys, password change ending other sessions, lockout per account and per
address, one message for every sign-in failure (tests/core/test_auth.py); archives and
customers forms needing the token (tests/modules/*/test_*_csrf.py).
"""
from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask_babel import gettext
from seclib import build_app, find_canaries, pdf_bytes, populate, sign_in
from sqlalchemy import select

from core import access
from core.db import db
from core.models import User
from tests.conftest import PASSWORD, csrf_token

COOKIE = "kehu_session"

# What each endpoint is comes from its guard (`require(..., kind=...)`, see core.access
# ENDPOINT_KINDS): these sets are read from the app, so a new module needs no edit here.
def kinds_of(app, kind):
    return {e for e, k in access.endpoint_kinds(app).items() if k == kind}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    app = build_app(tmp_path_factory.mktemp("csrf"), WTF_CSRF_ENABLED=True)
    yield populate(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def translated(app, msgid):
    with app.test_request_context():
        return gettext(msgid)


def token_of(client, url="/"):
    token = csrf_token(client.get(url).get_data(as_text=True))
    assert token, url
    return token


def values_for(world, rule):
    ids = world.ids
    values = {"customer_id": ids["ca"], "consent_id": ids["consent_a"], "doc_id": ids["doc_a"],
              "contact_id": ids["contact_b"], "share_id": ids["share_b"], "att_id": ids["att_b"],
              "request_id": ids["request_b"], "field": "id_number", "name": "archives",
              "user_id": world.users["a2"]}
    out = {}
    for arg, converter in rule._converters.items():
        words = getattr(converter, "items", None)
        out[arg] = values.get(arg, sorted(words)[0] if words else 1)
    return out


def post_rules(app):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.endpoint):
        if "POST" in rule.methods:
            yield rule


def form_data(world):
    return {"reason": "看看", "status": "lost", "name": "伪造", "version": "1", "title": "伪造",
            "role": "sales", "permission": ["core.audit.view"], "department_id": str(world.depts["DA"]),
            "username": "forged", "password": "Forged-pass-123", "code": "FG", "fmt": "csv",
            "grading-grade": "important", "grading-reason": "伪造", "from_user": str(world.users["a2"]),
            "to_user": str(world.users["a1"]), "locale": "en", "attachment": (io.BytesIO(pdf_bytes()), "x.pdf")}


# --- SA-01: tokens ---------------------------------------------------------------------------------

@pytest.mark.parametrize("forgery", ["missing", "foreign", "foreign-header", "expired", "garbage"])
def test_every_post_refuses_a_bad_token_with_the_friendly_page_and_changes_nothing(world, monkeypatch, forgery):
    app = world.app
    victim = world.client("ha")
    foreign = token_of(world.client("b1"))  # a valid token, of another session
    if forgery == "expired":
        own = token_of(victim)
        monkeypatch.setitem(app.config, "WTF_CSRF_TIME_LIMIT", -1)  # any age is too old
    expected_text = translated(app, "Form expired")
    before, audit_before = world.snapshot(), world.audit_max()
    problems, checked = [], 0
    for rule in post_rules(app):
        url = app.url_map.bind("localhost").build(rule.endpoint, values_for(world, rule))
        data, headers = form_data(world), {}
        if forgery == "foreign":
            data["csrf_token"] = foreign
        elif forgery == "foreign-header":
            headers["X-CSRFToken"] = foreign
        elif forgery == "expired":
            data["csrf_token"] = own
        elif forgery == "garbage":
            data["csrf_token"] = "IjAwMDAi.AAAAAA.forged"
        response = victim.post(url, data=data, headers=headers)
        checked += 1
        body = response.get_data(as_text=True)
        if response.status_code != 400 or expected_text not in body or "<nav" not in body:
            problems.append((rule.endpoint, response.status_code))
    assert problems == [] and checked >= 30
    assert world.snapshot() == before
    assert world.audit_max() == audit_before  # refused before any view ran


def test_a_valid_token_is_accepted_so_the_refusals_above_mean_something(world):
    client = world.client("ha", fresh=True)
    url = f"/customers/{world.ids['ca']}/reveal/id_number"
    assert client.post(url, data={"reason": "核对"}).status_code == 400
    response = client.post(url, data={"reason": "核对", "csrf_token": token_of(client)})
    assert response.status_code == 200
    # the JSON/AJAX way: the token in the header
    response = client.post(url, data={"reason": "核对"}, headers={"X-CSRFToken": token_of(client)})
    assert response.status_code == 200


def test_over_https_a_cross_origin_referer_is_refused_even_with_a_token(world):
    client = world.app.test_client()
    token = csrf_token(client.get("/login", base_url="https://kehu.example").get_data(as_text=True))
    response = client.post("/login", base_url="https://kehu.example", data={
        "username": "a1", "password": PASSWORD, "csrf_token": token}, headers={"Referer": "https://kehu.example/login"})
    assert response.status_code == 302
    url = f"/customers/{world.ids['ca']}/edit"
    token = token_of_https(client)
    for referer in ("https://evil.example/", "http://kehu.example/", None):
        headers = {"Referer": referer} if referer else {}
        response = client.post(url, base_url="https://kehu.example", headers=headers,
                               data={"name": "跨站", "version": "1", "csrf_token": token})
        assert response.status_code == 400, referer
    same = client.post(f"/customers/{world.ids['ca']}/reveal/id_number", base_url="https://kehu.example",
                       headers={"Referer": "https://kehu.example/customers/"}, data={"reason": "", "csrf_token": token})
    assert same.status_code == 403  # past the CSRF check; a1 may not reveal


def token_of_https(client):
    token = csrf_token(client.get("/", base_url="https://kehu.example").get_data(as_text=True))
    assert token
    return token


def test_anonymous_forged_posts_are_refused_never_500(world):
    client = world.app.test_client()
    for rule in post_rules(world.app):
        url = world.app.url_map.bind("localhost").build(rule.endpoint, values_for(world, rule))
        response = client.post(url, data={"username": "ha", "password": PASSWORD})
        assert response.status_code == 400, (rule.endpoint, response.status_code)
        assert find_canaries(response.get_data()) == []


def test_no_blueprint_is_exempt_from_csrf(world):
    csrf = world.app.extensions["csrf"]
    assert not csrf._exempt_views and not csrf._exempt_blueprints
    assert world.app.config["WTF_CSRF_METHODS"] is None or \
        {"POST", "PUT", "PATCH", "DELETE"} <= set(world.app.config["WTF_CSRF_METHODS"])


# --- SA-01: state-changing GETs --------------------------------------------------------------------------

def test_every_endpoint_says_what_it_is_and_the_kinds_cover_the_changes(world):
    """Every routed endpoint declares a kind; every POST endpoint is an action or a form."""
    kinds = access.endpoint_kinds(world.app)
    for rule in world.app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        assert rule.endpoint in kinds, rule.endpoint
        if "POST" in rule.methods:
            assert kinds[rule.endpoint] in ("action", "form"), rule.endpoint
    assert kinds["main.language"] == "action" and kinds["auth.logout"] == "action"
    assert kinds["archives.form_pdf"] == "download" and kinds["customers.edit"] == "form"
    assert len(kinds_of(world.app, "action")) >= 20 and len(kinds_of(world.app, "form")) >= 15


def test_actions_refuse_get(world):
    client = world.client("ha")
    adapter = world.app.url_map.bind("localhost")
    actions, pages = kinds_of(world.app, "action"), kinds_of(world.app, "form") | kinds_of(world.app, "read")
    for rule in world.app.url_map.iter_rules():
        if rule.endpoint not in actions:
            continue
        assert "GET" not in rule.methods, rule.endpoint
        url = adapter.build(rule.endpoint, values_for(world, rule))
        try:
            shared = adapter.match(url, method="GET")[0]  # another endpoint answering GET on that URL
        except Exception:
            shared = None
        if shared is not None:
            assert shared in pages, (rule.endpoint, shared)  # e.g. grading.rules shows the form
            continue
        assert client.get(url).status_code == 405, rule.endpoint


@pytest.mark.parametrize("username", ["ha", "ad"])
def test_a_get_on_a_form_only_renders_the_form(world, username):
    client = world.client(username)
    before, audit_before = world.snapshot(), world.audit_max()
    rendered = 0
    gets = (kinds_of(world.app, "form") | kinds_of(world.app, "download")) - {"auth.login"}  # signed in: sent home
    for rule in world.app.url_map.iter_rules():
        if rule.endpoint not in gets:
            continue
        url = world.app.url_map.bind("localhost").build(rule.endpoint, values_for(world, rule))
        if rule.endpoint == "customers.new":
            url += "?kind=person"
        response = client.get(url)
        if response.status_code in (403, 404):  # not this user's business
            continue
        assert response.status_code == 200, (rule.endpoint, response.status_code)
        rendered += 1
        if world.app.view_functions[rule.endpoint].kehu_kind == "form":
            assert response.mimetype == "text/html", rule.endpoint
            html = response.get_data(as_text=True)
            assert re.search(r'<form[^>]*method="post"', html, re.I), rule.endpoint
            assert 'name="csrf_token"' in html, rule.endpoint
    assert rendered >= 4
    assert world.snapshot() == before
    changes = [e.action for e in world.audit_since(audit_before)
               if e.result != "denied"
               and not e.action.endswith((".viewed", ".searched", ".printed", ".downloaded", ".accessed"))]
    assert changes == []


# --- SA-02: fixation ------------------------------------------------------------------------------------

def test_a_csrf_token_planted_before_sign_in_is_dead_after_it(world):
    client = world.app.test_client()
    planted = token_of(client, "/login")  # what an attacker who planted the cookie would know
    planted_cookie = client.get_cookie(COOKIE).value
    assert client.post("/login", data={"username": "a1", "password": PASSWORD,
                                       "csrf_token": planted}).status_code == 302
    assert client.get_cookie(COOKIE).value != planted_cookie
    response = client.post("/logout", data={"csrf_token": planted})
    assert response.status_code == 400  # the session got a fresh token at sign-in
    assert client.get("/").status_code == 200
    attacker = world.app.test_client()
    attacker.set_cookie(COOKIE, planted_cookie)
    assert attacker.get("/").status_code == 302
    assert attacker.post("/logout", data={"csrf_token": planted}).status_code in (302, 400)


# --- SA-03: logout --------------------------------------------------------------------------------------

def _cookie_attributes(header):
    parts = [p.strip() for p in header.split(";")]
    return {p.split("=", 1)[0].lower() for p in parts[1:] if not p.lower().startswith(("expires", "max-age"))}


def test_logout_ends_the_session_for_every_copy_and_deletes_the_cookie_alike(world):
    client = world.app.test_client()
    response = sign_in(client, "a2")
    set_cookies = response.headers.getlist("Set-Cookie")
    assert not any(c.lower().startswith("remember_token") for c in set_cookies)  # no remember-me
    login_cookie = next(c for c in set_cookies if c.startswith(COOKIE + "="))
    stolen = client.get_cookie(COOKIE).value
    token = token_of(client)
    before = world.audit_max()
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    deletion = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "="))
    assert _cookie_attributes(deletion) == _cookie_attributes(login_cookie)
    assert [e.action for e in world.audit_since(before)] == ["core.auth.signed_out"]
    thief = world.app.test_client()
    thief.set_cookie(COOKIE, stolen)
    assert thief.get("/").status_code == 302
    assert thief.post(f"/customers/{world.ids['ca']}/reveal/id_number",
                      data={"reason": "x", "csrf_token": token}).status_code in (302, 400)


# --- SA-04: password storage ---------------------------------------------------------------------------

def test_password_hashes_are_argon2id_and_upgraded_on_sign_in(world, caplog):
    from argon2 import PasswordHasher
    app = world.app
    with app.app_context():
        user = db.session.execute(select(User).where(User.username == "sa")).scalar_one()
        assert user.password_hash.startswith("$argon2id$")
        user.password_hash = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1).hash(PASSWORD)
        db.session.commit()
    sign_in(world.app.test_client(), "sa")
    with app.app_context():
        stored = db.session.execute(select(User.password_hash).where(User.username == "sa")).scalar_one()
    assert stored.startswith("$argon2id$") and "m=1024" in stored  # the current parameters
    assert PASSWORD not in caplog.text
    with app.app_context():
        hashes = " ".join(db.session.scalars(select(User.password_hash)))
    assert PASSWORD not in hashes


# --- SA-05: cookies, headers, timeouts ---------------------------------------------------------------------

def test_pages_with_personal_data_are_never_cached_and_carry_the_headers(world):
    client = world.client("ha")
    urls = ["/customers/", f"/customers/{world.ids['ca']}", f"/customers/{world.ids['ca']}/edit",
            f"/customers/{world.ids['cb']}", "/customers/export", f"/archives/{world.ids['ca']}",
            f"/grading/customers/{world.ids['ca']}", "/grading/chart.json"]
    for url in urls:
        response = client.get(url)
        headers = response.headers
        assert headers.get("Cache-Control") == "no-store", url
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], url
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"], url
        assert "Server" not in headers and "X-Powered-By" not in headers, url
    assert not world.app.debug and not world.app.config.get("DEBUG")


def test_an_idle_session_ends_and_the_lifetime_is_bounded(world):
    app = world.app
    assert app.config["PERMANENT_SESSION_LIFETIME"] <= timedelta(hours=8)
    assert app.config["SESSION_IDLE_MINUTES"] <= 30
    client = world.app.test_client()
    sign_in(client, "a2")
    response = client.get("/")
    assert response.status_code == 200
    cookie = _session_cookies(response)[0]
    expires = re.search(r"Expires=([^;]+)", cookie).group(1)
    lifetime = datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC) - datetime.now(UTC)
    assert lifetime <= timedelta(hours=8, minutes=1)
    with client.session_transaction() as session:
        session["seen"] = (datetime.now(UTC) - timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1)).timestamp()
    assert client.get("/").status_code == 302  # signed out by the idle timeout
    assert client.get("/").status_code == 302


def _session_cookies(response):
    return [c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "=")]


def test_an_active_session_is_signed_again_once_a_minute_not_on_every_page(world):
    from core.app import SEEN_EVERY
    client = world.app.test_client()
    sign_in(client, "a2")
    client.get("/")  # the page after signing in (it takes the flashed greeting out of the session)
    response = client.get("/")
    assert response.status_code == 200 and not _session_cookies(response)
    with client.session_transaction() as session:
        session["seen"] -= SEEN_EVERY + 1  # the last mark a minute old
        stale = session["seen"]
    response = client.get("/")
    assert response.status_code == 200 and _session_cookies(response)
    with client.session_transaction() as session:
        assert session["seen"] > stale + SEEN_EVERY


def _clock(monkeypatch):
    """Shift the clock of the session cookie's signature (itsdangerous) by ``hours``."""
    import time

    from itsdangerous.timed import TimestampSigner
    offset = {"hours": 0}
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time() + offset["hours"] * 3600))
    return offset


def test_a_cookie_older_than_the_lifetime_is_anonymous(world, monkeypatch):
    clock = _clock(monkeypatch)
    client = world.app.test_client()
    sign_in(client, "a2")
    clock["hours"] = 9
    assert client.get("/").status_code == 302


def test_an_active_session_still_ends_at_the_absolute_lifetime(world):
    client = world.app.test_client()
    sign_in(client, "a2")
    now = datetime.now(UTC).timestamp()
    with client.session_transaction() as session:
        session["signed_in_at"] = now - 7 * 3600  # signed in seven hours ago, busy ever since
        session["seen"] = now
    assert client.get("/").status_code == 200
    with client.session_transaction() as session:
        session["signed_in_at"] = now - 9 * 3600  # nine hours: past the 8-hour lifetime
        session["seen"] = now
    response = client.get("/")
    assert response.status_code == 302  # nine hours after signing in
