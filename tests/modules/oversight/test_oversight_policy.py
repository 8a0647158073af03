"""The policy gate: a user of a department using oversight reaches no other page until they
acknowledged the current version; a new version asks again. Training and reveal rights."""
from datetime import date, timedelta

import pytest

from core import access
from core.db import db
from core.models import User
from modules.oversight import services
from modules.oversight.models import Acknowledgement

from .conftest import ID_1


def _publish(app, ov, body="第一条 客户信息仅用于业务目的。"):
    with app.test_request_context():
        policy = services.publish(ov.user("security1"), "客户信息管理制度", body)
        db.session.commit()
        return policy.version


def test_no_policy_no_gate(ov):
    client = ov.client("sales1")
    assert client.get("/customers/").status_code == 200


def test_acknowledgement_gate_blocks_until_acknowledged_and_releases_after(app, ov):
    client = ov.client("sales1")
    _publish(app, ov)
    response = client.get("/customers/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/oversight/acknowledge")
    assert client.get(f"/customers/{ov.customer}").status_code == 302
    assert client.post(f"/customers/{ov.customer}/reveal/id_number").status_code == 302
    page = client.get("/oversight/acknowledge").get_data(as_text=True)
    assert "客户信息仅用于业务目的" in page and "确认" in page
    # without ticking the box nothing is recorded and the message stands next to the box
    refused = client.post("/oversight/acknowledge", data={})
    assert refused.status_code == 200 and "请勾选" in refused.get_data(as_text=True)
    assert client.get("/customers/").status_code == 302
    done = client.post("/oversight/acknowledge", data={"read": "y"})
    assert done.status_code == 302
    assert client.get("/customers/").status_code == 200
    with app.app_context():
        assert db.session.query(Acknowledgement).count() == 1
        from core.audit import AuditEntry
        assert db.session.query(AuditEntry).filter_by(action="oversight.policy.acknowledged").count() == 1
    # a new version asks again
    _publish(app, ov, "第二版")
    assert client.get("/customers/").status_code == 302
    client.post("/oversight/acknowledge", data={"read": "y"})
    assert client.get("/customers/").status_code == 200


def test_sign_out_and_language_stay_open_behind_the_gate(app, ov):
    client = ov.client("head1")
    _publish(app, ov)
    assert client.post("/language", data={"locale": "en", "next": "/"}).status_code == 302
    assert client.post("/logout").status_code == 302


def test_departments_not_using_oversight_and_the_administrator_are_not_held(app, ov, login_as):
    _publish(app, ov)
    other = login_as(app.test_client(), "sales_other", "sales", "D2")
    assert other.get("/customers/").status_code == 200
    admin = login_as(app.test_client(), "admin1", "admin", None)
    assert admin.get("/").status_code == 200


def test_security_publishes_versions_and_sees_who_acknowledged(app, ov):
    security = ov.client("security1")
    response = security.post("/oversight/policy", data={"title": "客户信息管理制度", "body": "   "})
    assert response.status_code == 200 and "请输入制度正文" in response.get_data(as_text=True)
    response = security.post("/oversight/policy", data={"title": "客户信息管理制度", "body": "第一条"})
    assert response.status_code == 302
    security.post("/oversight/acknowledge", data={"read": "y"})
    page = security.get("/oversight/policy").get_data(as_text=True)
    assert 'id="oversight-policy-1"' in page and "sales1" in page
    assert security.get("/oversight/trainings").status_code == 200
    # staff cannot publish
    sales = ov.client("sales1")
    sales.post("/oversight/acknowledge", data={"read": "y"})
    assert sales.get("/oversight/policy").status_code == 403


