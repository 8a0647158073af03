"""Module administration: the administrator installs `notices`, the head of D1 enables it for D1;
its menu then appears for D1's staff, while D2's staff neither see it nor reach its pages."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

MENU = "#menu-notices-list"


def test_head_enables_a_module_and_only_the_department_sees_its_menu(browse):
    staff_d1 = browse.sign_in("sales_d1")
    expect(staff_d1.locator(MENU)).to_have_count(0)

    admin = browse.sign_in("admin")
    browse.open_menu(admin, "core-modules")
    row = admin.locator("#module-notices")
    install = row.locator("form[action$='/notices/install'] button")
    if install.count():  # not installed in a fresh database
        browse.submit(admin, "#module-notices form[action$='/notices/install'] button")
    expect(row.locator("form[action$='/notices/install']")).to_have_count(0)
    expect(row.locator(".badge.bg-success")).to_be_visible()

    head = browse.sign_in("head_d1")
    browse.open_menu(head, "core-modules")
    row = head.locator("#module-notices")
    enable = row.locator("form[action$='/notices/enable'] button")
    expect(enable).to_have_count(1)  # a head manages their own department only
    expect(enable).to_contain_text("销售一部")
    browse.submit(head, "#module-notices form[action$='/notices/enable'] button")
    switch = row.locator("#switch-notices-D1")
    expect(switch).to_contain_text("已启用")
    expect(row.locator("a[href*='/notices/disable']")).to_contain_text("销售一部")

    staff_d1.reload()
    expect(staff_d1.locator(MENU)).to_be_visible()
    browse.open_menu(staff_d1, "notices-list")
    expect(staff_d1.locator("h1")).to_have_text("部门公告")

    staff_d2 = browse.sign_in("sales_d2")
    expect(staff_d2.locator("#menu-customers-list")).to_be_visible()
    expect(staff_d2.locator(MENU)).to_have_count(0)
    response = staff_d2.goto("/notices/")
    assert response.status == 404
    expect(staff_d2.locator("h1")).to_contain_text("404")

    # switching it off asks first, then shows the state in words
    head.goto("/admin/modules")
    browse.submit(head, "#module-notices a[href*='/notices/disable']")
    expect(head.locator("#disable-warning")).to_contain_text("销售一部")
    browse.submit(head, "#confirm-disable")
    expect(head.locator("#switch-notices-D1")).to_contain_text("未启用")
    staff_d1.reload()
    expect(staff_d1.locator(MENU)).to_have_count(0)
