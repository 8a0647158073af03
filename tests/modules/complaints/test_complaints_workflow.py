"""Intake, the workflow steps allowed and refused by role and department, the duplicate flag,
closed complaints, and markup typed into the fields staying inert."""
import json

from core.db import db

from .conftest import audit_actions


def step(client, complaint_id, name, **data):
    return client.post(f"/complaints/{complaint_id}/step/{name}", data=data)


def test_intake_from_the_customer_page_numbers_encrypts_and_audits(app, client, login_as, cdept, customer,
                                                                    file_complaint, complaint_row):
    login_as(client, "c_service")
    page = client.get(f"/customers/{customer}").get_data(as_text=True)
    assert f"/complaints/new?customer_id={customer}" in page  # the panel's intake button
    cid = file_complaint(client, customer)
    c = complaint_row(cid)
    assert c.number.startswith("TS-") and c.number.endswith("-000001")
    assert c.status == "new" and c.handler_id == cdept.service and c.department_id == cdept.id
    assert "产品有质量问题" not in (c.description_ct or "") and c.description_ct
    with app.app_context():
        from modules.complaints.models import Complaint
        assert db.session.get(Complaint, cid).description == "产品有质量问题"
    entry = audit_actions(app, "complaints.complaint.created")[-1]
    assert "产品有质量问题" not in entry.details and "退货" not in entry.details
    html = client.get(f"/complaints/{cid}").get_data(as_text=True)
    assert "产品有质量问题" in html and "新建" in html


def test_intake_from_the_list_by_customer_number_only_in_remit(app, client, login_as, cdept, customer,
                                                                complaint_row):
    from modules.customers import Customer
    with app.app_context():
        number = db.session.get(Customer, customer).number
    login_as(client, "c_service2", role="service", dept="D2")
    r = client.post("/complaints/new", data={"customer_number": number, "channel": "phone", "category": "产品质量",
                                             "severity": "normal", "description": "x"})
    assert r.status_code == 400 and "您的权限范围内没有此编号的客户" in r.get_data(as_text=True)
    client.post("/logout")
    login_as(client, "c_service")
    r = client.post("/complaints/new", data={"customer_number": number.lower(), "channel": "wechat",
                                             "category": "服务态度", "severity": "urgent", "description": "态度差"})
    assert r.status_code == 302


def test_a_customer_outside_the_remit_answers_404_at_intake(app, client, login_as, cdept, customer):
    login_as(client, "c_service2", role="service", dept="D2")
    assert client.get(f"/complaints/new?customer_id={customer}").status_code == 404
    assert audit_actions(app, "core.access.row_denied")


def test_second_open_complaint_same_category_within_7_days_is_flagged(app, client, login_as, cdept, customer,
                                                                      file_complaint, complaint_row):
    login_as(client, "c_service")
    first = file_complaint(client, customer)
    other_category = file_complaint(client, customer, category="收费争议")
    second = file_complaint(client, customer)
    assert complaint_row(first).duplicate_of_id is None
    assert complaint_row(other_category).duplicate_of_id is None
    assert complaint_row(second).duplicate_of_id == first
    html = client.get(f"/complaints/{second}").get_data(as_text=True)
    assert 'id="complaints-duplicate"' in html and f"/complaints/{first}" in html


def test_an_old_or_closed_complaint_is_no_duplicate(app, cdept, customer, user_id):
    from datetime import timedelta

    from core.models import User, utcnow
    from modules.complaints import services
    from modules.customers import Customer
    with app.test_request_context():
        actor = db.session.get(User, cdept.service)
        cust = db.session.get(Customer, customer)
        old = services.create_complaint(actor, cust, INTAKE_DATA, now=utcnow() - timedelta(days=8))
        new = services.create_complaint(actor, cust, INTAKE_DATA)
        assert new.duplicate_of is None and old.duplicate_of is None


INTAKE_DATA = {"channel": "phone", "category": "产品质量", "severity": "normal", "description": "d"}


def _through_to_follow_up(client, cid):
    assert step(client, cid, "accept").status_code == 302
    assert step(client, cid, "start").status_code == 302
    assert step(client, cid, "resolve", cause="原因", measures="措施", result="结果").status_code == 302


