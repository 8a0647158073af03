"""A head reveals a masked ID number; the security officer then finds that reveal in the audit
trail, which names the field and never holds the value."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_head_reveals_an_id_number_and_security_sees_the_reveal_in_the_audit_trail(browse, data):
    full = data.id_number(birth="19900307")
    customer_id, number = data.customer("sales_d1", name=f"李揭示{full[-4:]}", phone=data.mobile(),
                                        id_number=full)
    masked = full[:6] + "*" * 8 + full[-4:]

    head = browse.sign_in("head_d1")
    browse.open_menu(head, "customers-list")
    head.fill("#search-q", number)
    browse.submit(head, "#search-submit")
    browse.submit(head, f"#customer-{customer_id} a")
    value = head.locator("#value-id_number")
    expect(value).to_have_text(masked)
    assert full not in head.content()

    browse.submit(head, "#reveal-id_number")
    expect(value).to_have_text(full)
    expect(head.locator("#revealed-notice")).to_be_visible()
    # shown once: opened again, the number is masked again
    browse.open_menu(head, "customers-list")
    browse.submit(head, f"#customer-{customer_id} a")
    expect(head.locator("#value-id_number")).to_have_text(masked)

    security = browse.sign_in("security")
    rows = browse.audit_rows(security, "查看明文", number, "head_d1")  # the action chosen by its name
    expect(rows).to_have_count(1)
    expect(rows.locator("code")).to_have_text("customers.field.revealed")
    expect(rows.locator(".audit-details")).to_contain_text("field=id_number")
    page = security.content()
    assert full not in page and full.lower() not in page
