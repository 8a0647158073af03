"""A salesperson reports a security incident; the security officer (no department) triages,
contains, investigates, notifies and closes it with a summary, and opens the incident report
PDF; the reporter then sees the closed ticket and cannot handle it."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _enable_incidents(live_server):
    from core import services
    from core.db import db
    from core.models import Department, ModuleEnablement

    def enable():
        d1 = db.session.query(Department).filter_by(code="D1").one()
        if not db.session.query(ModuleEnablement).filter_by(module="incidents", department_id=d1.id).count():
            services.enable_module("e2e", "incidents", d1)

    live_server.run(enable)


def test_report_to_closing(browse, live_server):
    _enable_incidents(live_server)
    reporter = browse.sign_in("sales_d1")
    browse.open_menu(reporter, "incidents-index")
    browse.submit(reporter, "#incidents-new")
    reporter.fill("#title", "<b>误发</b>客户表格")
    reporter.fill("#noticed_at", "2026-01-05T09:30")
    reporter.fill("#how_found", "同事提醒")
    reporter.fill("#description", "把含客户手机号的表格发给了外部邮箱")
    browse.submit(reporter, "#submit")
    expect(reporter.locator("#incident-status")).to_have_text("已报告")
    expect(reporter.locator("#incident-title")).to_have_text("<b>误发</b>客户表格")
    ticket = reporter.url
    assert reporter.locator("#assess-form").count() == 0

    security = browse.sign_in("security")
    browse.open_menu(security, "incidents-index")
    security.goto(ticket)
    security.select_option("#severity", "general")
    security.check("#data_classes-1")
    security.fill("#triage_note", "研判：一般事件，涉及手机号")
    browse.submit(security, "#assess-submit")
    expect(security.locator("#incident-status")).to_have_text("已研判")
    for label in ("已控制", "已调查", "已通知"):
        security.fill("#step-form textarea[name=note]", f"完成：{label}")
        browse.submit(security, "#step-submit")
        expect(security.locator("#incident-status")).to_have_text(label)
    security.fill("#root_cause", "外发邮件未审批")
    security.fill("#measures", "要求对方删除")
    security.fill("#improvements", "启用外发审批")
    security.fill("#responsible", "王主管")
    browse.submit(security, "#close-submit")
    expect(security.locator("#incident-status")).to_have_text("已关闭")
    expect(security.locator("#steps tbody tr")).to_have_count(6)
    expect(security.locator("#summary")).to_contain_text("启用外发审批")
    pdf = security.request.get(security.locator("#report-pdf").get_attribute("href"))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"

    reporter.goto(ticket)
    expect(reporter.locator("#incident-status")).to_have_text("已关闭")
    assert reporter.locator("#close-form, #step-form, #report-pdf").count() == 0
