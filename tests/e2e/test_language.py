"""The interface is Simplified Chinese by default; English is one click away in the navbar, and a
signed-in user's choice is kept for their next sessions."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def switch_language(browse, page, label):
    browse.submit(page, f"nav form button[name=locale]:text-is('{label}')")


def test_sign_in_page_switches_to_english_and_back(browse, page):
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    switch_language(browse, page, "English")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Sign in")
    expect(page.locator("label[for=username]")).to_have_text("User name")
    switch_language(browse, page, "中文")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


def test_sign_in_page_is_chinese_by_default(page):
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text("登录")
    expect(page.locator("#submit")).to_have_text("登录")
    expect(page.locator("label[for=username]")).to_have_text("用户名")


def test_language_chosen_on_the_sign_in_page_is_kept_after_signing_in(browse, page):
    page.goto("/login")
    switch_language(browse, page, "English")
    expect(page.locator("h1")).to_have_text("Sign in")
    browse.sign_in("head_d2", page=page)
    assert page.locator("html").get_attribute("lang") == "en"


def test_signed_in_user_switches_to_english_and_keeps_it(browse):
    page = browse.sign_in("lang_d1")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#menu-customers-list")).to_have_text("客户")
    browse.open_menu(page, "customers-list")
    expect(page.locator("h1")).to_have_text("客户")
    expect(page.locator("label[for=search-q]")).to_have_text("搜索")

    switch_language(browse, page, "English")
    assert page.url.endswith("/customers/")  # back on the page where the user was
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#menu-customers-list")).to_have_text("Customers")
    expect(page.locator("h1")).to_have_text("Customers")
    expect(page.locator("label[for=search-q]")).to_have_text("Search")
    browse.open_menu(page, "customers-incomplete")
    expect(page.locator("h1")).to_have_text("Incomplete records")

    browse.submit(page, "#logout")
    browse.sign_in("lang_d1", page=page)  # the choice is the user's, kept across sessions
    expect(page.locator("#menu-customers-list")).to_have_text("Customers")
    switch_language(browse, page, "中文")
    expect(page.locator("#menu-customers-list")).to_have_text("客户")
