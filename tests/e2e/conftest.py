"""Browser end-to-end tests: the real app served on 127.0.0.1 and driven in headless Chromium.

One live server and one browser for the package (torn down when its last test is done); each test gets fresh browser contexts (so fresh
cookies) through the `browse` fixture. The server is the app of `core.app.create_app` with CSRF
on, always on a SQLite file (the database variants are covered by the other suites), with every
module but `notices` installed (the module-administration flow installs that one through the
page) and `grading` and `archives` enabled for department D1.

A failing test saves a screenshot of the page it was on (the one loaded last) to
tests/e2e/screenshots/<test>.png, and of its other pages to <test>-<n>.png (n: the page's place
in the order they were opened).
Every page records JavaScript dialogs (and dismisses them), uncaught script errors and 5xx
responses; a test fails if any of them happened.
"""
from __future__ import annotations

import itertools
import logging
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from core import access, services
from core.db import db
from core.models import User
from tests.conftest import PASSWORD, make_config

CHROMIUM = Path("/usr/bin/chromium")
# The flags of the machine's probe (--headless is Playwright's own); without the background
# networking ones Chromium keeps trying to reach Google's hosts through a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
TIMEOUT_MS = 10_000

# username -> (role, department code)
USERS = {
    "admin": ("admin", None),
    "head_d1": ("head", "D1"),
    "head_d2": ("head", "D2"),
    "sales_d1": ("sales", "D1"),
    "sales_d2": ("sales", "D2"),
    "xss_d1": ("sales", "D1"),  # the stored-script flow's own user, so its customers stay apart
    "lang_d1": ("service", "D1"),  # the language flow changes this user's stored language
    "security": ("security", None),
}
DEPARTMENTS = {"D1": "销售一部", "D2": "销售二部"}
ENABLED_IN_D1 = ("grading", "archives")
NOT_INSTALLED = ("notices",)


# --- the live server ---------------------------------------------------------------------------

@dataclass
class LiveServer:
    app: object
    url: str

    def run(self, fn, *args, **kwargs):
        """Run ``fn`` in an app context of the served app, committing afterwards (test set-up)."""
        with self.app.app_context():
            result = fn(*args, **kwargs)
            db.session.commit()
            return result

    def user(self, username):
        return db.session.execute(select(User).where(User.username == username)).scalar_one()


@pytest.fixture(scope="package", autouse=True)
def _chromium_present():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
                    "(`make test` installs it)")


def _seed(app):
    services.grant_defaults("core")
    for name in app.extensions["kehu.modules"]:
        if name not in NOT_INSTALLED:
            services.install_module("e2e", name)
    depts = {code: services.create_department("e2e", code, name) for code, name in DEPARTMENTS.items()}
    for username, (role, dept) in USERS.items():
        services.create_user("e2e", username, PASSWORD, role, depts.get(dept))
    for name in ENABLED_IN_D1:
        services.enable_module("e2e", name, depts["D1"])
    db.session.flush()
    head = db.session.execute(select(User).where(User.username == "head_d1")).scalar_one()
    assert access.can(head, "customers.reveal_l2"), "heads are expected to hold customers.reveal_l2"


def _start_server(tmp):
    from werkzeug.serving import make_server

    from core.app import create_app

    config = make_config(tmp, WTF_CSRF_ENABLED=True, TESTING=False,
                         # SQLite always, even when KEHU_TEST_DATABASE_URL selects PostgreSQL
                         SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp / 'instance' / 'e2e.db'}")
    app = create_app(config)
    with app.app_context():
        db.create_all()
        _seed(app)
        db.session.commit()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    return server, thread, LiveServer(app, f"http://127.0.0.1:{server.server_port}")


