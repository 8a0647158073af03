"""The customer list in the browser: partial search by surname and by the last digits of a phone
(the register stays encrypted), bulk reassignment by the head, and the list at phone width."""
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _search(browse, page, q):
    page.fill("#search-q", q)
    browse.submit(page, "#search-submit")


def test_partial_search_by_surname_and_by_phone_tail(browse, data):
    a_id, a_number = data.customer("sales_d1", name="鄷一鸣", phone=data.mobile())
    b_id, _ = data.customer("sales_d1", name="鄷二", phone=data.mobile())
    c_id, _ = data.customer("sales_d1", name="李鄷", phone=data.mobile())  # the surname is 李
    phone = data.mobile()
    d_id, _ = data.customer("sales_d1", name="尾号客户", phone=phone)

    sales = browse.sign_in("sales_d1")
    browse.open_menu(sales, "customers-list")
    _search(browse, sales, "鄷")
    expect(sales.locator(f"#customer-{a_id}")).to_be_visible()
    expect(sales.locator(f"#customer-{b_id}")).to_be_visible()
    expect(sales.locator(f"#customer-{c_id}")).to_have_count(0)
    expect(sales.locator(f"#customer-{a_id} td").nth(1)).to_have_text(a_number)
    expect(sales.locator(f"#customer-{a_id}")).to_contain_text("鄷一鸣")

    _search(browse, sales, "一鸣")  # the given name: the end of the name
    expect(sales.locator("#customer-list tbody tr")).to_have_count(1)
    expect(sales.locator(f"#customer-{a_id}")).to_be_visible()

    _search(browse, sales, phone[-4:])
    expect(sales.locator(f"#customer-{d_id}")).to_be_visible()
    expect(sales.locator(f"#customer-{a_id}")).to_have_count(0)
    # the phone stays masked in the list, whatever was searched
    expect(sales.locator(f"#customer-{d_id} .masked")).not_to_have_text(re.compile(phone[3:7]))
    assert phone not in sales.content()


def test_head_reassigns_selected_customers_in_bulk(browse, data):
    first, _ = data.customer("sales_d1", name="隗甲", phone=data.mobile())
    second, _ = data.customer("sales_d1", name="隗乙", phone=data.mobile())
    kept, _ = data.customer("sales_d1", name="隗丙", phone=data.mobile())

    head = browse.sign_in("head_d1")
    browse.open_menu(head, "customers-list")
    _search(browse, head, "隗")
    expect(head.locator("#customer-list tbody tr")).to_have_count(3)
    head.check(f"#select-{first}")
    head.check(f"#select-{second}")
    owner = head.locator("#bulk-owner option", has_text="(lang_d1)").get_attribute("value")
    head.select_option("#bulk-owner", value=owner)
    browse.submit(head, "#bulk-reassign")
    expect(head.locator(".alert-success")).to_contain_text("2 位客户已更换负责人")
    expect(head.locator("#search-q")).to_have_value("隗")  # back on the same list
    for customer_id in (first, second):
        expect(head.locator(f"#customer-{customer_id}")).to_contain_text("lang_d1")
    expect(head.locator(f"#customer-{kept}")).not_to_contain_text("lang_d1")

    # the former owner no longer sees them; the head's reassignment is on the audit trail
    sales = browse.sign_in("sales_d1")
    browse.open_menu(sales, "customers-list")
    _search(browse, sales, "隗")
    expect(sales.locator("#customer-list tbody tr[id^=customer-]")).to_have_count(1)
    expect(sales.locator(f"#customer-{kept}")).to_be_visible()


def test_the_list_at_phone_width(browse, data):
    customer_id, number = data.customer("sales_d1", name="窄屏客户", phone=data.mobile())
    sales = browse.sign_in("sales_d1")
    sales.set_viewport_size({"width": 390, "height": 844})
    try:
        sales.goto("/customers/")
        row = sales.locator(f"#customer-{customer_id}")
        for cell in ("td.col-number", "td.col-name", "td.col-status", "td.col-phone"):
            expect(row.locator(cell)).to_be_visible()
        expect(row.locator("td.col-number")).to_have_text(number)
        # nothing wider than the screen: no sideways scrolling of the page or of the list
        widths = sales.evaluate("""() => [document.documentElement.scrollWidth,
                                          document.querySelector('#customer-list').scrollWidth]""")
        assert max(widths) <= 390, widths
        # every visible button on one line, its text inside it (never wrapped letter by letter)
        buttons = sales.evaluate("""() => Array.from(document.querySelectorAll('.btn'))
            .filter(b => b.offsetParent !== null)
            .map(b => [b.textContent.trim(), b.getBoundingClientRect().height, b.scrollWidth, b.clientWidth,
                       parseFloat(getComputedStyle(b).lineHeight)])""")
        assert buttons
        for text, height, scroll, client, line in buttons:
            assert height < 2 * line + 16, f"button {text!r} wraps: {height}px high"
            assert scroll <= client + 1, f"button {text!r} overflows"
    finally:
        sales.set_viewport_size({"width": 1024, "height": 720})
