"""Computing the grades of a department: the rules in force, the history, the summary, the
complaints hook, and efficiency over hundreds of customers."""
import time

from sqlalchemy import event, select

from core import hooks
from core.audit import AuditEntry
from core.db import db
from core.models import Department
from modules.grading import services
from modules.grading.models import Grade, History


def _recompute(app, actor="cli:test", dept_id=None, **kwargs):
    with app.test_request_context():
        department = db.session.get(Department, dept_id)
        summary = services.recompute(actor, department, **kwargs)
        db.session.commit()
        return summary


def _grades(app, *ids):
    with app.app_context():
        return [(db.session.get(Grade, i).grade if db.session.get(Grade, i) else None) for i in ids]


def test_default_rules_grade_a_department(app, grading_dept, make_customer):
    big = make_customer(grading_dept.sales, transactions=[(60000, 10), (45000, 200)])
    frequent = make_customer(grading_dept.sales, transactions=[(100, d) for d in range(5, 365, 30)])  # 12
    small = make_customer(grading_dept.sales, transactions=[(5000, 10)])
    new = make_customer(grading_dept.sales, months=1, transactions=[(500000, 5)])
    old_money = make_customer(grading_dept.sales, transactions=[(500000, 400)])  # outside 12 months
    services_only = make_customer(grading_dept.sales, transactions=[(500000, 5)], kind="service")
    summary = _recompute(app, dept_id=grading_dept.id)
    assert (summary.graded, summary.changed, summary.overridden_kept) == (6, 6, 0)
    assert _grades(app, big, frequent, small, new, old_money, services_only) == [
        "important", "important", "ordinary", "ordinary", "ordinary", "ordinary"]
    with app.app_context():
        basis = db.session.get(Grade, big).basis_dict
        assert basis["amount"] == "105000.00" and basis["count"] == 2 and basis["tenure_months"] == 24
        assert basis["value_met"] and basis["tenure_met"] and basis["open_complaints"] is None
        assert db.session.get(Grade, new).basis_dict["tenure_met"] is False


def test_tenure_runs_from_the_first_record(app, grading_dept, make_customer):
    """A customer registered today with two years of history (an import) is not new; one whose
    first purchase is today is, however big it is."""
    from datetime import timedelta

    from core.models import utcnow
    imported = make_customer(grading_dept.sales, months=0, transactions=[(150000, 10), (20, 700)])
    newcomer = make_customer(grading_dept.sales, months=0, transactions=[(150000, 10)])
    _recompute(app, dept_id=grading_dept.id)
    assert _grades(app, imported, newcomer) == ["important", "ordinary"]
    with app.app_context():
        basis = db.session.get(Grade, imported).basis_dict
        assert basis["tenure_months"] == 22 or basis["tenure_months"] == 23
        assert basis["since"] == (utcnow() - timedelta(days=700)).date().isoformat()
        assert basis["count"] == 1  # the old record counts for tenure, not for the value
        assert db.session.get(Grade, newcomer).basis_dict["tenure_months"] == 0


def test_only_the_departments_customers_are_graded(app, grading_dept, make_customer, make_user, enable_module):
    other_sales = make_user("d2_sales", "sales", "D2")
    enable_module("D2", "grading")
    mine = make_customer(grading_dept.sales)
    theirs = make_customer(other_sales)
    _recompute(app, dept_id=grading_dept.id)
    assert _grades(app, mine, theirs) == ["ordinary", None]


def test_configured_rules_apply_at_the_next_recomputation(app, grading_dept, make_customer, as_user):
    customer = make_customer(grading_dept.sales, months=2, transactions=[(8000, 20)])
    _recompute(app, dept_id=grading_dept.id)
    assert _grades(app, customer) == ["ordinary"]
    with as_user(grading_dept.head) as head:
        services.save_rules(head, head.department, {"min_amount": "5000", "min_count": "",
                                                    "min_tenure_months": "1", "escalate_open_complaints": ""})
        db.session.commit()
    assert _grades(app, customer) == ["ordinary"]  # saving rules changes no grade by itself
    summary = _recompute(app, dept_id=grading_dept.id)
    assert (summary.graded, summary.changed) == (1, 1)
    assert _grades(app, customer) == ["important"]
    with app.app_context():
        entries = db.session.execute(select(History).where(History.customer_id == customer)
                                     .order_by(History.id)).scalars().all()
        assert [(h.from_grade, h.to_grade, h.source, h.rule_version, h.user_id) for h in entries] == [
            (None, "ordinary", "rules", 0, None), ("ordinary", "important", "rules", 1, None)]
        assert db.session.get(Grade, customer).rule_version == 1