@pytest.fixture(scope="package")
def _booting_server(tmp_path_factory, _chromium_present):
    """Starts the app in a thread while Chromium starts (the `browser` fixture depends on this)."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(_start_server, tmp_path_factory.mktemp("e2e"))
        yield future
        if future.exception() is None:
            server, thread, live = future.result()
            server.shutdown()
            thread.join(timeout=10)
            server.server_close()
            with live.app.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture(scope="package")
def live_server(_booting_server):
    return _booting_server.result()[2]


# --- the browser -------------------------------------------------------------------------------

@pytest.fixture(scope="package")
def browser(_booting_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright starts Chromium on a new, empty profile directory (--user-data-dir) of its own
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def _tabs(browser, live_server):
    """Browser contexts (each with one page) kept for the next test once a test is done with
    them; starting a context costs about half a second here. Returned ones have no cookies."""
    free = {False: [], True: []}
    yield free
    for tabs in free.values():
        for context, _page in tabs:
            context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (rep_setup, rep_call) for the fixtures' teardown."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class PageLog:
    dialogs: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    server_errors: list = field(default_factory=list)
    console: list = field(default_factory=list)
    loaded_at: float = 0.0  # when a page last finished loading: the one a failing test was on


class Browse:
    """Opens pages as a user would, each in its own browser context (so with its own cookies)."""

    def __init__(self, browser, server, tabs):
        self.browser, self.server, self.tabs = browser, server, tabs
        self.pages, self._taken = [], []

    def new_page(self, *, bypass_csp=False):
        """A page without cookies (start it with page.goto); ``bypass_csp`` makes the browser
        ignore the Content-Security-Policy (to test escaping on its own)."""
        if self.tabs[bypass_csp]:
            context, page = self.tabs[bypass_csp].pop()
        else:
            context = self.browser.new_context(base_url=self.server.url, locale="zh-CN", bypass_csp=bypass_csp,
                                               viewport={"width": 1024, "height": 720})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
        log = page.kehu_log = PageLog()

        def on_dialog(dialog):
            log.dialogs.append(f"{dialog.type}: {dialog.message} on {page.url}")
            dialog.dismiss()

        listeners = {
            "dialog": on_dialog,
            "pageerror": lambda exc: log.errors.append(f"{exc} on {page.url}"),
            "console": lambda msg: msg.type == "error" and log.console.append(f"{msg.text} on {page.url}"),
            "response": lambda r: r.status >= 500 and log.server_errors.append(f"{r.status} {r.url}"),
            "load": lambda _page: setattr(log, "loaded_at", time.monotonic()),
        }
        for event, listener in listeners.items():
            page.on(event, listener)
        self._taken.append((bypass_csp, context, page, listeners))
        self.pages.append(page)
        return page

    def sign_in(self, username, *, page=None, bypass_csp=False):
        """Sign in through the form; returns the page, on the home page."""
        page = page or self.new_page(bypass_csp=bypass_csp)
        page.goto("/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.click("#submit")
        assert page.locator("#logout").count() == 1, f"{username} could not sign in: {page.url}"
        return page

    @staticmethod
    def open_menu(page, item_id):
        """Follow a navbar entry (its id is menu-<module>-<item>)."""
        with page.expect_navigation():
            page.click(f"#menu-{item_id}")

    @staticmethod
    def submit(page, selector):
        """Click a button or link and wait for the page it leads to."""
        with page.expect_navigation():
            page.click(selector)

    def audit_rows(self, page, action_label, number, actor):
        """On the audit trail (page of a security officer): filter by the action's name and the
        customer number as a user would, and return the rows of ``actor`` naming that number."""
        import re
        self.open_menu(page, "core-audit")
        page.select_option("select[name=action]", label=action_label)
        page.fill("input[name=customer]", number)
        self.submit(page, "#audit-filter")
        return page.locator("#audit tbody tr").filter(has_text=actor).filter(
            has=page.locator("td", has_text=re.compile(rf"^\s*{re.escape(number)}\s*$")))

    def release(self):
        """Hand the contexts back, emptied, for the next test (closed if anything went wrong)."""
        for bypass_csp, context, page, listeners in self._taken:
            try:
                for event, listener in listeners.items():
                    page.remove_listener(event, listener)
                context.clear_cookies()  # the app keeps no other state in the browser
            except Exception:  # a crashed page or context is not reused
                context.close()
            else:
                self.tabs[bypass_csp].append((context, page))
        self._taken = []


def _failed(item):
    return any(getattr(getattr(item, f"rep_{when}", None), "failed", False) for when in ("setup", "call"))


@pytest.fixture
def browse(request, browser, live_server, _tabs):
    b = Browse(browser, live_server, _tabs)
    yield b
    problems = []
    for page in b.pages:
        log = page.kehu_log
        problems += [f"dialog opened: {d}" for d in log.dialogs]
        problems += [f"script error: {e}" for e in log.errors]
        problems += [f"server error: {e}" for e in log.server_errors]
    if _failed(request.node) or problems:
        SCREENSHOTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        current = max(b.pages, key=lambda p: p.kehu_log.loaded_at, default=None)
        for i, page in enumerate(b.pages, 1):
            # the page loaded last is the one the test was on: <test>.png; the others <test>-<n>.png
            path = SCREENSHOTS / (f"{name}.png" if page is current else f"{name}-{i}.png")
            try:
                page.screenshot(path=str(path), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"no screenshot of page {i} ({page.url}): {exc}")
            for line in page.kehu_log.console:
                print(f"console error on page {i}: {line}")
    b.release()
    assert not problems, "\n".join(problems)


@pytest.fixture
def page(browse):
    """A fresh page, not signed in."""
    return browse.new_page()


@pytest.fixture(scope="package", autouse=True)
def _clean_screenshots():
    """Screenshots are of the last run only."""
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)


# --- data ------------------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_serial = itertools.count(101)


class Data:
    """Unique, valid test values (the session's tests share one database, and the duplicate
    check of the customer form would otherwise link their customers), and set-up through the
    services where a flow needs a customer it does not create itself."""

    def __init__(self, server):
        self.server = server

    @staticmethod
    def id_number(birth="19850612", region="110105"):
        """A valid 18-character 身份证号 (GB 11643 check digit), new on every call."""
        body = f"{region}{birth}{next(_serial) % 1000:03d}"
        total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
        return body + "10X98765432"[total % 11]

    @staticmethod
    def wrong_check_digit(number):
        """The same number with a check digit that does not match."""
        return number[:-1] + next(d for d in "0123456789X" if d != number[-1])

    @staticmethod
    def mobile():
        """A valid mobile number "139xxxxxxxx", new on every call."""
        return f"1391234{next(_serial) % 10000:04d}"

    def customer(self, owner, **values):
        """Create a person customer owned by ``owner`` (username) with the separate consent to
        sensitive data; returns (id, number)."""
        from modules.customers import services as customers

        def create():
            actor = self.server.user(owner)
            consent = {"purposes": ["service"], "channel": "paper", "sensitive": True}
            customer = customers.create_customer(actor, {"kind": "person", **values}, consent=consent)
            return customer.id, customer.number
        return self.server.run(create)


@pytest.fixture
def data(live_server):
    return Data(live_server)
