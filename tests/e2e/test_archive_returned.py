"""A borrowed paper original is marked returned from the request list (head) and from the
customer's archive page (staff), not only once it is overdue."""
import datetime

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _lend(live_server, customer_number, purpose):
    """sales_d2 borrows the paper originals of a D1 customer; head_d1 approves (set-up through
    the services: D2 does not use the archives module in this server)."""
    from modules.archives import services

    def lend():
        requester, head = live_server.user("sales_d2"), live_server.user("head_d1")
        until = services.today() + datetime.timedelta(days=7)
        req = services.create_request(requester, customer_number, "borrow", purpose, until)
        services.approve_request(head, req, "同意")
        return req.id
    return live_server.run(lend)


def test_returned_original_from_the_requests_and_the_archive_page(browse, live_server, data):
    customer_id, number = data.customer("sales_d1", name="归还测试客户", phone=data.mobile())
    first = _lend(live_server, number, "招投标资质审核")

    head = browse.sign_in("head_d1")
    head.goto("/archives/requests")
    row = head.locator(f"#decided-request-{first}")
    expect(row).to_contain_text(number)
    button = row.locator(f"#returned-{first}")
    expect(button).to_have_text("标记已归还")  # lent, not overdue: the button is there already
    browse.submit(head, f"#returned-{first}")
    expect(head.locator(".alert-success")).to_contain_text("归还")
    row = head.locator(f"#decided-request-{first}")
    expect(row).to_contain_text("已归还")
    expect(row.locator(f"#returned-{first}")).to_have_count(0)

    second = _lend(live_server, number, "银行授信材料")
    staff = browse.sign_in("sales_d1")
    staff.goto(f"/archives/{customer_id}")
    row = staff.locator(f"#archive-request-{second}")
    expect(row.locator(f"#returned-{second}")).to_be_visible()
    browse.submit(staff, f"#returned-{second}")
    assert staff.url.endswith(f"/archives/{customer_id}")
    expect(staff.locator(f"#archive-request-{second}")).to_contain_text("已归还")
    expect(staff.locator(f"#archive-request-{first}")).to_contain_text("已归还")

    def audited():
        from sqlalchemy import func, select

        from core.audit import AuditEntry
        from core.db import db
        return db.session.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "archives.request.returned"))
    assert live_server.run(audited) >= 2
