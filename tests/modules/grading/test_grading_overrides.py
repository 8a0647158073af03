"""A head overrides a grade with a reason: audited, kept by recomputation until removed."""
import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.db import db
from core.models import Department
from modules.grading import services
from modules.grading.models import Grade, History


def _recompute(app, dept_id):
    with app.test_request_context():
        summary = services.recompute("cli:test", db.session.get(Department, dept_id))
        db.session.commit()
        return summary


def _row(app, customer_id):
    with app.app_context():
        row = db.session.get(Grade, customer_id)
        if row is not None:
            db.session.expunge(row)
        return row


def _audit(app, action):
    with app.app_context():
        return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                  .order_by(AuditEntry.id)).scalars().all()


def test_override_survives_recomputation_until_removed(client, login_as, grading_dept, make_customer, app):
    customer = make_customer(grading_dept.sales, transactions=[(1000, 5)])
    _recompute(app, grading_dept.id)
    assert _row(app, customer).grade == "ordinary"

    login_as(client, "g_head")
    response = client.post(f"/grading/customers/{customer}/override",
                           data={"grading-grade": "important", "grading-reason": "  战略合作伙伴，\n年度框架协议  ",
                                 "grading-next": f"/grading/customers/{customer}"})
    assert response.status_code == 302 and response.headers["Location"] == f"/grading/customers/{customer}"
    row = _row(app, customer)
    assert (row.grade, row.computed, row.override, row.override_reason) == (
        "important", "ordinary", "important", "战略合作伙伴， 年度框架协议")
    [entry] = _audit(app, "grading.grade.overridden")
    assert (entry.actor, entry.target_type, entry.target_id) == ("g_head", "customers_customer", str(customer))
    assert entry.details_dict == {"grade": "important", "previous": "ordinary", "reason": "战略合作伙伴， 年度框架协议"}

    summary = _recompute(app, grading_dept.id)
    assert (summary.graded, summary.changed, summary.overridden_kept) == (1, 0, 1)
    row = _row(app, customer)
    assert (row.grade, row.computed, row.override) == ("important", "ordinary", "important")

    response = client.post(f"/grading/customers/{customer}/override/remove", data={})
    assert response.status_code == 302 and response.headers["Location"] == f"/grading/customers/{customer}"
    row = _row(app, customer)
    assert (row.grade, row.override, row.override_reason, row.override_by) == ("ordinary", None, None, None)
    [removed] = _audit(app, "grading.grade.override_removed")
    assert removed.actor == "g_head" and removed.details_dict == {"grade": "ordinary", "previous": "important"}

    with app.app_context():
        entries = db.session.execute(select(History).where(History.customer_id == customer)
                                     .order_by(History.id)).scalars().all()
        assert [(h.from_grade, h.to_grade, h.source, h.user_id) for h in entries] == [
            (None, "ordinary", "rules", None),
            ("ordinary", "important", "override", grading_dept.head),
            ("important", "ordinary", "override_removed", grading_dept.head)]
        assert entries[1].reason == "战略合作伙伴， 年度框架协议"

    # removed means removed: the rules decide again
    summary = _recompute(app, grading_dept.id)
    assert (summary.changed, summary.overridden_kept) == (0, 0)


def test_removing_an_override_recomputes_with_current_rules(app, grading_dept, make_customer, as_user):
    customer = make_customer(grading_dept.sales, transactions=[(3000, 5)])
    with as_user(grading_dept.head) as head:
        from modules.customers import get_customer
        target = get_customer(customer, head)
        services.set_override(head, target, "ordinary", "观察期")  # never graded before
        db.session.commit()
        row = db.session.get(Grade, customer)
        assert (row.grade, row.computed, row.override) == ("ordinary", "ordinary", "ordinary")
        services.save_rules(head, head.department, {"min_amount": "1000", "min_tenure_months": "0"})
        services.remove_override(head, target)
        db.session.commit()
        row = db.session.get(Grade, customer)
        assert (row.grade, row.computed, row.rule_version, row.override) == ("important", "important", 1, None)
        with pytest.raises(services.GradingError):
            services.remove_override(head, target)


def test_an_override_needs_a_reason_and_a_grade(client, login_as, grading_dept, make_customer, app):
    customer = make_customer(grading_dept.sales)
    login_as(client, "g_head")
    response = client.post(f"/grading/customers/{customer}/override",
                           data={"grading-grade": "important", "grading-reason": "   "})
    assert response.status_code == 400
    assert 'id="grading-reason-error"' in response.get_data(as_text=True)
    response = client.post(f"/grading/customers/{customer}/override",
                           data={"grading-grade": "vip", "grading-reason": "理由"})
    assert response.status_code == 400
    response = client.post(f"/grading/customers/{customer}/override",
                           data={"grading-grade": "important", "grading-reason": "长" * 501})
    assert response.status_code == 400
    assert _row(app, customer) is None and _audit(app, "grading.grade.overridden") == []


def test_sales_cannot_override(client, login_as, grading_dept, make_customer, app):
    customer = make_customer(grading_dept.sales)
    login_as(client, "g_sales")
    html = client.get(f"/grading/customers/{customer}").get_data(as_text=True)
    assert 'id="grading-panel"' in html and 'id="grading-override-form"' not in html
    response = client.post(f"/grading/customers/{customer}/override",
                           data={"grading-grade": "important", "grading-reason": "我想要"})
    assert response.status_code == 403
    assert client.post(f"/grading/customers/{customer}/override/remove").status_code == 403
    assert _row(app, customer) is None


def test_a_head_cannot_override_another_departments_customer(client, login_as, grading_dept, make_customer,
                                                              make_user, enable_module, app):
    other_sales = make_user("d2_sales", "sales", "D2")
    enable_module("D2", "grading")
    theirs = make_customer(other_sales)
    login_as(client, "g_head")
    response = client.post(f"/grading/customers/{theirs}/override",
                           data={"grading-grade": "important", "grading-reason": "越权"})
    assert response.status_code == 404
    assert client.get(f"/grading/customers/{theirs}").status_code == 404
    assert _row(app, theirs) is None


@pytest.mark.parametrize("target", ["//evil.example/", "/\t/evil.example", "https://evil.example/", "/\\evil"])
def test_an_unsafe_next_is_ignored(client, login_as, grading_dept, make_customer, target):
    customer = make_customer(grading_dept.sales)
    login_as(client, "g_head")
    response = client.post(f"/grading/customers/{customer}/override",
                           data={"grading-grade": "important", "grading-reason": "理由", "grading-next": target})
    assert response.headers["Location"] == f"/grading/customers/{customer}"
    response = client.post(f"/grading/customers/{customer}/override/remove", data={"next": target})
    assert response.headers["Location"] == f"/grading/customers/{customer}"
