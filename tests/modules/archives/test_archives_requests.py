"""View and borrow requests (查阅/借阅): request from outside the remit, approval by the head of
the customer's department, access that ends by itself, refusal, overdue borrowings."""
import datetime

import pytest

from core.db import db


@pytest.fixture
def clock(app, monkeypatch):
    """Move the archives' calendar: clock.set(date) / clock.shift(days)."""
    from modules.archives import services
    with app.app_context():
        start = services.today()

    class Clock:
        today = start

        def set(self, value):
            self.today = value

        def shift(self, days):
            self.today = self.today + datetime.timedelta(days=days)

    clock = Clock()
    monkeypatch.setattr(services, "today", lambda: clock.today)
    return clock


def request_access(client, number, kind="view", until=None, purpose="核对合同条款"):
    until = until or (datetime.date.today() + datetime.timedelta(days=7))
    return client.post("/archives/requests/new", data={
        "customer_number": number, "kind": kind, "purpose": purpose, "until": until.isoformat()})


def request_row(app, requester_id):
    from modules.archives.models import AccessRequest
    with app.app_context():
        return db.session.query(AccessRequest).filter_by(requester_id=requester_id).order_by(
            AccessRequest.id.desc()).first()


def test_approved_access_opens_the_archive_until_the_date_then_ends_by_itself(arch, app, clock):
    cid = arch.customer(owner="sales1", name="李四")
    doc_id, number = arch.document(cid, title="采购合同")
    owner = arch.client("sales1")
    arch.post_file(owner, doc_id, arch.pdf_bytes(b"contract body"), "contract.pdf")
    [att] = arch.attachment_rows()
    requester = arch.client("sales2")  # another department
    assert requester.get(f"/archives/{cid}").status_code == 404

    until = clock.today + datetime.timedelta(days=3)
    response = request_access(requester, arch.customer_number(cid), until=until)
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    req = request_row(app, arch.ids["sales2"])
    assert req.status == "pending" and req.customer_id == cid
    assert requester.get(f"/archives/{cid}").status_code == 404  # not before approval

    # only the head of the customer's department decides
    assert arch.client("head2").post(f"/archives/requests/{req.id}/approve").status_code == 404
    assert arch.client("sales1").post(f"/archives/requests/{req.id}/approve").status_code == 403
    head = arch.client("head1")
    pending_page = head.get("/archives/requests").get_data(as_text=True)
    assert f'id="request-{req.id}"' in pending_page and "核对合同条款" in pending_page
    assert head.post(f"/archives/requests/{req.id}/approve", data={"reason": ""}).status_code == 302
    assert request_row(app, arch.ids["sales2"]).status == "approved"

    # the archive, its documents and attachments, read-only; not the rest of the customer
    page = requester.get(f"/archives/{cid}")
    assert page.status_code == 200 and "采购合同" in page.get_data(as_text=True)
    assert 'id="archives-new"' not in page.get_data(as_text=True)
    assert requester.get(f"/archives/documents/{doc_id}").status_code == 200
    download = requester.get(f"/archives/attachments/{att.id}")
    assert download.status_code == 200 and download.data == arch.pdf_bytes(b"contract body")
    assert requester.get(f"/customers/{cid}").status_code == 404
    assert requester.get(f"/archives/{cid}/new").status_code == 404
    assert requester.get(f"/archives/{cid}/form.pdf").status_code == 404
    assert requester.post(f"/archives/documents/{doc_id}/delete").status_code == 404
    assert requester.post(f"/archives/attachments/{att.id}/delete").status_code == 404

    clock.set(until)  # the last day still counts
    assert requester.get(f"/archives/{cid}").status_code == 200
    clock.shift(1)  # the day after: gone, with no job having run
    assert requester.get(f"/archives/{cid}").status_code == 404
    assert requester.get(f"/archives/documents/{doc_id}").status_code == 404
    assert requester.get(f"/archives/attachments/{att.id}").status_code == 404
    mine = requester.get("/archives/requests").get_data(as_text=True)
    assert "已到期" in mine

    actions = arch.audit_actions()
    for action in ("archives.request.created", "archives.request.approved", "archives.archive.accessed",
                   "archives.request.expired"):
        assert action in actions, action
    assert actions.count("archives.request.expired") == 1


