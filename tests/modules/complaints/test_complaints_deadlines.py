"""Deadlines by severity, shortened for 重要 customers when grading is in use, working days across
a weekend; the overdue list, highlighting and the grading rule picking up open complaints."""
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.db import db
from core.models import Department, User, utcnow


def _actor(app, user_id):
    return db.session.get(User, user_id)


def _new(app, cdept, customer_id, severity="normal", now=None, category="产品质量"):
    from modules.complaints import services
    from modules.customers import Customer
    return services.create_complaint(_actor(app, cdept.service), db.session.get(Customer, customer_id),
                                     {"channel": "phone", "category": category, "severity": severity,
                                      "description": "d"}, now=now)


def test_default_deadlines_by_severity_without_grading(app, cdept, customer):
    now = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Beijing
    with app.test_request_context():
        for severity, (resp, resol) in {"normal": (24, 168), "serious": (8, 72), "urgent": (2, 24)}.items():
            c = _new(app, cdept, customer, severity, now=now)
            assert (c.response_due - now, c.resolution_due - now) == (timedelta(hours=resp), timedelta(hours=resol))
            assert c.important is False


def test_important_customers_get_shorter_deadlines_when_grading_is_enabled(app, cdept, customer, enable_module):
    from modules.grading.models import Grade
    now = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    with app.test_request_context():
        db.session.add(Grade(customer_id=customer, grade="important", computed="important", rule_version=0,
                             basis="{}", computed_at=utcnow()))
        db.session.commit()
        c = _new(app, cdept, customer, "serious", now=now)  # grading not enabled in D1: full time
        assert c.important is False and c.response_due - now == timedelta(hours=8)
        db.session.commit()
    enable_module("D1", "grading")
    with app.test_request_context():
        c = _new(app, cdept, customer, "serious", now=now, category="其他")
        assert c.important is True
        assert (c.response_due - now, c.resolution_due - now) == (timedelta(hours=4), timedelta(hours=36))


def test_the_head_configures_the_policy_and_working_days_skip_the_weekend(app, client, login_as, cdept, customer):
    login_as(client, "c_head", role="head")
    r = client.post("/complaints/policy", data={
        "categories": "产品质量\n物流", "normal_response": 24, "normal_resolution": 48,
        "serious_response": 8, "serious_resolution": 72, "urgent_response": 2, "urgent_resolution": 24,
        "important_percent": 50, "working_days": "y"})
    assert r.status_code == 302
    friday_evening = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # Friday 20:00 in Beijing
    with app.test_request_context():
        c = _new(app, cdept, customer, "normal", now=friday_evening, category="物流")
        # 4 hours of Friday, then Monday and Tuesday: 24 h → Monday 20:00, 48 h → Tuesday 20:00 (Beijing)
        assert c.response_due == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
        assert c.resolution_due == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
        saturday = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)
        c2 = _new(app, cdept, customer, "urgent", now=saturday, category="物流")
        assert c2.response_due == datetime(2026, 3, 8, 18, 0, tzinfo=UTC)  # Monday 02:00 Beijing
    client.post("/complaints/policy", data={
        "categories": "产品质量", "normal_response": 48, "normal_resolution": 24,
        "serious_response": 8, "serious_resolution": 72, "urgent_response": 2, "urgent_resolution": 24,
        "important_percent": 50})
    from modules.complaints.models import Policy
    with app.app_context():
        assert "物流" in db.session.get(Policy, cdept.id).categories  # refused: response after resolution


def test_staff_cannot_configure_the_policy(client, login_as, cdept):
    login_as(client, "c_service", role="service")
    assert client.get("/complaints/policy").status_code == 403
    assert client.get("/complaints/overdue").status_code == 403
    assert client.get("/complaints/stats").status_code == 403


def test_overdue_and_due_soon_are_highlighted_and_listed_for_the_head(app, client, login_as, cdept, customer):
    from modules.complaints import services
    now = utcnow()
    with app.test_request_context():
        late = _new(app, cdept, customer, "urgent", now=now - timedelta(hours=3))
        soon = _new(app, cdept, customer, "normal", now=now - timedelta(hours=20), category="其他")
        fine = _new(app, cdept, customer, "normal", now=now, category="服务态度")
        db.session.commit()
        assert services.deadline_state(late) == "overdue"
        assert services.deadline_state(soon) == "due_soon"
        assert services.deadline_state(fine) == ""
        numbers = (late.number, soon.number, fine.number)
    login_as(client, "c_head", role="head")
    html = client.get("/complaints/overdue").get_data(as_text=True)
    assert numbers[0] in html and numbers[1] not in html and numbers[2] not in html
    html = client.get("/complaints/").get_data(as_text=True)
    assert "complaints-overdue" in html and "complaints-due-soon" in html
    client.post("/logout")
    login_as(client, "c_head2", role="head", dept="D2")
    assert numbers[0] not in client.get("/complaints/overdue").get_data(as_text=True)


def test_the_cli_lists_overdue_complaints(app, runner, cdept, customer):
    with app.test_request_context():
        late = _new(app, cdept, customer, "urgent", now=utcnow() - timedelta(hours=3))
        db.session.commit()
        number = late.number
    result = runner("complaints", "overdue")
    assert result.exit_code == 0, result.output
    assert number in result.output and "受理超期" in result.output
    result = runner("complaints", "overdue", "--department", "D2")
    assert result.exit_code == 0 and number not in result.output
    result = runner("complaints", "overdue", "--department", "NOPE")
    assert result.exit_code != 0


def test_grading_counts_open_complaints_through_the_hook(app, cdept, customer, enable_module):
    """The grading rule 'N open complaints make a customer important' sees this module's answer."""
    from modules.grading import services as grading
    enable_module("D1", "grading")
    with app.test_request_context():
        head = _actor(app, cdept.head)
        dept = db.session.get(Department, cdept.id)
        grading.save_rules(head, dept, {"min_amount": "1000000", "min_count": None, "min_tenure_months": 0,
                                        "escalate_open_complaints": 2})
        db.session.commit()
        grading.recompute(head, dept)
        assert grading.grade_of(customer) == "ordinary"
        c1 = _new(app, cdept, customer)
        _new(app, cdept, customer, category="其他")
        db.session.commit()
        grading.recompute(head, dept)
        db.session.commit()
        assert grading.grade_of(customer) == "important"
        # a closed complaint no longer counts
        from modules.complaints.models import Complaint
        db.session.execute(select(Complaint).where(Complaint.id == c1.id)).scalar_one().status = "closed"
        db.session.commit()
        grading.recompute(head, dept)
        assert grading.grade_of(customer) == "ordinary"
