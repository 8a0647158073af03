"""Follow-up plans (客户跟踪计划) from a filled form: actions with owners and due dates, due and
overdue lists for owners and the head, completion with a result; and the head's summary per
template and period: distributions as server-drawn charts, averages, free text, CSV."""
import csv
import io
import re
from datetime import timedelta

from sqlalchemy import select

from core.api import local_today
from core.audit import AuditEntry
from core.db import db

from .conftest import ANSWERS


def fill(client, customer, template, **answers):
    r = client.post(f"/feedback/customers/{customer}/fill", data={"template_id": template, **ANSWERS, **answers})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    return int(re.search(r"/responses/(\d+)", r.headers["Location"]).group(1))


def test_a_follow_up_plan_with_due_and_overdue_actions(app, client, login_as, fdept, customer, template):
    login_as(client, "f_sales")
    response_id = fill(client, customer, template)
    with app.app_context():
        today = local_today()
    page = client.post(f"/feedback/responses/{response_id}/plan", data={"problems": "", "action_text": [""]})
    assert "problems-error" in page.get_data(as_text=True)
    page = client.post(f"/feedback/responses/{response_id}/plan", data={"problems": "交货慢"})
    assert 'id="actions-error">请至少填写一项措施。' in page.get_data(as_text=True)
    r = client.post(f"/feedback/responses/{response_id}/plan", data={
        "problems": "交货慢，<b>包装</b>差",
        "action_text": ["电话回访", "改进包装", "寄送样品"],
        "action_owner": [str(fdept.sales), str(fdept.sales_b), str(fdept.sales)],
        "action_due": [(today - timedelta(days=2)).isoformat(), (today + timedelta(days=1)).isoformat(),
                       (today + timedelta(days=30)).isoformat()]})
    assert r.status_code == 302
    from modules.feedback.models import Action, Plan
    with app.app_context():
        plan = db.session.scalars(select(Plan)).one()
        assert "交货慢" not in (plan.problems_ct or "") and len(plan.actions) == 3
        overdue_id = next(a.id for a in plan.actions if a.due_on < today)
    html = client.get("/feedback/actions").get_data(as_text=True)
    assert "电话回访" in html and "已逾期" in html and "寄送样品" in html and "改进包装" not in html
    assert "已逾期的跟踪措施" in client.get("/").get_data(as_text=True)
    detail = client.get(f"/feedback/responses/{response_id}").get_data(as_text=True)
    assert "&lt;b&gt;包装&lt;/b&gt;" in detail
    client.post("/logout")
    login_as(client, "f_sales_b")
    html = client.get("/feedback/actions").get_data(as_text=True)
    assert "改进包装" in html and "即将到期" in html and "电话回访" not in html
    assert client.get(f"/feedback/actions/{overdue_id}/complete").status_code == 404  # not theirs, customer not theirs
    client.post("/logout")
    login_as(client, "f_head", role="head")
    html = client.get("/feedback/actions").get_data(as_text=True)
    assert "电话回访" in html and "改进包装" in html and "寄送样品" in html
    client.post("/logout")
    login_as(client, "f_sales")
    assert "result-error" in client.post(f"/feedback/actions/{overdue_id}/complete",
                                         data={"result": " "}).get_data(as_text=True)
    assert client.post(f"/feedback/actions/{overdue_id}/complete", data={"result": "客户已满意"}).status_code == 302
    with app.app_context():
        a = db.session.get(Action, overdue_id)
        assert a.done_at is not None and a.result == "客户已满意" and a.done_by == fdept.sales
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "feedback.action.completed")).all()
        assert entries and "客户已满意" not in entries[-1].details
    html = client.get("/feedback/actions").get_data(as_text=True)
    assert "电话回访" not in html and "已逾期的跟踪措施" not in client.get("/").get_data(as_text=True)


def test_the_summary_of_known_answers(app, client, login_as, fdept, customer, make_customer, template):
    other = make_customer("f_sales", name="李四")
    login_as(client, "f_sales")
    fill(client, customer, template, q2="5", q3="电话", q4=["产品A"], q5="=HYPERLINK(\"http://x\")", q7="100")
    fill(client, other, template, q2="3", q3="电话", q4=["产品A", "产品B"], q5="<script>x</script>", q7="50")
    fill(client, other, template, q2="4", q3="微信", q4=[], q5="", q6="no", q7="")
    assert client.get(f"/feedback/templates/{template}/summary").status_code == 403
    client.post("/logout")
    login_as(client, "f_head", role="head")
    html = client.get(f"/feedback/templates/{template}/summary").get_data(as_text=True)
    assert "填写份数：3，其中客户自填：0" in html
    assert 'id="feedback-chart-q2"' in html and 'id="feedback-chart-q3"' in html and "<svg" in html
    assert "平均值: 4.0" in html and "平均值: 75.0" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    from core.models import User
    from modules.feedback.models import Template
    from modules.feedback.services import summary
    with app.test_request_context():
        head = db.session.get(User, fdept.head)
        figures = summary(head, db.session.get(Template, template), local_today(), local_today())
        items = {i["key"]: i for i in figures["items"]}
        assert items["q2"]["counts"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 1} and items["q2"]["average"] == 4.0
        assert items["q3"]["counts"] == {"电话": 2, "微信": 1, "邮件": 0}
        assert items["q4"]["counts"] == {"产品A": 2, "产品B": 1, "产品C": 0}
        assert items["q6"]["counts"] == {"是": 2, "否": 1}
        assert sorted(items["q5"]["texts"]) == sorted(["=HYPERLINK(\"http://x\")", "<script>x</script>", "很好"][:2])
        assert items["q7"]["average"] == 75.0
    # a period without forms
    html = client.get(f"/feedback/templates/{template}/summary?start=2020-01-01&end=2020-01-31").get_data(as_text=True)
    assert "填写份数：0" in html
    r = client.get(f"/feedback/templates/{template}/summary.csv")
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert rows[0] == ["题目", "类型", "选项/项目", "数量/值"]
    assert ["服务满意度", "评分（1-5）", "平均值", "4.0"] in rows
    assert ["联系渠道", "单选", "电话", "2"] in rows
    formula = [row for row in rows if "HYPERLINK" in row[3]][0]
    assert not formula[3].startswith("=")
    with app.app_context():
        assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "feedback.summary.exported")).all()


def test_a_rekeyed_customer_keeps_its_feedback_readable(app, client, login_as, fdept, customer, template):
    login_as(client, "f_sales")
    response_id = fill(client, customer, template, q5="保密意见")
    with app.app_context():
        today = local_today()
    client.post(f"/feedback/responses/{response_id}/plan", data={
        "problems": "问题甲", "action_text": ["措施乙"], "action_owner": [str(fdept.sales)],
        "action_due": [today.isoformat()]})
    from core.models import User
    from modules.customers import Customer
    from modules.customers.services import rekey_customer
    from modules.feedback.models import Response
    from modules.feedback.services import answers_of
    with app.test_request_context():
        counts = rekey_customer(db.session.get(User, fdept.sales), db.session.get(Customer, customer), reason="test")
        db.session.commit()
        assert counts["feedback"] == 3
    with app.app_context():
        r = db.session.get(Response, response_id)
        assert answers_of(r)["q5"] == "保密意见"
        assert r.plans[0].problems == "问题甲" and r.plans[0].actions[0].description == "措施乙"
