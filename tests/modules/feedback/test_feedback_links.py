"""The customer's one-time link /f/<token>: no sign-in, only the template and the company name,
one submission, CSRF-protected, rate-limited per token and per address, and a clear refusal of
an expired, used or tampered link. The submission lands on the customer, marked as filled by
the customer, and the owner is told on the work queue."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db import db
from core.models import utcnow
from tests.conftest import csrf_token

from .conftest import ANSWERS, latest_version


@pytest.fixture
def config_overrides():
    return {"COMPANY_NAME": "示例贸易有限公司", "FEEDBACK_LINK_LIMIT_PER_TOKEN": 6,
            "FEEDBACK_LINK_LIMIT_PER_ADDRESS": 12}


def make_link(app, client, login_as, customer, template, days=7):
    login_as(client, "f_sales")
    response = client.post(f"/feedback/customers/{customer}/link",
                           data={"version_id": latest_version(app, template), "days": days, "output": "link"})
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    url = re.search(r'id="feedback-link-url">([^<]+)<', response.get_data(as_text=True)).group(1)
    client.post("/logout")
    return url.split("localhost", 1)[1]


def test_the_customer_fills_the_form_once(app, client, login_as, fdept, customer, template):
    from modules.feedback.models import Link, Response
    path = make_link(app, client, login_as, customer, template)
    token = path.rsplit("/", 1)[1]
    assert len(token) >= 40
    with app.app_context():
        stored = db.session.scalars(select(Link)).one()
        assert stored.token_hash != token and token not in stored.token_hash
    public = app.test_client()
    page = public.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "示例贸易有限公司" in html and "客户满意度反馈表" in html and "服务满意度" in html
    for stored_value in ("王小明", "13800138000", "11010519491231002X", "KH-", "f_sales"):
        assert stored_value not in html
    done = public.post(path, data=ANSWERS)
    assert done.status_code == 200 and "您的回答已提交" in done.get_data(as_text=True)
    with app.app_context():
        r = db.session.scalars(select(Response)).one()
        assert r.by_customer and r.filled_by is None and r.customer_id == customer and r.owner_id == fdept.sales
        assert db.session.scalars(select(Link)).one().used_at is not None
    again = public.get(path)
    assert again.status_code == 410 and "已提交过" in again.get_data(as_text=True)
    assert public.post(path, data=ANSWERS).status_code == 410
    with app.app_context():
        assert len(db.session.scalars(select(Response)).all()) == 1
    # the owner is told: the work queue, the customer page, then read
    login_as(client, "f_sales")
    home = client.get("/").get_data(as_text=True)
    assert "客户自填、尚未查看的反馈表" in home and 'id="badge-feedback-index">1<' in home  # queue and menu badge
    assert "客户自填" in client.get(f"/customers/{customer}").get_data(as_text=True)
    client.get(f"/feedback/responses/{r.id}")
    home = client.get("/").get_data(as_text=True)
    assert "客户自填、尚未查看的反馈表" not in home and 'id="badge-feedback-index"' not in home


def test_required_answers_on_the_public_page(app, client, login_as, fdept, customer, template):
    path = make_link(app, client, login_as, customer, template)
    html = app.test_client().post(path, data={"q1": ""}).get_data(as_text=True)
    assert 'id="q1-error">此项为必填项。' in html and 'id="q2-error">此项为必填项。' in html
    assert app.test_client().get(path).status_code == 200  # not spent


def test_expired_and_tampered_links_are_refused(app, client, login_as, fdept, customer, template):
    from modules.feedback.models import Link
    path = make_link(app, client, login_as, customer, template)
    public = app.test_client()
    tampered = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    response = public.get(tampered)
    assert response.status_code == 404 and "此链接无效" in response.get_data(as_text=True)
    assert public.get("/f/<script>").status_code == 404
    with app.app_context():
        link = db.session.scalars(select(Link)).one()
        link.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    response = public.get(path)
    assert response.status_code == 410 and "已过期" in response.get_data(as_text=True)
    assert public.post(path, data=ANSWERS).status_code == 410


def test_a_link_of_a_department_that_stopped_using_feedback_is_refused(app, client, login_as, fdept, customer,
                                                                        template):
    from core import services
    from core.models import Department
    path = make_link(app, client, login_as, customer, template)
    with app.app_context():
        services.disable_module("test", "feedback", db.session.get(Department, fdept.id))
        db.session.commit()
    assert app.test_client().get(path).status_code == 404


def test_submissions_are_rate_limited_per_token_and_per_address(app, client, login_as, fdept, customer, template):
    from modules.feedback.models import Hit
    path = make_link(app, client, login_as, customer, template)
    public = app.test_client()
    for _ in range(3):
        assert public.get(path).status_code == 200
    with app.app_context():
        assert db.session.scalars(select(Hit)).all() == []  # showing the form writes nothing
    codes = [public.post(path, data={"q1": ""}).status_code for _ in range(7)]  # refused answers count too
    assert codes[:6] == [200] * 6 and codes[6] == 429
    response = public.get(path)
    assert response.status_code == 429 and "尝试次数过多" in response.get_data(as_text=True)
    assert public.post(path, data=ANSWERS).status_code == 429
    # posting guessed tokens from one address: refused past the address limit, whatever the token
    other = app.test_client()
    codes = [other.post(f"/f/guess{i}", data=ANSWERS, environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code
             for i in range(13)]
    assert codes[:12] == [404] * 12 and codes[12] == 429
    assert other.get(f"/f/{path.rsplit('/', 1)[1]}", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 429


def test_the_public_form_is_csrf_protected(app, client, login_as, fdept, customer, template):
    from modules.feedback.models import Response
    path = make_link(app, client, login_as, customer, template)
    app.config["WTF_CSRF_ENABLED"] = True
    public = app.test_client()
    assert public.post(path, data=ANSWERS).status_code == 400
    with app.app_context():
        assert db.session.scalars(select(Response)).all() == []
    token = csrf_token(public.get(path).get_data(as_text=True))
    assert token
    assert public.post(path, data={**ANSWERS, "csrf_token": token}).status_code == 200
    with app.app_context():
        assert len(db.session.scalars(select(Response)).all()) == 1