def test_refusal_needs_a_reason_and_gives_no_access(arch, app):
    cid = arch.customer(owner="sales1")
    requester = arch.client("sales2")
    request_access(requester, arch.customer_number(cid))
    req = request_row(app, arch.ids["sales2"])
    head = arch.client("head1")
    refused = head.post(f"/archives/requests/{req.id}/refuse", data={"reason": ""})
    assert refused.status_code == 400  # the page again, the message under the reason field
    assert f'id="reason-{req.id}-error"' in refused.get_data(as_text=True)
    assert request_row(app, arch.ids["sales2"]).status == "pending"  # no reason, no refusal
    head.post(f"/archives/requests/{req.id}/refuse", data={"reason": "与业务无关"})
    assert request_row(app, arch.ids["sales2"]).status == "refused"
    assert requester.get(f"/archives/{cid}").status_code == 404
    mine = requester.get("/archives/requests").get_data(as_text=True)
    assert "与业务无关" in mine and "已拒绝" in mine
    again = head.post(f"/archives/requests/{req.id}/approve", follow_redirects=True)
    assert "已处理" in again.get_data(as_text=True)
    assert request_row(app, arch.ids["sales2"]).status == "refused"
    assert "archives.request.refused" in arch.audit_actions()


@pytest.mark.parametrize("case", ["unknown", "in_remit", "past", "too_far", "module_off", "twice"])
def test_request_is_checked(arch, app, case):
    today = datetime.date.today()
    cid = arch.customer(owner="sales1")
    number = arch.customer_number(cid)
    requester, until, message = arch.client("sales2"), today + datetime.timedelta(days=5), None
    if case == "unknown":
        number, message = "KH-1999-999999", "没有客户"
    elif case == "in_remit":
        requester, message = arch.client("sales1"), "您的权限范围内"
    elif case == "past":
        until, message = today - datetime.timedelta(days=2), "今天或以后"
    elif case == "too_far":
        until, message = today + datetime.timedelta(days=400), "90"
    elif case == "module_off":
        number, message = arch.customer_number(arch.customer(owner="sales3")), "未启用"
    elif case == "twice":
        request_access(requester, number, until=until)
        message = "已有"
    page = request_access(requester, number, until=until)
    html = requester.get("/archives/requests/new").get_data(as_text=True) if page.status_code == 302 else \
        page.get_data(as_text=True)
    assert message in html
    from modules.archives.models import AccessRequest
    with app.app_context():
        assert db.session.query(AccessRequest).count() == (1 if case == "twice" else 0)


def test_withdraw_a_pending_request(arch, app):
    cid = arch.customer(owner="sales1")
    requester = arch.client("sales2")
    request_access(requester, arch.customer_number(cid))
    req = request_row(app, arch.ids["sales2"])
    assert arch.client("head2").post(f"/archives/requests/{req.id}/withdraw").status_code == 404
    assert requester.post(f"/archives/requests/{req.id}/withdraw").status_code == 302
    assert request_row(app, arch.ids["sales2"]).status == "withdrawn"
    assert "archives.request.withdrawn" in arch.audit_actions()


def test_borrowing_not_returned_in_time_is_listed_as_overdue_until_returned(arch, app, clock):
    cid = arch.customer(owner="sales1")
    arch.document(cid, title="纸质合同原件")
    requester = arch.client("sales2")
    until = clock.today + datetime.timedelta(days=2)
    request_access(requester, arch.customer_number(cid), kind="borrow", until=until, purpose="借阅原件")
    req = request_row(app, arch.ids["sales2"])
    head = arch.client("head1")
    head.post(f"/archives/requests/{req.id}/approve")
    assert f'id="overdue-{req.id}"' not in head.get("/archives/overdue").get_data(as_text=True)

    clock.shift(3)
    for viewer in ("head1", "sales1"):  # the head and the customer's owner see it
        assert f'id="overdue-{req.id}"' in arch.client(viewer).get("/archives/overdue").get_data(as_text=True)
    assert f'id="overdue-{req.id}"' not in arch.client("sales1b").get("/archives/overdue").get_data(as_text=True)
    assert "逾期未还" in requester.get("/archives/requests").get_data(as_text=True)
    assert requester.get(f"/archives/{cid}").status_code == 404  # the access lapsed too

    # the borrower cannot declare the return; staff in the customer's remit can
    assert requester.post(f"/archives/requests/{req.id}/returned").status_code == 404
    assert head.post(f"/archives/requests/{req.id}/returned",
                     data={"next": "/archives/overdue"}).status_code == 302
    assert f'id="overdue-{req.id}"' not in head.get("/archives/overdue").get_data(as_text=True)
    assert request_row(app, arch.ids["sales2"]).returned_at is not None
    assert "archives.request.returned" in arch.audit_actions()


def test_returning_early_ends_the_access(arch, app, clock):
    cid = arch.customer(owner="sales1")
    requester = arch.client("sales2")
    request_access(requester, arch.customer_number(cid), kind="borrow",
                   until=clock.today + datetime.timedelta(days=5))
    req = request_row(app, arch.ids["sales2"])
    head = arch.client("head1")
    head.post(f"/archives/requests/{req.id}/approve")
    assert requester.get(f"/archives/{cid}").status_code == 200
    head.post(f"/archives/requests/{req.id}/returned")
    assert requester.get(f"/archives/{cid}").status_code == 404