def test_an_unchanged_grade_adds_no_history(app, grading_dept, make_customer):
    customer = make_customer(grading_dept.sales)
    _recompute(app, dept_id=grading_dept.id)
    summary = _recompute(app, dept_id=grading_dept.id)
    assert (summary.graded, summary.changed) == (1, 0)
    with app.app_context():
        assert len(services.history(customer)) == 1


def test_recomputation_is_audited_once_with_its_counts(app, grading_dept, make_customer):
    for _ in range(3):
        make_customer(grading_dept.sales)
    _recompute(app, dept_id=grading_dept.id)
    with app.app_context():
        entries = db.session.execute(select(AuditEntry).where(AuditEntry.action == "grading.grades.recomputed")
                                     ).scalars().all()
        assert len(entries) == 1
        assert entries[0].actor == "cli:test"
        details = entries[0].details_dict
        assert (details["graded"], details["changed"], details["overridden_kept"], details["department"],
                details["rule_version"]) == (3, 3, 0, "D1", 0)


def test_open_complaints_escalate_through_the_hook(app, grading_dept, make_customer):
    calm = make_customer(grading_dept.sales)
    angry = make_customer(grading_dept.sales)
    calls = []

    def open_counts(customer_ids):
        calls.append(list(customer_ids))
        return {angry: 3}

    # a stand-in for the complaints module: contributed by an always-enabled module
    hooks.add(app, "complaints.open_counts", "customers", open_counts)
    _recompute(app, dept_id=grading_dept.id)
    assert calls == [[calm, angry]]  # one call for the batch, not one per customer
    assert _grades(app, calm, angry) == ["ordinary", "important"]
    with app.app_context():
        assert db.session.get(Grade, angry).basis_dict["escalated"] is True
        assert db.session.get(Grade, calm).basis_dict["open_complaints"] == 0


def test_a_contribution_of_a_module_disabled_for_the_department_is_ignored(app, grading_dept, make_customer):
    angry = make_customer(grading_dept.sales)
    hooks.add(app, "complaints.open_counts", "notices", lambda ids: {angry: 10})  # notices: not enabled in D1
    _recompute(app, dept_id=grading_dept.id)
    assert _grades(app, angry) == ["ordinary"]
    with app.app_context():
        assert db.session.get(Grade, angry).basis_dict["open_complaints"] is None


def test_three_hundred_customers_quickly_with_few_queries(app, grading_dept, make_customer, make_user):
    other = make_user("g_sales2", "sales", "D1")
    ids = [make_customer(grading_dept.sales if i % 2 else other, months=i % 30,
                         transactions=[(1000 * (i % 150), 10)] * (1 + i % 3)) for i in range(300)]
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", count)
    try:
        progress = []
        started = time.perf_counter()
        summary = _recompute(app, dept_id=grading_dept.id, progress=progress.append, batch=200)
        elapsed = time.perf_counter() - started
    finally:
        with app.app_context():
            event.remove(db.engine, "before_cursor_execute", count)
    assert (summary.graded, summary.changed) == (300, 300)
    assert progress == [200, 100]
    aggregates = [s for s in statements if "customers_transaction" in s]
    assert len(aggregates) == 4  # two aggregate queries per batch, never one per customer
    assert len(statements) < 40, statements
    assert elapsed < 10
    graded = _grades(app, *ids)
    assert set(graded) == {"important", "ordinary"}
    # a second run changes nothing and writes no history
    summary = _recompute(app, dept_id=grading_dept.id)
    assert (summary.graded, summary.changed) == (300, 0)


def test_recompute_button_for_heads_only(client, login_as, grading_dept, make_customer, app):
    customer = make_customer(grading_dept.sales, transactions=[(200000, 3)])
    login_as(client, "g_sales")
    assert client.post("/grading/recompute").status_code == 403
    assert _grades(app, customer) == [None]
    assert 'action="/grading/recompute"' not in client.get("/grading/").get_data(as_text=True)
    client.post("/logout")
    login_as(client, "g_head")
    assert 'action="/grading/recompute"' in client.get("/grading/").get_data(as_text=True)
    response = client.post("/grading/recompute", follow_redirects=True)
    assert response.status_code == 200
    assert _grades(app, customer) == ["important"]
    with app.app_context():
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "grading.grades.recomputed")
                                   ).scalar_one()
        assert entry.actor == "g_head"
