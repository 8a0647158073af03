"""A salesperson forgot their password: the administrator resets it on 用户 and reads the one-time
password once; signing in with it, every page leads to the change form until a new password is
chosen; then the home page shows the work queue."""
import pytest
from playwright.sync_api import expect

from core import services
from core.db import db
from core.models import Department

pytestmark = pytest.mark.browser


def test_reset_forced_change_and_the_work_queue(browse, live_server, data):
    def create_user():
        dept = db.session.query(Department).filter_by(code="D1").one()
        services.create_user("e2e", "forgot_d1", "Someone-else-42", "sales", dept)
    live_server.run(create_user)
    data.customer("forgot_d1", name="只有姓名", phone=data.mobile(), id_number=data.id_number())

    admin = browse.sign_in("admin")
    browse.open_menu(admin, "core-users")
    browse.submit(admin, "#reset-forgot_d1")
    password = admin.locator("#one-time-password").inner_text().strip()
    assert len(password) >= 10
    expect(admin.locator("main")).to_contain_text("只显示这一次")

    user = browse.new_page()
    user.goto("/login")
    user.fill("#username", "forgot_d1")
    user.fill("#password", password)
    with user.expect_navigation():
        user.click("#submit")
    assert user.url.endswith("/account/password")
    expect(user.locator("#password-rules")).to_contain_text("至少 10 个字符")
    user.goto("/customers/")  # nothing else opens before the change
    assert user.url.endswith("/account/password")
    user.fill("#current", password)
    user.fill("#new", "Chosen-by-me-2026")
    user.fill("#confirm", "Chosen-by-me-2026")
    browse.submit(user, "main form button[type=submit]")
    user.goto("/")
    queue = user.locator("#work-queue")
    expect(queue).to_contain_text("待完善的客户资料")
    user.goto("/customers/")
    assert user.url.endswith("/customers/")
