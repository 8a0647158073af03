"""Issue 17: consent before collection on every path, purpose before use, clear-text exports and
disclosures by approved request only, the register of recipients, information administrators."""
from __future__ import annotations

import csv
import datetime
import io
import json
import re
from html import unescape

import pytest
from sqlalchemy import func, select

from core.audit import AuditEntry
from core.db import db
from core.models import User
from modules.customers import io as cio
from modules.customers.models import Customer

ID_1 = "11010519491231002X"
PDF = b"%PDF-1.4\n% agreement\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
SEPARATE = {"purposes": ["service", "contract", "disclosure"], "channel": "paper", "sensitive": True, "scope": ""}


def user(name):
    return db.session.execute(select(User).where(User.username == name)).scalar_one()


def entries(action):
    return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)).scalars().all()


def customers_count():
    return db.session.scalar(select(func.count()).select_from(Customer))


def field_error(html, name):
    match = re.search(rf'id="{name}-error">([^<]*)<', html)
    return unescape(match.group(1)) if match else None


@pytest.fixture
def people(make_user, enable_module):
    ids = {name: make_user(name, role, dept) for name, role, dept in (
        ("head1", "head", "D1"), ("sales1", "sales", "D1"), ("sales1b", "sales", "D1"),
        ("service1", "service", "D1"), ("sales2", "sales", "D2"), ("security1", "security", None))}
    for module in ("disclosure", "grading"):
        enable_module("D1", module)
    return ids


def signed_in(app, login_as, name):
    with app.app_context():
        role = user(name).role
    return login_as(app.test_client(), name, role=role)


# --- 1. consent before collection --------------------------------------------------------------

