"""A script stored in a customer's name (and notes) is shown as text everywhere and never runs.

The pages are opened with the browser ignoring the Content-Security-Policy, so what is tested
is the escaping itself; the policy is a second wall, checked separately below."""
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_the_dialog_detector_sees_an_injected_script(browse):
    """Guards the test below: with the policy bypassed, injected markup does raise a dialog."""
    page = browse.new_page(bypass_csp=True)
    page.goto("/login")
    with page.expect_event("dialog"):  # the page's recorder dismisses it
        page.evaluate("html => document.body.insertAdjacentHTML('beforeend', html)", PAYLOAD)
    assert [d.split(" on ")[0] for d in page.kehu_log.dialogs] == ["alert: 2"]
    page.kehu_log.dialogs.clear()


def test_pages_carry_a_content_security_policy_without_inline_scripts(page):
    response = page.goto("/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_a_script_in_a_customer_name_opens_no_dialog_anywhere(browse, data):
    page = browse.sign_in("xss_d1", bypass_csp=True)
    browse.open_menu(page, "customers-list")
    browse.submit(page, "#new-customer")
    browse.submit(page, "#new-person")
    page.fill("#name", PAYLOAD)
    page.fill("#phone", data.mobile())
    page.fill("#notes", PAYLOAD)
    browse.submit(page, "#save")

    # the customer page: name in the heading, notes in the fields
    customer_id = re.search(r"/customers/(\d+)$", page.url).group(1)
    expect(page.locator("#customer-name")).to_have_text(PAYLOAD)
    expect(page.locator("#value-notes")).to_have_text(PAYLOAD)
    expect(page.get_by_text(PAYLOAD, exact=True).first).to_be_visible()

    # the list, then the search results (exact name search) with the text echoed in the box
    browse.open_menu(page, "customers-list")
    expect(page.locator(f"#customer-{customer_id}")).to_contain_text(PAYLOAD)
    page.fill("#search-q", PAYLOAD)
    browse.submit(page, "#search-submit")
    expect(page.locator("#customer-list tbody tr")).to_have_count(1)
    expect(page.locator(f"#customer-{customer_id}")).to_contain_text(PAYLOAD)
    expect(page.locator("#search-q")).to_have_value(PAYLOAD)

    # the edit form: in the heading and as the input's value; saved unchanged
    browse.submit(page, f"#customer-{customer_id} a")
    browse.submit(page, "#edit-customer")
    expect(page.locator("h1")).to_contain_text(PAYLOAD)
    expect(page.locator("#name")).to_have_value(PAYLOAD)
    expect(page.locator("#notes")).to_have_value(PAYLOAD)
    browse.submit(page, "#save")
    expect(page.locator("#customer-name")).to_have_text(PAYLOAD)

    # the owner's list of incomplete records
    browse.open_menu(page, "customers-incomplete")
    expect(page.locator(f"#customer-{customer_id}")).to_contain_text(PAYLOAD)

    # pages of the archives module, which D1 uses: the incomplete archives, the customer's archive
    browse.open_menu(page, "archives-incomplete")
    expect(page.get_by_text(PAYLOAD, exact=True)).to_be_visible()
    browse.submit(page, f"a[href$='/archives/{customer_id}']")
    expect(page.locator("h1")).to_contain_text(PAYLOAD)

    # the audit trail: a sign-in attempt with the script as user name is logged with it
    attacker = browse.new_page(bypass_csp=True)
    attacker.goto("/login")
    attacker.fill("#username", PAYLOAD)
    attacker.fill("#password", "not-the-password")
    browse.submit(attacker, "#submit")
    expect(attacker.locator("#username")).to_have_value(PAYLOAD)

    security = browse.sign_in("security", bypass_csp=True)
    browse.open_menu(security, "core-audit")
    expect(security.locator("#audit").get_by_text(PAYLOAD, exact=True).first).to_be_visible()
    security.fill("input[name=actor]", PAYLOAD)
    browse.submit(security, "#audit-filter")
    expect(security.locator("input[name=actor]")).to_have_value(PAYLOAD)
    expect(security.locator("#audit tbody tr")).to_have_count(1)
    expect(security.locator("#audit tbody tr")).to_contain_text(PAYLOAD)

    for p in browse.pages:
        assert p.kehu_log.dialogs == [], p.kehu_log.dialogs
        assert p.kehu_log.errors == [], p.kehu_log.errors