def test_the_whole_workflow_by_the_handler(app, client, login_as, cdept, customer, file_complaint, complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    _through_to_follow_up(client, cid)
    c = complaint_row(cid)
    assert c.status == "follow_up" and c.responded_at is not None and c.resolved_at is not None
    step(client, cid, "close")  # no return visit yet: refused
    assert complaint_row(cid).status == "follow_up"
    step(client, cid, "visit", satisfaction="4", visit_comment="满意")
    assert complaint_row(cid).satisfaction == 4
    step(client, cid, "close", comment="结案")
    c = complaint_row(cid)
    assert c.status == "closed" and c.closed_at is not None
    with app.app_context():
        from modules.complaints.models import Complaint
        steps = [(s.action, s.actor_id) for s in db.session.get(Complaint, cid).steps]
    assert [a for a, _ in steps] == ["created", "accepted", "started", "resolved", "visited", "closed"]
    assert {who for _, who in steps} == {cdept.service}
    entries = audit_actions(app, "complaints.complaint.step")
    assert [json.loads(e.details)["step"] for e in entries] == ["accepted", "started", "resolved", "visited",
                                                                 "closed"]
    assert all("原因" not in e.details and "满意" not in e.details for e in entries)


def test_a_closed_complaint_cannot_be_edited_only_reopened_with_a_reason(app, client, login_as, cdept, customer,
                                                                         file_complaint, complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    _through_to_follow_up(client, cid)
    step(client, cid, "visit", satisfaction="2")
    step(client, cid, "close")
    r = client.post(f"/complaints/{cid}/edit", data={**INTAKE_DATA, "description": "改了"})
    assert r.status_code == 302 and complaint_row(cid).status == "closed"
    with app.app_context():
        from modules.complaints.models import Complaint
        assert db.session.get(Complaint, cid).description == "产品有质量问题"
    assert client.post(f"/complaints/{cid}/attachments", data={}).status_code in (302, 400)
    step(client, cid, "reopen")  # no reason
    assert complaint_row(cid).status == "closed"
    step(client, cid, "reopen", comment="客户再次来电")
    c = complaint_row(cid)
    assert c.status == "in_progress" and c.resolved_at is None and c.satisfaction is None


def test_return_sends_back_to_handling_or_to_the_head(app, client, login_as, cdept, customer, file_complaint,
                                                      complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    _through_to_follow_up(client, cid)
    step(client, cid, "return")  # a reason is required
    assert complaint_row(cid).status == "follow_up"
    step(client, cid, "return", comment="措施不够")
    assert complaint_row(cid).status == "in_progress"
    step(client, cid, "return", comment="请另派他人")
    c = complaint_row(cid)
    assert c.status == "new" and c.handler_id is None


def test_staff_act_only_on_their_own_and_heads_on_any_of_the_department(app, client, login_as, cdept, customer,
                                                                       file_complaint, complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    client.post("/logout")
    # the sales colleague of the same department does not even see it (neither handler nor author)
    login_as(client, "c_sales", role="sales")
    assert client.get(f"/complaints/{cid}").status_code == 404
    assert step(client, cid, "accept").status_code == 404
    client.post("/logout")
    # staff may not assign
    login_as(client, "c_service")
    assert step(client, cid, "assign", handler_id=str(cdept.sales)).status_code == 403
    assert complaint_row(cid).handler_id == cdept.service
    client.post("/logout")
    # the head assigns to the sales colleague
    login_as(client, "c_head", role="head")
    assert step(client, cid, "assign", handler_id=str(cdept.sales)).status_code == 302
    assert complaint_row(cid).handler_id == cdept.sales
    client.post("/logout")
    # the author still sees it, but it is no longer theirs to handle: 403, audited
    login_as(client, "c_service")
    assert client.get(f"/complaints/{cid}").status_code == 200
    before = len(audit_actions(app, "core.access.denied"))
    assert step(client, cid, "accept").status_code == 403
    assert len(audit_actions(app, "core.access.denied")) == before + 1
    assert complaint_row(cid).status == "new"
    client.post("/logout")
    login_as(client, "c_sales", role="sales")
    assert step(client, cid, "accept").status_code == 302
    client.post("/logout")
    # the head closes any complaint of the department
    login_as(client, "c_head", role="head")
    assert step(client, cid, "start").status_code == 302
    step(client, cid, "resolve", cause="a", measures="b", result="c")
    step(client, cid, "visit", satisfaction="5")
    step(client, cid, "close")
    assert complaint_row(cid).status == "closed"


def test_nobody_outside_the_department_sees_or_acts_404_audited(app, client, login_as, cdept, customer,
                                                               file_complaint, complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    client.post("/logout")
    for username, role in (("c_head2", "head"), ("c_service2", "service")):
        login_as(client, username, role=role, dept="D2")
        before = len(audit_actions(app, "core.access.row_denied"))
        for url in (f"/complaints/{cid}", f"/complaints/{cid}/edit", f"/complaints/{cid}/form.pdf"):
            assert client.get(url).status_code == 404, url
        for name in ("accept", "assign", "close", "reopen"):
            assert step(client, cid, name, handler_id=str(cdept.head2), comment="x").status_code == 404
        assert len(audit_actions(app, "core.access.row_denied")) >= before + 7
        assert cid not in [c for c in client.get("/complaints/?status=all").get_data(as_text=True)]
        assert complaint_row(cid).number not in client.get("/complaints/?status=all").get_data(as_text=True)
        client.post("/logout")
    assert complaint_row(cid).status == "new"


def test_a_head_cannot_assign_outside_the_department(app, client, login_as, cdept, customer, file_complaint,
                                                     complaint_row):
    login_as(client, "c_head", role="head")
    cid = file_complaint(client, customer, handler_id=str(cdept.service))
    step(client, cid, "assign", handler_id=str(cdept.service2))
    assert complaint_row(cid).handler_id == cdept.service


def test_wrong_state_steps_are_refused_without_change(app, client, login_as, cdept, customer, file_complaint,
                                                      complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    for name in ("start", "resolve", "visit", "close", "reopen"):
        r = step(client, cid, name, comment="x", cause="a", measures="b", result="c", satisfaction="3")
        assert r.status_code == 400 and 'id="complaints-step-error"' in r.get_data(as_text=True)
        assert complaint_row(cid).status == "new", name


def test_edit_records_field_names_only(app, client, login_as, cdept, customer, file_complaint, complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    r = client.post(f"/complaints/{cid}/edit", data={**INTAKE_DATA, "severity": "urgent", "description": "新描述"})
    assert r.status_code == 302
    c = complaint_row(cid)
    assert c.severity == "urgent"
    entry = audit_actions(app, "complaints.complaint.updated")[-1]
    assert json.loads(entry.details)["fields"] == ["severity", "description", "customer_request"] or \
        "新描述" not in entry.details


XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>{{7*7}}'


def test_markup_in_every_field_is_inert_in_the_pages(app, client, login_as, cdept, customer, file_complaint):
    login_as(client, "c_head", role="head")
    client.post("/complaints/policy", data={
        "categories": "产品质量\n" + XSS[:40], "normal_response": 24, "normal_resolution": 168,
        "serious_response": 8, "serious_resolution": 72, "urgent_response": 2, "urgent_resolution": 24,
        "important_percent": 50})
    cid = file_complaint(client, customer, description=XSS, customer_request=XSS, category=XSS[:40],
                         handler_id=str(cdept.head))
    step(client, cid, "accept", comment=XSS)
    step(client, cid, "start")
    step(client, cid, "resolve", cause=XSS, measures=XSS, result=XSS, compensation=XSS)
    step(client, cid, "visit", satisfaction="3", visit_comment=XSS)
    for url in (f"/complaints/{cid}", "/complaints/", "/complaints/stats", f"/customers/{customer}"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert(1)" not in html and "<img src=x" not in html, url
    html = client.get(f"/complaints/{cid}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "{{7*7}}" in html and "49" not in html.split("complaints-description")[1][:300]


def test_attachments_are_content_checked_encrypted_and_downloaded_as_files(app, client, login_as, cdept, customer,
                                                                           file_complaint):
    import io
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    r = client.post(f"/complaints/{cid}/attachments", data={"attachment": (io.BytesIO(b"<html><script>"), "x.pdf")},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and 'id="attachment-error"' in r.get_data(as_text=True)
    r = client.post(f"/complaints/{cid}/attachments", data={"attachment": (io.BytesIO(png), "照片.png")},
                    content_type="multipart/form-data")
    assert r.status_code == 302
    from modules.complaints.models import Complaint, ComplaintAttachment
    with app.app_context():
        atts = db.session.get(Complaint, cid).attachments
        assert len(atts) == 1 and atts[0].kind == "png"
        stored = (app.config["UPLOAD_FOLDER"] + "/complaints/" + atts[0].stored_name)
        aid = atts[0].id
    assert png not in open(stored, "rb").read()
    r = client.get(f"/complaints/attachments/{aid}")
    assert r.status_code == 200 and r.data == png and r.headers["Content-Disposition"].startswith("attachment")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    client.post("/logout")
    login_as(client, "c_service2", role="service", dept="D2")
    assert client.get(f"/complaints/attachments/{aid}").status_code == 404
    assert ComplaintAttachment.__tablename__ == "complaints_attachment"


def test_the_handler_badge_counts_open_complaints(app, client, login_as, cdept, customer, file_complaint):
    login_as(client, "c_service")
    file_complaint(client, customer)
    file_complaint(client, customer, category="其他")
    html = client.get("/complaints/").get_data(as_text=True)
    assert 'id="complaints-badge">2<' in html
    home = client.get("/").get_data(as_text=True)  # in the navigation bar, on every page
    assert 'id="badge-complaints-index">2<' in home


def test_complaint_texts_and_attachments_follow_the_customers_new_data_key(app, client, login_as, cdept, customer,
                                                                             file_complaint):
    """customers.rekey (a withdrawn separate consent gives the customer a new data key and destroys
    the old one): the complaint, its steps and attachment stay readable; the old file is gone."""
    import io
    import os

    from modules.complaints.models import Complaint
    from modules.customers import services as customer_services
    from modules.customers.models import Customer
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    png = b"\x89PNG\r\n\x1a\n" + b"\1" * 100
    assert client.post(f"/complaints/{cid}/attachments", data={"attachment": (io.BytesIO(png), "照片.png")},
                       content_type="multipart/form-data").status_code == 302
    folder = app.config["UPLOAD_FOLDER"] + "/complaints/"
    with app.app_context():
        c = db.session.get(Complaint, cid)
        old_name, old_key_id, steps = c.attachments[0].stored_name, c.customer.subject_key_id, len(c.steps)
        assert steps and os.path.exists(folder + old_name)
        counts = customer_services.rekey_customer(c.customer.owner, db.session.get(Customer, customer),
                                                  reason="撤回单独同意")
        db.session.commit()
        assert counts["complaints"] >= 3  # the description, the request, the attachment's name and file
    with app.app_context():
        c = db.session.get(Complaint, cid)
        assert c.customer.subject_key_id != old_key_id
        assert c.description == "产品有质量问题" and c.customer_request == "退货"
        assert c.attachments[0].filename == "照片.png" and c.attachments[0].stored_name != old_name
        aid = c.attachments[0].id
    assert not os.path.exists(folder + old_name)
    r = client.get(f"/complaints/attachments/{aid}")
    assert r.status_code == 200 and r.data == png


def _feedback(html, field_id):
    """The text of the error element next to the field ``field_id``."""
    import re
    m = re.search(rf'<div class="invalid-feedback d-block" id="{field_id}-error">(.*?)</div>', html, re.S)
    assert m, f"no error next to {field_id}"
    return m.group(1)


def test_a_refused_step_answers_400_with_the_error_under_its_field_and_the_typed_text_kept(
        app, client, login_as, cdept, customer, file_complaint, complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    assert step(client, cid, "accept").status_code == 302
    assert step(client, cid, "start").status_code == 302
    before = len(audit_actions(app, "complaints.complaint.step"))
    # a service's error of one field (the reason of a send-back is required)
    r = step(client, cid, "return", comment="")
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "此项为必填项。" in _feedback(html, "comment")
    assert "alert-danger" not in html.split('id="complaints-step-return"')[0]  # no banner at the top
    assert complaint_row(cid).status == "in_progress"
    # a form validation error (too long), the other texts typed stay in the form
    r = step(client, cid, "resolve", cause="原因<b>", measures="措施", result="x" * 5001)
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert _feedback(html, "result")
    assert "原因&lt;b&gt;" in html and "措施" in html
    assert "alert-danger" not in html.split('id="complaints-step-resolve"')[0]
    c = complaint_row(cid)
    assert c.status == "in_progress" and c.resolved_at is None
    assert len(audit_actions(app, "complaints.complaint.step")) == before


def test_a_refused_attachment_answers_400_with_the_error_under_the_file_field(
        app, client, login_as, cdept, customer, file_complaint):
    import io
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    r = client.post(f"/complaints/{cid}/attachments", data={}, content_type="multipart/form-data")
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "请选择文件。" in _feedback(html, "attachment")
    r = client.post(f"/complaints/{cid}/attachments", data={"attachment": (io.BytesIO(b""), "x.png")},
                    content_type="multipart/form-data")
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and _feedback(html, "attachment")
    assert "alert-danger" not in html.split('id="complaints-attachments"')[0]
    from modules.complaints.models import Complaint
    with app.app_context():
        assert db.session.get(Complaint, cid).attachments == []
    assert audit_actions(app, "complaints.attachment.added") == []


def test_a_refused_edit_or_policy_answers_400_with_the_error_under_its_field(app, client, login_as, cdept, customer,
                                                                            file_complaint, complaint_row):
    login_as(client, "c_service")
    cid = file_complaint(client, customer)
    r = client.post(f"/complaints/{cid}/edit", data={**INTAKE_DATA, "description": "", "severity": "urgent"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and _feedback(html, "description")
    assert complaint_row(cid).severity != "urgent"
    client.post("/logout")
    login_as(client, "c_head", role="head")
    r = client.post("/complaints/policy", data={"categories": "产品质量", "normal_response": "0", "normal_resolution": "48",
                                                "serious_response": "4", "serious_resolution": "24",
                                                "urgent_response": "1", "urgent_resolution": "8",
                                                "important_percent": "50"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and _feedback(html, "normal_response")
    assert not audit_actions(app, "complaints.policy.changed")
