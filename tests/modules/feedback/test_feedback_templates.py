"""Templates: designed by the head from field kinds, previewed, published as versions; a filled
form keeps its version's questions after the template changes; required answers are refused
with field-level Chinese errors; the customer page's timeline lists the customer's forms."""
import re

from sqlalchemy import delete, select

from core.audit import AuditEntry
from core.db import db

from .conftest import ANSWERS, design


def test_head_designs_previews_and_publishes_versions(app, client, login_as, fdept):
    login_as(client, "f_head", role="head")
    template_id = design(client, publish=False)
    html = client.get(f"/feedback/templates/{template_id}").get_data(as_text=True)
    assert "服务满意度" in html and "feedback-preview" in html and "发布新版本" in html
    assert client.post(f"/feedback/templates/{template_id}/publish").status_code == 302
    # nothing changed: a second publish is refused
    client.post(f"/feedback/templates/{template_id}/publish")
    html = client.get(f"/feedback/templates/{template_id}").get_data(as_text=True)
    assert "v1" in html and "v2" not in html
    # move the rating first, publish again
    client.post(f"/feedback/templates/{template_id}/questions/q2/move", data={"direction": "up"})
    client.post(f"/feedback/templates/{template_id}/publish")
    from modules.feedback.models import Template
    with app.app_context():
        t = db.session.get(Template, template_id)
        assert [v.number for v in t.versions] == [1, 2]
        assert [q["key"] for q in t.versions[1].question_list][:2] == ["q2", "q1"]
        assert [q["key"] for q in t.versions[0].question_list][:2] == ["q1", "q2"]
        actions = [e.action for e in db.session.scalars(select(AuditEntry).where(AuditEntry.target_type == "feedback_template"))]
        assert actions.count("feedback.template.published") == 2 and "feedback.template.created" in actions


