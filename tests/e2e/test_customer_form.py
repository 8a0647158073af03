"""A sales user records an individual customer through the form, is told in Chinese, next to the
field, that the 身份证号 is wrong, corrects it, and finds the customer in the list and by phone."""
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_sales_user_creates_a_customer_fixes_a_bad_id_number_and_finds_it_by_phone(browse, data):
    name, phone, good = f"王测试{data.mobile()[-4:]}", data.mobile(), data.id_number()
    page = browse.sign_in("sales_d1")
    browse.open_menu(page, "customers-list")
    browse.submit(page, "#new-customer")
    expect(page.locator("#kind-chooser")).to_be_visible()
    browse.submit(page, "#new-person")

    page.fill("#name", name)
    page.fill("#phone", phone)
    page.fill("#id_number", data.wrong_check_digit(good))
    page.check("#consent_purposes-0")
    page.select_option("#consent_channel", "paper")
    page.check("#consent_sensitive")
    browse.submit(page, "#save")

    error = page.locator("#field-id_number #id_number-error")
    expect(error).to_have_text("身份证号无效：校验位不符")
    expect(page.locator("#id_number")).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(page.locator(".invalid-feedback")).to_have_count(1)  # only that field is marked
    expect(page.locator("#form-errors")).to_be_visible()
    expect(page.locator("#name")).to_have_value(name)  # what was typed is kept
    expect(page.locator("#phone")).to_have_value(phone)

    page.fill("#id_number", good)
    browse.submit(page, "#save")
    assert re.search(r"/customers/\d+$", page.url), page.url
    expect(page.locator("#customer-name")).to_have_text(name)
    # a sales user sees the ID number masked and has no reveal button
    expect(page.locator("#value-id_number")).to_have_text(good[:6] + "*" * 8 + good[-4:])
    expect(page.locator("#reveal-id_number")).to_have_count(0)
    number = page.locator("#customer-number").inner_text().strip()
    customer_row = f"#customer-{page.url.rsplit('/', 1)[1]}"

    browse.open_menu(page, "customers-list")
    row = page.locator(customer_row)
    expect(row).to_contain_text(number)
    expect(row).to_contain_text(name)
    expect(row).to_contain_text(f"{phone[:3]}****{phone[-4:]}")  # the phone is masked in the list

    page.fill("#search-q", f"+86 {phone[:3]} {phone[3:7]}-{phone[7:]}")  # as written on a card
    browse.submit(page, "#search-submit")
    rows = page.locator("#customer-list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(number)

    browse.submit(page, f"{customer_row} a")
    expect(page.locator("#customer-name")).to_have_text(name)