def test_training_is_recorded_with_attendance_and_checked(app, ov):
    security = ov.client("security1")
    with app.app_context():
        sales_id = ov.user("sales1").id
    bad = security.post("/oversight/trainings", data={"title": "年度安全培训", "held_on": "2999-01-01",
                                                        "trainer": "孙安全", "attendees": [sales_id]})
    assert bad.status_code == 200 and "培训结束后才能登记" in bad.get_data(as_text=True)
    ok = security.post("/oversight/trainings", data={"title": "年度安全培训", "held_on": date.today().isoformat(),
                                                       "trainer": "孙安全", "attendees": [sales_id]})
    assert ok.status_code == 302
    page = security.get("/oversight/trainings").get_data(as_text=True)
    assert "年度安全培训" in page


@pytest.fixture
def config_overrides():
    return {"OVERSIGHT_WITHHOLD_REVEAL": True, "OVERSIGHT_TRAINING_GRACE_DAYS": -1}


def _can_reveal(app, username):
    with app.test_request_context():
        user = db.session.query(User).filter_by(username=username).one()
        return access.can(user, "customers.reveal_l2")


def test_reveal_rights_are_lost_with_overdue_training_and_regained_after(app, ov):
    head = ov.client("head1")
    assert _can_reveal(app, "head1") is False  # never trained, grace over
    refused = head.post(f"/customers/{ov.customer}/reveal/id_number")
    assert refused.status_code == 403 and ID_1 not in refused.get_data(as_text=True)
    with app.test_request_context():
        late = {s.user.username for s in services.overdue_users()}
        assert "head1" in late and "sales1" in late
        services.record_training(ov.user("security1"), title="安全培训", held_on=date.today(), trainer="孙安全",
                                 topics="", attendee_ids=[ov.user("head1").id])
        db.session.commit()
    assert _can_reveal(app, "head1") is True
    shown = head.post(f"/customers/{ov.customer}/reveal/id_number")
    assert shown.status_code == 200 and ID_1 in shown.get_data(as_text=True)
    # a year later the training is overdue again
    with app.test_request_context():
        from modules.oversight.models import Training
        db.session.query(Training).update({"held_on": date.today() - timedelta(days=400)})
        db.session.commit()
    assert _can_reveal(app, "head1") is False


def test_without_the_setting_overdue_users_keep_their_rights(app, ov):
    app.config["OVERSIGHT_WITHHOLD_REVEAL"] = False
    assert _can_reveal(app, "head1") is True
    with app.test_request_context():
        assert "head1" in {s.user.username for s in services.overdue_users()}


def test_an_unacknowledged_policy_past_its_grace_withholds_too(app, ov):
    with app.test_request_context():
        services.record_training(ov.user("security1"), title="安全培训", held_on=date.today(), trainer="孙安全",
                                 topics="", attendee_ids=[ov.user("head1").id])
        db.session.commit()
    assert _can_reveal(app, "head1") is True
    _publish(app, ov)
    assert _can_reveal(app, "head1") is True  # within the grace period: the gate asks, rights stay
    app.config["OVERSIGHT_ACK_GRACE_DAYS"] = -1
    assert _can_reveal(app, "head1") is False


def test_confidentiality_reviews_are_recorded_with_reviewer_and_expiry(app, ov):
    security = ov.client("security1")
    with app.app_context():
        head_id = ov.user("head1").id
    page = security.get("/oversight/reviews").get_data(as_text=True)
    assert 'id="oversight-needing-head1"' in page and "table-danger" in page
    bad = security.post("/oversight/reviews", data={"user_id": head_id, "reviewed_on": date.today().isoformat(),
                                                    "expires_on": date.today().isoformat()})
    assert bad.status_code == 200 and "有效期须晚于审查日期" in bad.get_data(as_text=True)
    ok = security.post("/oversight/reviews", data={"user_id": head_id, "reviewed_on": date.today().isoformat(),
                                                   "expires_on": (date.today() + timedelta(days=365)).isoformat(),
                                                   "note": "已签保密协议"})
    assert ok.status_code == 302
    with app.test_request_context():
        review = services.current_review(ov.user("head1"))
        assert review.reviewer.username == "security1" and review.note == "已签保密协议"
        assert "head1" not in {u.username for u in services.unreviewed()}