def test_a_question_needs_a_label_and_choices_need_options(client, login_as, fdept):
    login_as(client, "f_head", role="head")
    template_id = design(client, questions=[], publish=False)
    r = client.post(f"/feedback/templates/{template_id}/questions/new",
                    data={"kind": "single", "label": "渠道", "options": "电话"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "options-error" in html and "渠道" in html
    r = client.post(f"/feedback/templates/{template_id}/questions/new", data={"kind": "text", "label": ""})
    assert r.status_code == 400 and re.search(r'id="label-error">此项为必填项。</div>', r.get_data(as_text=True))
    html = client.get(f"/feedback/templates/{template_id}").get_data(as_text=True)
    assert "还没有题目" in html


def test_staff_cannot_design(client, login_as, fdept):
    login_as(client, "f_sales")
    assert client.get("/feedback/templates/new").status_code == 403


def test_a_filled_form_keeps_its_versions_questions(app, client, login_as, fdept, customer, template):
    login_as(client, "f_sales")
    response = client.post(f"/feedback/customers/{customer}/fill", data={"template_id": template, **ANSWERS})
    assert response.status_code == 302
    response_url = response.headers["Location"]
    client.post("/logout")
    login_as(client, "f_head", role="head")
    client.post(f"/feedback/templates/{template}/questions/q2/edit",
                data={"kind": "rating", "label": "整体评价（新）", "required": "y"})
    client.post(f"/feedback/templates/{template}/questions/q5/delete")
    assert client.post(f"/feedback/templates/{template}/publish").status_code == 302
    client.post("/logout")
    login_as(client, "f_sales")
    html = client.get(response_url).get_data(as_text=True)
    assert "服务满意度" in html and "整体评价（新）" not in html and "意见和建议" in html and "很好" in html
    assert "v1" in html
    # a new form is filled against v2
    html = client.get(f"/feedback/customers/{customer}/fill?template_id={template}").get_data(as_text=True)
    assert "整体评价（新）" in html and "意见和建议" not in html and "v2" in html
    # the old version stays readable
    from modules.feedback.models import Template
    with app.app_context():
        v1, v2 = (v.id for v in db.session.get(Template, template).versions)
    old = client.get(f"/feedback/versions/{v1}").get_data(as_text=True)
    assert "服务满意度" in old and "意见和建议" in old and "整体评价（新）" not in old
    assert "整体评价（新）" in client.get(f"/feedback/versions/{v2}").get_data(as_text=True)


def test_required_answers_are_refused_with_chinese_field_errors(app, client, login_as, fdept, customer, template):
    login_as(client, "f_sales")
    html = client.post(f"/feedback/customers/{customer}/fill",
                       data={"template_id": template, "q1": "   ", "q7": "十二", "q8": "2026-13-45"}).get_data(as_text=True)
    assert 'id="q1-error">此项为必填项。' in html and 'id="q2-error">此项为必填项。' in html
    assert 'id="q7-error">请输入数字' in html and 'id="q8-error">请输入日期' in html
    from modules.feedback.models import Response
    with app.app_context():
        assert db.session.scalars(select(Response)).all() == []


def test_answers_are_encrypted_and_on_the_timeline(app, client, login_as, fdept, customer, template):
    login_as(client, "f_sales")
    client.post(f"/feedback/customers/{customer}/fill", data={"template_id": template, **ANSWERS})
    from modules.feedback.models import Response
    with app.app_context():
        r = db.session.scalars(select(Response)).one()
        assert "王先生" not in (r.answers_ct or "") and r.filled_by == fdept.sales and not r.by_customer
        assert r.version.number == 1
    html = client.get(f"/customers/{customer}").get_data(as_text=True)
    assert "反馈表 客户满意度反馈表（v1）" in html and "员工填写" in html
    assert "timeline-feedback" in html.split('id="timeline"', 1)[1]
    # a role without feedback.view sees the customer but not its feedback, on the timeline neither
    from core.models import RoleGrant
    with app.app_context():
        db.session.execute(delete(RoleGrant).where(RoleGrant.role == "sales", RoleGrant.permission == "feedback.view"))
        db.session.commit()
    html = client.get(f"/customers/{customer}").get_data(as_text=True)
    assert 'id="timeline"' in html and "timeline-feedback" not in html and "客户满意度反馈表" not in html


def test_customers_out_of_remit_answer_404(app, client, login_as, fdept, customer, template):
    login_as(client, "f_sales_b")
    assert client.get(f"/feedback/customers/{customer}/fill").status_code == 404
    client.post("/logout")
    login_as(client, "f_sales")
    r = client.post(f"/feedback/customers/{customer}/fill", data={"template_id": template, **ANSWERS})
    response_id = int(re.search(r"/responses/(\d+)", r.headers["Location"]).group(1))
    client.post("/logout")
    login_as(client, "f_sales_b")
    assert client.get(f"/feedback/responses/{response_id}").status_code == 404
    client.post("/logout")
    login_as(client, "f_head2", role="head", dept="D2")
    assert client.get(f"/feedback/templates/{template}").status_code == 404


def _action_error(html):
    m = re.search(r'<div class="invalid-feedback d-block[^"]*" id="feedback-action-error">(.*?)</div>', html, re.S)
    assert m, "no error next to the action"
    return m.group(1)


def test_a_refused_design_action_answers_400_with_the_message_next_to_it(app, client, login_as, fdept):
    login_as(client, "f_head", role="head")
    template_id = design(client)  # published as v1
    from modules.feedback import services
    from modules.feedback.models import Template

    def published():
        with app.app_context():
            return [v.number for v in db.session.get(Template, template_id).versions], len(db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "feedback.template.published")).all())
    before = published()
    r = client.post(f"/feedback/templates/{template_id}/publish")
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "与上一版本相比没有变化。" in _action_error(html)
    assert "alert-danger" not in html
    assert published() == before == ([1], 1)
    # a question that is not there: refused, the order of the draft unchanged
    r = client.post(f"/feedback/templates/{template_id}/questions/nope/move", data={"direction": "up"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "没有这道题目。" in _action_error(html)
    with app.app_context():
        t = db.session.get(Template, template_id)
        assert [q["key"] for q in services.questions_of(t)] == [q["key"] for q in t.versions[0].question_list]
