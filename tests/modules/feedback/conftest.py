"""Fixtures of the feedback tests: D1 uses feedback with a head and two sales users; D2 too, with
its own head. A published template for any customer type is ready to fill."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from core.db import db

QUESTIONS = [
    {"kind": "short", "label": "您的称呼", "help": "", "required": True},
    {"kind": "rating", "label": "服务满意度", "help": "1 最差，5 最好", "required": True},
    {"kind": "single", "label": "联系渠道", "options": "电话\n微信\n邮件", "required": False},
    {"kind": "multi", "label": "关注的产品", "options": "产品A\n产品B\n产品C", "required": False},
    {"kind": "long", "label": "意见和建议", "help": "", "required": False},
    {"kind": "yesno", "label": "是否愿意推荐", "required": False},
    {"kind": "number", "label": "年采购量", "required": False},
    {"kind": "date", "label": "下次联系日期", "required": False},
]


@pytest.fixture
def fdept(app, make_user, enable_module, department):
    enable_module("D1", "feedback")
    enable_module("D2", "feedback")
    return SimpleNamespace(
        id=department("D1"), d2=department("D2"),
        head=make_user("f_head", "head", "D1"), sales=make_user("f_sales", "sales", "D1"),
        sales_b=make_user("f_sales_b", "sales", "D1"), head2=make_user("f_head2", "head", "D2"))


@pytest.fixture
def customer(fdept, make_customer):
    return make_customer("f_sales", name="王小明", phone="13800138000", id_number="11010519491231002X")


def design(client, name="客户满意度反馈表", questions=QUESTIONS, publish=True, **target):
    """Create a template through the pages as a head; returns its id."""
    response = client.post("/feedback/templates/new", data={"name": name, "customer_kind": "",
                                                             "customer_status": "", "grade": "", "active": "y",
                                                             **target})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    template_id = int(re.search(r"/templates/(\d+)", response.headers["Location"]).group(1))
    for q in questions:
        data = {k: v for k, v in q.items() if k != "required"}
        if q.get("required"):
            data["required"] = "y"
        r = client.post(f"/feedback/templates/{template_id}/questions/new", data=data)
        assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    if publish:
        assert client.post(f"/feedback/templates/{template_id}/publish").status_code == 302
    return template_id


@pytest.fixture
def template(app, client, login_as, fdept):
    login_as(client, "f_head", role="head")
    template_id = design(client)
    client.post("/logout")
    return template_id


def latest_version(app, template_id):
    from modules.feedback.models import Template
    with app.app_context():
        return db.session.get(Template, template_id).latest.id


ANSWERS = {"q1": "王先生", "q2": "4", "q3": "微信", "q4": ["产品A", "产品C"], "q5": "很好", "q6": "yes",
           "q7": "120", "q8": "2026-12-24"}
