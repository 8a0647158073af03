"""A feedback form from design to print in the browser: the head of D1 designs a template and
publishes it; a salesperson creates a one-time link for a customer; the customer, without an
account, fills it (with markup, which must stay text) once; the salesperson finds it on the
customer page, marked as filled by the customer, and prints the filled PDF."""
import re
import subprocess

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror=alert("feedback")><script>alert(1)</script>'


def _enable_feedback(live_server):
    from sqlalchemy import select

    from core import services
    from core.db import db
    from core.models import Department, ModuleEnablement

    def enable():
        dept = db.session.execute(select(Department).where(Department.code == "D1")).scalar_one()
        done = db.session.execute(select(ModuleEnablement).where(
            ModuleEnablement.module == "feedback", ModuleEnablement.department_id == dept.id)).first()
        if done is None:
            services.enable_module("e2e", "feedback", dept)
    live_server.run(enable)


def _question(browse, page, kind, label, required=False, options=""):
    browse.submit(page, "#feedback-question-add")
    page.select_option("#kind", kind)
    page.fill("#label", label)
    if options:
        page.fill("#options", options)
    if required:
        page.check("#required")
    browse.submit(page, "#feedback-question-save")


def test_design_fill_through_the_public_link_and_print(browse, live_server, data, tmp_path):
    _enable_feedback(live_server)
    customer_id, number = data.customer("sales_d1", name="反馈测试客户", phone=data.mobile())

    head = browse.sign_in("head_d1")
    browse.open_menu(head, "feedback-index")
    browse.submit(head, "#feedback-template-new")
    head.fill("#name", "年度客户满意度调查")
    browse.submit(head, "#feedback-template-save")
    _question(browse, head, "short", "您的意见", required=True)
    _question(browse, head, "rating", "服务满意度", required=True)
    _question(browse, head, "single", "联系渠道", options="电话\n微信")
    expect(head.locator("#feedback-preview")).to_contain_text("服务满意度")
    browse.submit(head, "#feedback-publish")
    expect(head.locator("#feedback-versions")).to_contain_text("v1")

    sales = browse.sign_in("sales_d1")
    sales.goto(f"/customers/{customer_id}")
    browse.submit(sales, "#feedback-panel-link")
    sales.fill("#days", "3")
    browse.submit(sales, "#feedback-link-create")
    url = sales.locator("#feedback-link-url").inner_text().strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/f/[A-Za-z0-9_-]{43}", url)

    customer = browse.new_page()
    customer.goto(url)
    expect(customer.locator("h1")).to_have_text("年度客户满意度调查")
    assert "反馈测试客户" not in customer.content() and number not in customer.content()
    expect(customer.locator("#logout")).to_have_count(0)
    browse.submit(customer, "#feedback-public-submit")  # empty: refused, field by field
    expect(customer.locator("#q1-error")).to_have_text("此项为必填项。")
    expect(customer.locator("#q2-error")).to_have_text("此项为必填项。")
    customer.fill("#q1", XSS + " 服务很好")
    customer.check("#q2-4")  # 5
    customer.check("#q3-1")  # 微信
    browse.submit(customer, "#feedback-public-submit")
    expect(customer.locator("#feedback-thanks")).to_be_visible()
    customer.goto(url)
    expect(customer.locator("#feedback-refused")).to_contain_text("已提交过")

    sales.goto("/")
    expect(sales.locator("#work-queue")).to_contain_text("客户自填、尚未查看的反馈表")
    sales.goto(f"/customers/{customer_id}")
    expect(sales.locator("#feedback-panel-list")).to_contain_text("客户自填")
    browse.submit(sales, "#feedback-panel-list a")
    expect(sales.locator("#feedback-by-customer")).to_be_visible()
    expect(sales.locator("#feedback-answers")).to_contain_text("<script>alert(1)</script>")
    pdf_url = sales.locator("#feedback-response-pdf").get_attribute("href")
    response = sales.context.request.get(pdf_url)
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    path = tmp_path / "filled.pdf"
    path.write_bytes(response.body())
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = re.sub(r"\s+", "", text)
    assert "年度客户满意度调查" in flat and "<script>alert(1)</script>" in flat and "客户（一次性链接）" in flat
