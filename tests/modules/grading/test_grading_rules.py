"""The grading rule: its defaults, its evaluation, and a head configuring it per department."""
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.db import db
from modules.grading import rules as R
from modules.grading import services


def facts(amount=0, count=0, tenure=24, complaints=None):
    return R.Facts(amount=Decimal(str(amount)), count=count, tenure_months=tenure, open_complaints=complaints)


# --- the rule itself ---------------------------------------------------------------------------------

def test_default_rules_are_sensible():
    rules = R.DEFAULT_RULES
    assert rules.is_default and rules.version == 0
    assert rules.min_amount == Decimal("100000.00") and rules.min_count == 12
    assert rules.min_tenure_months == 3 and rules.escalate_open_complaints == 3
    assert R.check({**rules.thresholds(), "min_amount": rules.min_amount}) == []


@pytest.mark.parametrize("given, grade", [
    (facts(amount="100000"), "important"),  # the amount threshold is inclusive
    (facts(amount="99999.99"), "ordinary"),
    (facts(count=12), "important"),  # the count alone is enough
    (facts(count=11, amount="5000"), "ordinary"),
    (facts(amount="500000", tenure=2), "ordinary"),  # too new, however much it bought
    (facts(amount="500000", tenure=3), "important"),
    (facts(complaints=3), "important"),  # escalation whatever the value
    (facts(complaints=2), "ordinary"),
    (facts(complaints=5, tenure=0), "important"),  # escalation ignores tenure too
    (facts(), "ordinary"),
])
def test_default_rule_evaluation(given, grade):
    basis = R.evaluate(R.DEFAULT_RULES, given)
    assert basis.grade == grade
    assert basis.rule_version == 0


def test_basis_names_the_criteria_met():
    basis = R.evaluate(R.DEFAULT_RULES, facts(amount="123456.7", count=2, tenure=1, complaints=0))
    assert basis.to_dict() == {
        "grade": "ordinary", "amount": "123456.70", "count": 2, "tenure_months": 1, "since": None,
        "open_complaints": 0,
        "value_met": True, "tenure_met": False, "escalated": False, "rule_version": 0}


def test_blank_thresholds_are_not_used():
    by_count_only = R.Rules(min_amount=None, min_count=5, min_tenure_months=0, escalate_open_complaints=None,
                            version=1)
    assert R.evaluate(by_count_only, facts(amount="9999999")).grade == "ordinary"
    assert R.evaluate(by_count_only, facts(count=5, tenure=0)).grade == "important"
    # no escalation configured: complaints do not matter
    assert R.evaluate(by_count_only, facts(complaints=50)).grade == "ordinary"


def test_complaints_are_not_applied_without_a_counter():
    assert R.evaluate(R.DEFAULT_RULES, facts(complaints=None)).escalated is False


def test_threshold_checks():
    good = {"min_amount": Decimal("1"), "min_count": None, "min_tenure_months": 0, "escalate_open_complaints": None}
    assert R.check(good) == []
    assert R.check({**good, "min_amount": None}) == [("min_amount", "value_needed")]
    assert R.check({**good, "min_amount": Decimal("0")}) == [("min_amount", "range")]
    assert R.check({**good, "min_count": 0}) == [("min_count", "range")]
    assert R.check({**good, "min_tenure_months": -1}) == [("min_tenure_months", "range")]
    assert R.check({**good, "escalate_open_complaints": 0}) == [("escalate_open_complaints", "range")]


@pytest.mark.parametrize("start, end, months", [
    (date(2025, 1, 15), date(2025, 4, 15), 3), (date(2025, 1, 15), date(2025, 4, 14), 2),
    (date(2024, 11, 30), date(2025, 2, 28), 2), (date(2025, 5, 1), date(2025, 4, 1), 0),
    (date(2020, 2, 29), date(2026, 11, 27), 80),
])
def test_months_between(start, end, months):
    assert R.months_between(start, end) == months


@pytest.mark.parametrize("day, months, expected", [
    (date(2026, 11, 27), 12, date(2025, 11, 27)), (date(2025, 3, 31), 1, date(2025, 2, 28)),
    (date(2024, 2, 29), 12, date(2023, 2, 28)), (date(2026, 1, 15), 13, date(2024, 12, 15)),
])
def test_months_before(day, months, expected):
    assert R.months_before(day, months) == expected


# --- configured per department -------------------------------------------------------------------------

def test_a_department_without_saved_rules_uses_the_defaults(app, grading_dept):
    with app.app_context():
        assert services.department_rules(grading_dept.id) == R.DEFAULT_RULES
        assert services.rule_versions(grading_dept.id) == []


