"""One complaint from intake to closing in the browser: a salesperson registers it from the
customer page (with markup in the description, which must stay text), accepts, handles, records
the resolution and the return visit, and closes it; the head of D1 then sees it closed and filed
in the customer's archive. D2's staff get 404."""
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror=alert("complaint")><script>alert(1)</script>'


def _enable_complaints(live_server):
    from sqlalchemy import select

    from core import services
    from core.db import db
    from core.models import Department, ModuleEnablement

    def enable():
        dept = db.session.execute(select(Department).where(Department.code == "D1")).scalar_one()
        done = db.session.execute(select(ModuleEnablement).where(
            ModuleEnablement.module == "complaints", ModuleEnablement.department_id == dept.id)).first()
        if done is None:
            services.enable_module("e2e", "complaints", dept)
    live_server.run(enable)


def _step(page, name, **fields):
    form = page.locator(f"#complaints-step-{name}")
    for field, value in fields.items():
        if field == "satisfaction":
            form.locator("select[name=satisfaction]").select_option(value)
        else:
            form.locator(f"[name={field}]").fill(value)
    with page.expect_navigation():
        form.locator(f"#complaints-do-{name}").click()


def test_a_complaint_from_intake_to_closing(browse, live_server, data):
    _enable_complaints(live_server)
    customer_id, _number = data.customer("sales_d1", name="投诉测试客户", phone=data.mobile(),
                                         id_number=data.id_number())
    page = browse.sign_in("sales_d1")
    expect(page.locator("#menu-complaints-index")).to_be_visible()
    page.goto(f"/customers/{customer_id}")
    browse.submit(page, "#complaints-panel-new")
    page.select_option("#channel", "wechat")
    page.select_option("#category", "交付延误")
    page.select_option("#severity", "serious")
    page.fill("#description", XSS + " 货物晚到三天")
    page.fill("#customer_request", "赔偿运费")
    browse.submit(page, "#complaints-save")
    expect(page.locator("#complaints-status")).to_have_text("新建")
    expect(page.locator("#complaints-description")).to_contain_text("<script>alert(1)</script>")
    number = page.locator("#complaints-number").inner_text()
    assert re.fullmatch(r"TS-\d{4}-\d{6}", number)
    expect(page.locator("#complaints-badge")).not_to_have_text("0")

    _step(page, "accept", comment="已电话联系客户")
    expect(page.locator("#complaints-status")).to_have_text("已受理")
    _step(page, "start")
    _step(page, "resolve", cause="物流延误", measures="补发并退运费", result="客户已收到货物")
    expect(page.locator("#complaints-status")).to_have_text("待回访")
    expect(page.locator("#complaints-step-close")).to_have_count(0)  # no visit yet
    _step(page, "visit", satisfaction="4", visit_comment="基本满意")
    expect(page.locator("#complaints-satisfaction")).to_contain_text("4 / 5")
    _step(page, "close", comment="结案")
    expect(page.locator("#complaints-status")).to_have_text("已关闭")
    expect(page.locator("#complaints-archive")).to_contain_text("DA-")
    expect(page.locator("#complaints-edit")).to_have_count(0)
    expect(page.locator("#complaints-step-reopen")).to_have_count(1)
    history = page.locator("#complaints-history li")
    expect(history).to_have_count(6)
    url = page.url

    head = browse.sign_in("head_d1")
    head.goto(url)
    expect(head.locator("#complaints-status")).to_have_text("已关闭")

    other = browse.sign_in("sales_d2")
    assert other.goto(url).status == 404
