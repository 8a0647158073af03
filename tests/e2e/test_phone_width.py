"""At phone width (390 px) buttons, menu entries and badges stay on one line (never a word broken
letter by letter) and no page but the customer list (its own card layout) scrolls sideways:
wide tables scroll inside their own box."""
import pytest

pytestmark = pytest.mark.browser

ONE_LINE = """() => [...document.querySelectorAll('.btn, .nav-link, .badge, .navbar-text')]
  .filter(e => e.offsetParent !== null && e.getClientRects().length)
  .filter(e => {
    const style = getComputedStyle(e);
    const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.5;
    const pad = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom)
              + parseFloat(style.borderTopWidth) + parseFloat(style.borderBottomWidth);
    return e.getBoundingClientRect().height - pad > line * 1.6;
  })
  .map(e => e.textContent.trim().replace(/\\s+/g, ' ').slice(0, 30))"""


def test_buttons_and_menus_never_wrap_at_390_px(browse, live_server, data):
    customer_id, _number = data.customer("head_d1", name="窄屏测试客户", phone=data.mobile())

    def add_record():
        from core.db import db
        from modules.customers import services
        from modules.customers.models import Customer
        customer = db.session.get(Customer, customer_id)
        services.add_transaction(live_server.user("head_d1"), customer, {
            "kind": "transaction", "occurred_on": "2026-11-02", "amount": "128000.50",
            "product": "年度企业管理软件授权与运维服务", "channel": "online", "notes": "含上门安装与培训"})
    live_server.run(add_record)
    page = browse.sign_in("head_d1")
    page.set_viewport_size({"width": 390, "height": 800})
    try:
        _check_pages(page, customer_id)
    finally:  # the page's context is reused by the next test: back to the usual size
        page.set_viewport_size({"width": 1024, "height": 720})


def _check_pages(page, customer_id):
    for path in ("/", f"/customers/{customer_id}", f"/customers/{customer_id}/transactions",
                 f"/archives/{customer_id}", "/archives/requests", "/admin/modules", "/grading/"):
        response = page.goto(path)
        assert response.status == 200, path
        wrapped = page.evaluate(ONE_LINE)
        assert wrapped == [], f"{path}: wrapped {wrapped}"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path}: the page is {width} px wide"
    page.click(".navbar-toggler")  # the menu, opened: every entry on one line
    page.wait_for_selector("#nav.show")
    assert page.evaluate(ONE_LINE) == []