def test_saving_rules_adds_an_audited_version(app, grading_dept, as_user):
    with as_user(grading_dept.head) as head:
        rules, changed = services.save_rules(head, head.department, {
            "min_amount": "50000", "min_count": "", "min_tenure_months": "6", "escalate_open_complaints": None})
        db.session.commit()
        assert changed and rules.version == 1
        assert services.department_rules(grading_dept.id) == R.Rules(
            min_amount=Decimal("50000.00"), min_count=None, min_tenure_months=6,
            escalate_open_complaints=None, version=1)
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "grading.rules.changed")).scalar_one()
        assert entry.actor == "g_head" and entry.target_id == str(grading_dept.id)
        details = entry.details_dict
        assert details["version"] == 1 and details["min_amount"] == "50000.00" and details["min_count"] is None
        assert details["fields"] == ["min_amount", "min_count", "min_tenure_months", "escalate_open_complaints"]
        # the same thresholds again: no new version, no audit entry
        again, changed = services.save_rules(head, head.department, {
            "min_amount": "50000.00", "min_count": None, "min_tenure_months": 6, "escalate_open_complaints": ""})
        assert not changed and again.version == 1
        rules, changed = services.save_rules(head, head.department, {
            "min_amount": "50000", "min_count": "20", "min_tenure_months": "6", "escalate_open_complaints": ""})
        db.session.commit()
        assert changed and rules.version == 2
        assert [v.version for v in services.rule_versions(grading_dept.id)] == [2, 1]
        last = db.session.execute(select(AuditEntry).where(AuditEntry.action == "grading.rules.changed")
                                  .order_by(AuditEntry.id.desc())).scalars().first()
        assert last.details_dict["fields"] == ["min_count"]


@pytest.mark.parametrize("data, field", [
    ({"min_amount": "", "min_count": ""}, "min_amount"),
    ({"min_amount": "abc"}, "min_amount"),
    ({"min_amount": "NaN"}, "min_amount"),
    ({"min_amount": "-5"}, "min_amount"),
    ({"min_count": "1.5", "min_amount": ""}, "min_count"),
    ({"min_tenure_months": "9999"}, "min_tenure_months"),
    ({"escalate_open_complaints": "0"}, "escalate_open_complaints"),
])
def test_bad_thresholds_are_refused(app, grading_dept, as_user, data, field):
    base = {"min_amount": "1000", "min_count": "", "min_tenure_months": "0", "escalate_open_complaints": ""}
    with as_user(grading_dept.head) as head:
        with pytest.raises(services.GradingError) as caught:
            services.save_rules(head, head.department, {**base, **data})
        assert caught.value.field == field
        assert services.rule_versions(grading_dept.id) == []


def test_a_head_configures_only_their_own_department(app, grading_dept, make_user, as_user, department):
    other = department("D2")
    with as_user(grading_dept.head) as head:
        with pytest.raises(services.GradingError):
            services.save_rules(head, other, {"min_amount": "1", "min_tenure_months": "0"})


# --- the rules page ---------------------------------------------------------------------------------

def test_rules_page_explains_the_rule_and_shows_the_form_to_the_head(client, login_as, grading_dept):
    login_as(client, "g_head")
    html = client.get("/grading/rules").get_data(as_text=True)
    assert 'id="grading-explanation"' in html and 'id="grading-rule-sentence"' in html
    assert 'id="grading-rules-form"' in html
    assert 'value="100000.00"' in html  # the defaults fill the form
    assert 'id="grading-complaints-inactive"' in html  # no complaints module counts here


def test_head_saves_rules_through_the_page(client, login_as, grading_dept, app):
    login_as(client, "g_head")
    response = client.post("/grading/rules", data={"min_amount": "20000", "min_count": "4",
                                                   "min_tenure_months": "1", "escalate_open_complaints": "2"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/grading/rules")
    with app.app_context():
        rules = services.department_rules(grading_dept.id)
    assert (rules.version, rules.min_amount, rules.min_count, rules.min_tenure_months,
            rules.escalate_open_complaints) == (1, Decimal("20000.00"), 4, 1, 2)
    html = client.get("/grading/rules").get_data(as_text=True)
    assert 'id="grading-versions"' in html and "¥20,000.00" in html


def test_rules_page_refuses_bad_input_with_the_error_by_the_field(client, login_as, grading_dept, app):
    login_as(client, "g_head")
    response = client.post("/grading/rules", data={"min_amount": "", "min_count": "",
                                                   "min_tenure_months": "0", "escalate_open_complaints": ""})
    assert response.status_code == 400
    assert 'id="min_amount-error"' in response.get_data(as_text=True)
    response = client.post("/grading/rules", data={"min_amount": "-1", "min_tenure_months": "x"})
    assert response.status_code == 400
    with app.app_context():
        assert services.rule_versions(grading_dept.id) == []


def test_sales_sees_the_rules_but_cannot_configure_them(client, login_as, grading_dept, app):
    login_as(client, "g_sales")
    html = client.get("/grading/rules").get_data(as_text=True)
    assert 'id="grading-explanation"' in html and 'id="grading-rules-form"' not in html
    response = client.post("/grading/rules", data={"min_amount": "1", "min_tenure_months": "0"})
    assert response.status_code == 403
    with app.app_context():
        assert services.rule_versions(grading_dept.id) == []
        denied = db.session.execute(select(AuditEntry).where(AuditEntry.action == "core.access.denied")
                                    .order_by(AuditEntry.id.desc())).scalars().first()
        assert denied.details_dict["permission"] == "grading.configure"
