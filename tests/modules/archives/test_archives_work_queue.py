"""The archives on the home page's work queue: the head sees requests to decide, the borrower
the originals they hold; a department without archives sees neither."""
import re

from tests.modules.archives.test_archives_requests import request_access


def queue(client):
    page = client.get("/").get_data(as_text=True)
    block = re.search(r'<div class="list-group mb-4" id="work-queue">(.*?)</div>\s*<div class="row', page, re.S).group(1)
    return {label.strip(): int(count) for label, count in
            re.findall(r"<span>([^<]+)</span>\s*<span class=\"badge[^\"]*\">(\d+)</span>", block)}


def test_the_head_sees_requests_to_decide_and_the_borrower_what_they_hold(arch, app):
    number = arch.customer_number(arch.customer(owner="sales1"))
    outsider = arch.client("sales2")
    assert request_access(outsider, number, kind="borrow").status_code == 302
    head = arch.client("head1")
    assert queue(head).get("待审批的查阅借阅申请") == 1
    assert "待审批的查阅借阅申请" not in queue(arch.client("sales1"))
    from core.db import db
    from modules.archives.models import AccessRequest
    with app.app_context():
        request_id = db.session.query(AccessRequest.id).scalar()
    head.post(f"/archives/requests/{request_id}/approve", data={"reason": "同意"})
    assert "待审批的查阅借阅申请" not in queue(head)
    assert queue(outsider).get("我借阅中的档案原件") == 1


def test_a_department_without_archives_has_no_archive_items(arch):
    page = arch.client("sales3").get("/").get_data(as_text=True)
    assert "查阅借阅" not in page and "档案原件" not in page