def test_the_form_refuses_a_home_address_without_consent_and_names_it_next_to_the_field(app, login_as, people):
    client = signed_in(app, login_as, "sales1")
    response = client.post("/customers/new?kind=person", data={
        "name": "王五", "phone": "13800138000", "home_address": "北京市朝阳区示例路1号", "emergency_contact": "赵六"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "提供产品与服务" in field_error(html, "home_address")
    assert field_error(html, "emergency_contact")
    with app.app_context():
        assert customers_count() == 0
    # with the consent covering the purpose it is stored
    response = client.post("/customers/new?kind=person", data={
        "name": "王五", "phone": "13800138000", "home_address": "北京市朝阳区示例路1号",
        "consent_purposes": ["service"], "consent_channel": "paper"})
    assert response.status_code == 302
    with app.app_context():
        assert customers_count() == 1


def test_name_and_contact_need_no_consent(app, login_as, people):
    client = signed_in(app, login_as, "sales1")
    response = client.post("/customers/new?kind=person", data={"name": "王五", "phone": "13800138000"})
    assert response.status_code == 302


def test_the_edit_form_refuses_an_emergency_contact_without_consent(app, login_as, people):
    from modules.customers import create_customer
    with app.test_request_context():
        customer = create_customer(user("sales1"), {"kind": "person", "name": "无同意"})
        db.session.commit()
        customer_id, version = customer.id, customer.version
    client = signed_in(app, login_as, "sales1")
    page = client.get(f"/customers/{customer_id}/edit").get_data(as_text=True)
    assert 'name="consent_purposes"' in page  # the consent part is offered on the edit form
    response = client.post(f"/customers/{customer_id}/edit", data={
        "name": "无同意", "emergency_contact": "赵六 13900139000", "version": str(version),
        "owner_id": str(people["sales1"])})
    assert response.status_code == 400
    assert field_error(response.get_data(as_text=True), "emergency_contact")
    with app.app_context():
        assert db.session.get(Customer, customer_id).emergency_contact is None


def test_the_import_refuses_rows_with_personal_details_without_confirmed_consent(app, people):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["类型", "名称", "手机", "家庭住址"])
    writer.writerow(["个人", "钱九", "13800138000", "上海市浦东新区某路2号"])
    data = out.getvalue().encode("utf-8-sig")
    with app.test_request_context():
        result = cio.import_customers(user("head1"), data, "k.csv")
        assert not result.ok and result.created == 0
        assert result.errors[0].column == "家庭住址"
        assert customers_count() == 0
        result = cio.import_customers(user("head1"), data, "k.csv", consent_channel="paper")
        assert result.ok and result.created == 1 and result.consents == 1
        customer = db.session.execute(select(Customer)).scalar_one()
        assert customer.home_address and customer.consents[0].purpose_list == ["service", "contract"]


def test_another_module_through_the_public_api_is_refused_the_same_way(app, people):
    import modules.customers as customers
    with app.test_request_context():
        customer = customers.create_customer(user("sales1"), {"kind": "person", "name": "他模块"})
        db.session.commit()
        with pytest.raises(customers.InvalidData) as refused:
            customers.update_customer(user("sales1"), customer, {"birth_date": "1980-01-02"}, customer.version)
        assert "birth_date" in refused.value.errors
        db.session.rollback()
        with pytest.raises(customers.InvalidData) as refused:
            customers.create_customer(user("sales1"), {"kind": "person", "name": "甲", "id_number": ID_1},
                                      consent={"purposes": ["marketing"], "channel": "paper", "sensitive": True})
        assert "id_number" in refused.value.errors  # a consent to marketing does not cover it
        assert db.session.get(Customer, customer.id).birth_date is None


# --- 2. purpose before use ---------------------------------------------------------------------

def test_purposes_are_declared_by_the_modules_that_process(app):
    from core.api import declared_purposes
    with app.app_context():
        declared = declared_purposes()
        assert "grading" in declared["analysis"][1] and "disclosure" in declared["disclosure"][1]
        assert "customers" in declared["marketing"][1]


def test_consent_allows_refuses_an_undeclared_purpose(app, make_customer, people):
    from modules.customers import Customer as C
    from modules.customers import consent
    customer_id = make_customer("sales1")
    with app.app_context():
        customer = db.session.get(C, customer_id)
        assert consent.allows(customer, "analysis") and not consent.allows(customer, "marketing")
        with pytest.raises(ValueError):
            consent.allows(customer, "profiling")


def test_grading_leaves_out_and_counts_customers_without_analysis_consent(app, login_as, make_customer, people):
    from modules.grading import grade_of
    with_consent = make_customer("sales1", name="同意分析", consent_purposes=("service", "analysis"))
    without = make_customer("sales1", name="未同意分析", consent_purposes=("service",))
    client = signed_in(app, login_as, "head1")
    response = client.post("/grading/recompute", follow_redirects=True)
    assert "1 位客户未分级：未同意用于分析" in response.get_data(as_text=True)
    with app.app_context():
        assert grade_of(with_consent) is not None and grade_of(without) is None
        (entry,) = entries("grading.grades.recomputed")
        assert json.loads(entry.details)["no_consent"] == 1


def test_withdrawing_the_analysis_consent_drops_the_grade_and_editing_never_grades_again(
        app, login_as, make_customer, people):
    from modules.customers import services as customers
    from modules.customers.models import Consent
    from modules.grading import grade_of
    from modules.grading import services as grading
    cid = make_customer("sales1", name="先同意后撤回", consent_purposes=("service", "analysis"))
    client = signed_in(app, login_as, "head1")
    client.post("/grading/recompute")
    with app.test_request_context():
        assert grade_of(cid) is not None
        customer = db.session.get(Customer, cid)
        (consent,) = db.session.scalars(select(Consent).where(Consent.customer_id == cid)).all()
        customers.withdraw_consent(user("sales1"), consent, "客户来电撤回")
        db.session.commit()
        assert grade_of(cid) is None  # dropped with the consent, at once
        (removed,) = entries("grading.grade.removed")
        assert removed.target_id == str(cid) and json.loads(removed.details)["reason"] == "no_analysis_consent"
        customers.customer_changed(user("sales1"), customer, "customer")  # an edit: not graded again
        db.session.commit()
        assert grade_of(cid) is None
        with pytest.raises(grading.GradingError, match="未同意"):
            grading.set_override(user("head1"), customer, "important", "大客户")
        customers.record_consent(user("sales1"), customer, ["service", "analysis"], "", "paper")
        db.session.commit()
        assert grade_of(cid) is not None  # agreed again: graded at once


def test_a_recompute_drops_grades_whose_analysis_consent_is_gone(app, login_as, make_customer, people):
    from modules.customers.models import Consent
    from modules.grading import grade_of
    cid = make_customer("sales1", name="旧分级", consent_purposes=("service", "analysis"))
    client = signed_in(app, login_as, "head1")
    client.post("/grading/recompute")
    with app.app_context():  # withdrawn behind the register's back (e.g. a restored backup)
        consent = db.session.scalars(select(Consent).where(Consent.customer_id == cid)).one()
        consent.withdrawn_at = datetime.datetime.now(datetime.UTC)
        db.session.commit()
    response = client.post("/grading/recompute", follow_redirects=True)
    assert "已删除 1 个分级" in response.get_data(as_text=True)
    with app.app_context():
        assert grade_of(cid) is None
        assert json.loads(entries("grading.grades.recomputed")[-1].details)["removed"] == 1


def test_the_marketing_export_skips_customers_without_marketing_consent(app, make_customer, people):
    make_customer("sales1", name="要营销", consent_purposes=("service", "marketing"))
    make_customer("sales1", name="不要营销", consent_purposes=("service",))
    with app.test_request_context():
        data, count = cio.export_customers(user("head1"), "csv", "春季活动", marketing=True)
    text = data.decode("utf-8-sig")
    assert count == 1 and "要营销" in text and "不要营销" not in text


# --- 3. clear-text exports by approved request -------------------------------------------------

@pytest.fixture
def sensitive_customer(app, people):
    from modules.customers import create_customer
    with app.test_request_context():
        customer = create_customer(user("sales1"), {"kind": "person", "name": "敏感客户", "id_number": ID_1,
                                                    "home_address": "北京市朝阳区示例路1号"}, consent=SEPARATE)
        db.session.commit()
        return customer.number


def _request(actor, **values):
    from modules.disclosure import services
    data = {"fields": ["id_number", "home_address"], "purpose": "contract", "legal_basis": "contract",
            "reason": "合同核对", "retention_days": "30", "customers": "", "recipient_id": ""}
    data.update(values)
    req = services.create_request(actor, data)
    db.session.commit()
    return req


def test_without_approval_an_export_masks_even_for_a_head_who_may_reveal(app, sensitive_customer):
    with app.test_request_context():
        data, _count = cio.export_customers(user("head1"), "csv", "年度核查")
    text = data.decode("utf-8-sig")
    assert ID_1 not in text and "示例路1号" not in text and "110105********002X" in text


def test_a_clear_text_export_is_refused_without_approval(app, sensitive_customer):
    with app.test_request_context():
        req = _request(user("sales1"))
        with pytest.raises(cio.ExportError, match="尚未获批准"):
            cio.export_customers(user("sales1"), "csv", "合同核对", request=req.number)
        assert req.status == "pending" and not entries("customers.export.completed")
        assert entries("disclosure.request.denied")[-1].details_dict["reason"] == "not_approved"


def test_the_requester_cannot_approve_their_own_request(app, login_as, sensitive_customer):
    from modules.disclosure import services
    with app.test_request_context():
        services.set_info_admin(user("head1"), user("sales1"), True)
        db.session.commit()
        req = _request(user("sales1"))
        with pytest.raises(services.DisclosureError, match="您不能审批自己的申请"):
            services.decide(user("sales1"), req, True)
        db.session.commit()
        request_id = req.id
    client = signed_in(app, login_as, "sales1")
    response = client.post(f"/disclosure/requests/{request_id}/approve", data={"reason": ""})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.get(services.Request, request_id).status == "pending"
        assert len(entries("disclosure.request.denied")) == 2


def test_a_head_without_the_flag_does_not_approve(app, sensitive_customer):
    from modules.disclosure import services
    with app.test_request_context():
        req = _request(user("sales1"))
        with pytest.raises(services.DisclosureError, match="信息管理员或安全员"):
            services.decide(user("head1"), req, True)


def test_an_approved_request_produces_its_file_once_with_the_watermark_and_links_the_trail(
        app, login_as, sensitive_customer):
    from modules.disclosure import services
    with app.test_request_context():
        services.set_info_admin(user("head1"), user("sales1b"), True)
        db.session.commit()
        req = _request(user("sales1"))
        request_id, number = req.id, req.number
    # the information administrator approves through the page (a sales user: no head rights)
    admin = signed_in(app, login_as, "sales1b")
    assert admin.get("/customers/handover").status_code == 403
    assert admin.post(f"/disclosure/requests/{request_id}/approve", data={}).status_code == 302
    requester = signed_in(app, login_as, "sales1")
    response = requester.post(f"/disclosure/requests/{request_id}/produce", data={"fmt": "csv"})
    assert response.status_code == 200, re.findall(r'id="request-problem">([^<]*)<', response.get_data(as_text=True))
    text = response.get_data().decode("utf-8-sig")
    first, header = text.splitlines()[:2]
    assert number in first and "sales1b" in first and header.startswith("客户编号")
    assert ID_1 in text and "北京市朝阳区示例路1号" in text
    # once only
    again = requester.post(f"/disclosure/requests/{request_id}/produce", data={"fmt": "csv"})
    assert again.status_code == 400 and "只能生成一次" in again.get_data(as_text=True)
    assert ID_1 not in again.get_data(as_text=True)
    with app.test_request_context():
        with pytest.raises(cio.ExportError):
            cio.export_customers(user("sales1"), "csv", "再来", request=number)
        (approved,) = entries("disclosure.request.approved")
        (produced,) = entries("disclosure.request.produced")
        exports = [e for e in entries("customers.export.completed") if e.details_dict.get("request") == number]
        assert len(exports) == 1
        assert approved.target_id == produced.target_id == str(request_id)
        assert approved.actor == "sales1b" and produced.details_dict["approved_by"] == people_id("sales1b")
        assert produced.details_dict["sha256"] == exports[0].details_dict["sha256"]
        assert "id_number" in exports[0].details_dict["revealed"]
        assert db.session.get(services.Request, request_id).status == "produced"


def people_id(name):
    return user(name).id


def test_the_cli_export_follows_the_same_rule(app, runner, tmp_path, sensitive_customer):
    from modules.disclosure import services
    with app.test_request_context():
        req = _request(user("sales1"))
        number = req.number
    out = tmp_path / "x.csv"
    result = runner("export", "customers", str(out), "--reason", "核对", "--as", "sales1", "--request", number)
    assert result.exit_code == 1 and "尚未获批准" in result.output and not out.exists()
    with app.test_request_context():
        services.decide(user("security1"), services.find_request(number), True)
        db.session.commit()
    result = runner("export", "customers", str(out), "--reason", "核对", "--as", "sales1", "--request", number)
    assert result.exit_code == 0, result.output
    assert number in out.read_text(encoding="utf-8-sig").splitlines()[0]
    result = runner("export", "customers", str(out), "--reason", "核对", "--as", "sales1", "--request", number)
    assert result.exit_code == 1 and "只能生成一次" in result.output
    result = runner("export", "customers", str(out), "--reason", "核对", "--as", "head1")
    assert result.exit_code == 0, result.output
    assert ID_1 not in out.read_text(encoding="utf-8-sig") and "110105********002X" in out.read_text(encoding="utf-8-sig")


# --- 4. recipients and their agreements --------------------------------------------------------

def _recipient(app, expires):
    from modules.disclosure import services
    with app.test_request_context():
        recipient = services.save_recipient(user("head1"), {
            "name": "某物流有限公司", "kind": "processor", "contact": "张经理 010-12345678",
            "categories": ["l1", "l2", "l3"], "purposes": ["service", "contract"]})
        services.upload_agreement(user("head1"), recipient, "协议.pdf", PDF, datetime.date.today() + datetime.timedelta(days=10))
        if expires is not None:
            recipient.agreement_expires = expires
        db.session.commit()
        return recipient.id


def test_the_agreement_is_stored_encrypted_and_read_back(app, people):
    from modules.disclosure import services
    recipient_id = _recipient(app, None)
    with app.test_request_context():
        recipient = db.session.get(services.Recipient, recipient_id)
        stored = services._agreement_path(recipient).read_bytes()
        assert b"agreement" not in stored and services.read_agreement(user("head1"), recipient) == PDF


def test_a_disclosure_to_a_recipient_whose_agreement_expired_is_refused(app, sensitive_customer):
    from modules.disclosure import services
    recipient_id = _recipient(app, datetime.date.today() - datetime.timedelta(days=1))
    with app.test_request_context():
        with pytest.raises(services.DisclosureError) as refused:
            _request(user("sales1"), recipient_id=str(recipient_id))
        assert "协议不在有效期内" in str(refused.value.errors["recipient_id"])
        assert not db.session.scalars(select(services.Request)).all()


def test_an_agreement_expiring_after_approval_stops_the_file(app, sensitive_customer):
    from modules.disclosure import services
    recipient_id = _recipient(app, None)
    with app.test_request_context():
        req = _request(user("sales1"), recipient_id=str(recipient_id), legal_basis="consent")
        services.decide(user("security1"), req, True)
        db.session.commit()
        db.session.get(services.Recipient, recipient_id).agreement_expires = datetime.date.today() - datetime.timedelta(days=1)
        db.session.commit()
        with pytest.raises(cio.ExportError, match="协议不在有效期内"):
            cio.export_customers(user("sales1"), "csv", "x", request=req.id)
        assert db.session.get(services.Request, req.id).status == "approved"


def test_expiring_agreements_are_on_the_work_queue(app, login_as, people):
    _recipient(app, None)  # expires in 10 days
    client = signed_in(app, login_as, "head1")
    page = client.get("/").get_data(as_text=True)
    assert "协议缺失、已过期或将在 30 天内到期的第三方" in page


# --- 5. information administrators -------------------------------------------------------------

def test_only_the_head_appoints_and_only_within_the_department(app, login_as, people):
    from modules.disclosure import services
    head = signed_in(app, login_as, "head1")
    assert head.post("/disclosure/info-admins", data={"user_id": people["sales2"], "grant": "1"}).status_code == 400
    assert head.post("/disclosure/info-admins", data={"user_id": people["service1"], "grant": "1"}).status_code == 302
    with app.app_context():
        assert services.is_info_admin(user("service1")) and not services.is_info_admin(user("sales2"))
        assert entries("disclosure.info_admin.granted")
    assert signed_in(app, login_as, "sales1").post(
        "/disclosure/info-admins", data={"user_id": people["sales1b"], "grant": "1"}).status_code == 403
    # the information administrator sees the department's privacy report, not another's requests
    page = signed_in(app, login_as, "service1").get("/disclosure/").get_data(as_text=True)
    assert 'id="disclosure-report"' in page


def test_an_information_administrator_decides_the_departments_archive_requests(app, login_as, enable_module,
                                                                                 make_customer, people):
    from modules.archives import services as archives
    from modules.archives.models import AccessRequest
    from modules.disclosure import services
    enable_module("D1", "archives")
    customer_id = make_customer("sales1")
    with app.test_request_context():
        number = db.session.get(Customer, customer_id).number
        req = archives.create_request(user("service1"), number, "view", "核对合同",
                                      datetime.date.today() + datetime.timedelta(days=3))
        db.session.commit()
        request_id = req.id
    # a salesperson without the flag may not decide; with it, they may (and still not hand over)
    admin = signed_in(app, login_as, "sales1b")
    assert "待审批的查阅借阅申请" not in admin.get("/").get_data(as_text=True)
    assert admin.post(f"/archives/requests/{request_id}/approve", data={"reason": ""}).status_code == 403
    with app.test_request_context():
        services.set_info_admin(user("head1"), user("sales1b"), True)
        db.session.commit()
    home = admin.get("/").get_data(as_text=True)  # on their work queue, with the count
    assert re.search(r'href="/archives/requests">\s*<span>待审批的查阅借阅申请</span>\s*<span[^>]*>1</span>', home), home
    assert admin.post(f"/archives/requests/{request_id}/approve", data={"reason": ""}).status_code == 302
    assert admin.get("/customers/handover").status_code == 403
    with app.app_context():
        assert db.session.get(AccessRequest, request_id).status == "approved"


# --- the privacy notice as versioned text ------------------------------------------------------

def test_the_privacy_notice_is_versioned_text_printable_and_named_by_each_consent(app, login_as, people):
    security = signed_in(app, login_as, "security1")
    text = "我们为提供产品与服务收集您的姓名、电话和家庭住址。\n您可随时撤回同意。"
    response = security.post("/disclosure/notice", data={"version": "2.0", "title": "个人信息处理告知书", "body": text})
    assert response.status_code == 302
    again = security.post("/disclosure/notice", data={"version": "2.0", "title": "改", "body": "改过的文本"})
    assert again.status_code == 400 and field_error(again.get_data(as_text=True), "version")
    sales = signed_in(app, login_as, "sales1")
    assert sales.post("/disclosure/notice", data={"version": "3.0", "title": "x", "body": "y"}).status_code == 403
    page = sales.get("/disclosure/notice").get_data(as_text=True)
    assert "您可随时撤回同意" in page and 'id="notice-version">2.0<' in page
    with app.app_context():
        from modules.disclosure.models import Notice
        notice_id = db.session.execute(select(Notice.id)).scalar_one()
    pdf = sales.get(f"/disclosure/notice/{notice_id}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    # a consent taken now names the published version; an unpublished one is refused
    response = sales.post("/customers/new?kind=person", data={
        "name": "告知客户", "home_address": "北京市某路3号", "consent_purposes": ["service"], "consent_channel": "paper"})
    assert response.status_code == 302
    with app.test_request_context():
        customer = db.session.execute(select(Customer)).scalar_one()
        assert customer.consents[0].notice_version == "2.0"
        from modules.customers import services as customer_services
        with pytest.raises(customer_services.InvalidData) as refused:
            customer_services.record_consent(user("sales1"), customer, ["marketing"], "", "paper", notice_version="9.9")
        assert "notice_version" in refused.value.errors
        assert entries("disclosure.notice.published") and entries("disclosure.notice.printed")


def test_pages_are_in_chinese_by_default_and_english_on_request(app, login_as, people):
    client = signed_in(app, login_as, "head1")
    html = client.get("/disclosure/").get_data(as_text=True)
    assert "对外提供与明文导出" in html and "第三方与受托方" in html and "本部门隐私报告" in html
    assert "个人信息处理告知书" in client.get("/disclosure/notice").get_data(as_text=True)
    client.post("/language", data={"locale": "en", "next": "/disclosure/"})
    html = client.get("/disclosure/requests/new").get_data(as_text=True)
    assert "Request a clear-text export or a disclosure" in html and "Legal basis" in html
    assert "Recipients and processors" in client.get("/disclosure/recipients").get_data(as_text=True)
