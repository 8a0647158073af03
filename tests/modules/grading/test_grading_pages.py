"""What grading shows: the distribution chart and its JSON, the customer panel, the timeline, the
customer list column and filter (through the customers hooks), grade_of, and enablement."""
import re

from sqlalchemy import select

from core import hooks
from core.db import db
from core.models import Department, User
from modules.customers import Customer, scoped_customers
from modules.grading import services


def _recompute(app, dept_id):
    with app.test_request_context():
        services.recompute("cli:test", db.session.get(Department, dept_id))
        db.session.commit()


def _override(app, head_id, customer_id, grade, reason="理由"):
    with app.test_request_context():
        head = db.session.get(User, head_id)
        services.set_override(head, db.session.get(Customer, customer_id), grade, reason)
        db.session.commit()


def _mixed_department(app, grading_dept, make_customer):
    important = [make_customer(grading_dept.sales, transactions=[(150000, 5)]) for _ in range(3)]
    ordinary = [make_customer(grading_dept.sales) for _ in range(5)]
    _recompute(app, grading_dept.id)
    _override(app, grading_dept.head, ordinary[0], "important")
    ungraded = make_customer(grading_dept.sales)
    return important + [ordinary[0]], ordinary[1:], ungraded


# --- the chart -----------------------------------------------------------------------------------------

def test_chart_data(client, login_as, grading_dept, make_customer, app):
    _mixed_department(app, grading_dept, make_customer)
    login_as(client, "g_sales")  # staff see the department's distribution too
    data = client.get("/grading/chart.json").get_json()
    assert data["department"]["code"] == "D1"
    assert (data["total"], data["graded"], data["rule_version"]) == (9, 8, 0)
    assert data["rules"] == {"min_amount": "100000.00", "min_count": 12, "min_tenure_months": 3,
                             "escalate_open_complaints": 3}
    assert [(b["grade"], b["count"], b["overridden"], b["percent"]) for b in data["bars"]] == [
        ("important", 4, 1, 44.4), ("ordinary", 4, 0, 44.4), ("none", 1, 0, 11.1)]
    assert data["last_computed_at"] is not None


def test_chart_of_an_empty_department(client, login_as, grading_dept):
    login_as(client, "g_head")
    data = client.get("/grading/chart.json").get_json()
    assert data["total"] == 0 and [b["count"] for b in data["bars"]] == [0, 0, 0]
    assert data["last_computed_at"] is None
    html = client.get("/grading/").get_data(as_text=True)
    assert 'id="grading-chart"' in html


def test_distribution_page_draws_server_side_bars(client, login_as, grading_dept, make_customer, app):
    _mixed_department(app, grading_dept, make_customer)
    login_as(client, "g_head")
    response = client.get("/grading/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<svg id="grading-chart"' in html
    assert 'data-grade="important" data-count="4"' in html and 'data-grade="none" data-count="1"' in html
    assert '<rect x="90" y="10" width="400.0"' in html  # the longest bar is full width
    assert "<script" not in html.split("<main", 1)[1].split("</main>", 1)[0]  # no chart library
    assert 'id="grading-rule-sentence"' in html and "¥100,000.00" in html
    assert 'id="grading-distribution"' in html


def test_the_chart_is_per_department(client, login_as, grading_dept, make_customer, make_user, enable_module,
                                     app):
    _mixed_department(app, grading_dept, make_customer)
    make_user("d2_head", "head", "D2")
    enable_module("D2", "grading")
    login_as(client, "d2_head")
    data = client.get("/grading/chart.json").get_json()
    assert data["department"]["code"] == "D2" and data["total"] == 0


# --- the customer page: panel and timeline ---------------------------------------------------------------

def test_panel_for_staff_with_override_form_for_heads(app, grading_dept, make_customer):
    customer_id = make_customer(grading_dept.sales, transactions=[(150000, 5)])
    _recompute(app, grading_dept.id)
    with app.test_request_context(f"/customers/{customer_id}"):
        customer = db.session.get(Customer, customer_id)
        for user_id, can_override in ((grading_dept.head, True), (grading_dept.sales, False)):
            actor = db.session.get(User, user_id)
            results = hooks.call("customers.panels", customer, actor, department_id=grading_dept.id)
            [(module, [panel])] = [(m, r) for m, r in results if m == "grading"]
            assert panel.module == "grading" and panel.template == "grading/panel.html"
            context = panel.context["grading"]
            assert context["row"].grade == "important" and context["can_override"] is can_override
            assert (context["form"] is not None) is can_override
            # rendered the way the customer page includes it
            html = app.jinja_env.from_string("{% include panel.template %}").render(
                panel=panel, customer=customer, context=panel.context, actor=actor)
            assert 'data-grade="important"' in html and 'id="grading-basis"' in html
            assert ('id="grading-override-form"' in html) is can_override
            assert f'value="/customers/{customer_id}"' in html or not can_override


def test_no_panel_without_the_view_permission(app, grading_dept, make_customer, make_user):
    customer_id = make_customer(grading_dept.sales)
    auditor = make_user("g_security", "security", "D1")  # holds no grading permission
    with app.test_request_context():
        actor = db.session.get(User, auditor)
        customer = db.session.get(Customer, customer_id)
        results = dict(hooks.call("customers.panels", customer, actor, department_id=grading_dept.id))
        assert results.get("grading") == []


def test_timeline_events_for_grade_changes(app, grading_dept, make_customer):
    customer_id = make_customer(grading_dept.sales)
    _recompute(app, grading_dept.id)
    _override(app, grading_dept.head, customer_id, "important", "重点跟进")
    with app.test_request_context():
        customer = db.session.get(Customer, customer_id)
        sales = db.session.get(User, grading_dept.sales)
        results = dict(hooks.call("customers.timeline", customer, sales, department_id=grading_dept.id))
        events = results["grading"]
        assert [e.module for e in events] == ["grading", "grading"]
        assert [e.extra["source"] for e in events] == ["override", "rules"]  # newest first
        assert [(e.extra["from"], e.extra["to"]) for e in events] == [("ordinary", "important"),
                                                                      (None, "ordinary")]
        assert "重点跟进" in events[0].detail and events[0].at >= events[1].at
        # a role without grading.view sees no grade changes on the timeline
        from core import services as core_services
        officer = core_services.create_user("test", "sec_g", "Correct-horse-42", "security")
        assert dict(hooks.call("customers.timeline", customer, officer, department_id=grading_dept.id))["grading"] == []


def test_the_modules_own_customer_page(client, login_as, grading_dept, make_customer, app):
    customer_id = make_customer(grading_dept.sales)
    _recompute(app, grading_dept.id)
    _override(app, grading_dept.head, customer_id, "important", "重点跟进")
    login_as(client, "g_head")
    html = client.get(f"/grading/customers/{customer_id}").get_data(as_text=True)
    assert 'id="grading-overridden"' in html and "重点跟进" in html
    assert 'id="grading-history"' in html and html.count('data-source="') == 2
    assert 'id="grading-remove-override-form"' in html
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


# --- the customer list: column and filter ----------------------------------------------------------------

def _list_hooks(app, actor, hook):
    return dict(hooks.call(hook, actor, department_id=actor.department_id))["grading"]


def test_list_filter_through_the_hook(app, grading_dept, make_customer):
    important, ordinary, ungraded = _mixed_department(app, grading_dept, make_customer)
    with app.test_request_context():
        head = db.session.get(User, grading_dept.head)
        [grade_filter] = _list_hooks(app, head, "customers.list_filters")
        assert grade_filter.param == "grading"
        assert [value for value, _label in grade_filter.choices] == ["important", "ordinary", "none"]

        def ids(value):
            stmt = grade_filter.apply(scoped_customers(head), value)
            return sorted(db.session.execute(stmt.with_only_columns(Customer.id)).scalars())

        assert ids("important") == sorted(important)
        assert ids("ordinary") == sorted(ordinary)
        assert ids("none") == [ungraded]
        assert len(ids("bogus")) == 9  # an unknown value filters nothing


def test_list_filter_keeps_the_record_rules(app, grading_dept, make_customer, make_user):
    mine = make_customer(grading_dept.sales, transactions=[(150000, 5)])
    colleague = make_user("g_sales2", "sales", "D1")
    make_customer(colleague, transactions=[(150000, 5)])
    _recompute(app, grading_dept.id)
    with app.test_request_context():
        sales = db.session.get(User, grading_dept.sales)
        [grade_filter] = _list_hooks(app, sales, "customers.list_filters")
        stmt = grade_filter.apply(scoped_customers(sales), "important")
        assert db.session.execute(stmt.with_only_columns(Customer.id)).scalars().all() == [mine]


def test_list_column_values_and_sort(app, grading_dept, make_customer):
    important, ordinary, ungraded = _mixed_department(app, grading_dept, make_customer)
    with app.test_request_context():
        head = db.session.get(User, grading_dept.head)
        [column] = _list_hooks(app, head, "customers.list_columns")
        assert column.key == "grading" and column.sort is not None
        customers = db.session.execute(scoped_customers(head)).scalars().all()
        values = column.values(customers)
        assert values[important[0]] == "重要" and values[ordinary[0]] == "一般"
        assert values[ungraded] not in ("重要", "一般", "")
        assert column.values([]) == {}
        stmt = scoped_customers(head).with_only_columns(Customer.id)
        ranked = db.session.execute(column.sort(stmt, True).order_by(Customer.id)).scalars().all()
        assert set(ranked[:4]) == set(important) and ranked[-1] == ungraded
        ranked = db.session.execute(column.sort(stmt, False).order_by(Customer.id)).scalars().all()
        assert ranked[0] == ungraded and set(ranked[-4:]) == set(important)
        assert len(ranked) == 9  # sorting joins nothing: no row duplicated or lost


# --- what other modules use ----------------------------------------------------------------------------------

def test_grade_of(app, grading_dept, make_customer):
    import modules.grading as grading
    important, ordinary, ungraded = _mixed_department(app, grading_dept, make_customer)
    with app.app_context():
        assert grading.grade_of(important[0]) == "important"
        assert grading.grade_of(ordinary[0]) == "ordinary"
        assert grading.grade_of(ungraded) is None
        assert grading.grade_of(999999) is None
        assert grading.grades_of([important[0], ordinary[0], ungraded]) == {
            important[0]: "important", ordinary[0]: "ordinary"}
        assert grading.GRADES["important"]["zh_CN"] == "重要"


# --- enabled and disabled per department ----------------------------------------------------------------------

def test_disabled_for_a_department_hides_everything_but_keeps_the_data(
        client, login_as, grading_dept, make_customer, app):
    from core import services as core_services
    customer_id = make_customer(grading_dept.sales, transactions=[(150000, 5)])
    _recompute(app, grading_dept.id)
    login_as(client, "g_head")
    assert client.get("/grading/").status_code == 200
    assert 'id="menu-grading-index"' in client.get("/").get_data(as_text=True)

    with app.app_context():
        core_services.disable_module("test", "grading", db.session.get(Department, grading_dept.id))
        db.session.commit()
    for url in ("/grading/", "/grading/chart.json", "/grading/rules", f"/grading/customers/{customer_id}"):
        assert client.get(url).status_code == 404, url
    assert client.post("/grading/recompute").status_code == 404
    assert client.post(f"/grading/customers/{customer_id}/override",
                       data={"grading-grade": "ordinary", "grading-reason": "x"}).status_code == 404
    assert 'id="menu-grading-index"' not in client.get("/").get_data(as_text=True)
    with app.test_request_context():
        head = db.session.get(User, grading_dept.head)
        customer = db.session.get(Customer, customer_id)
        for hook, args in (("customers.panels", (customer, head)), ("customers.timeline", (customer,)),
                           ("customers.list_columns", (head,)), ("customers.list_filters", (head,))):
            assert "grading" not in dict(hooks.call(hook, *args, department_id=grading_dept.id)), hook
        import modules.grading as grading
        assert grading.grade_of(customer_id) is None  # not used there: no grade for other modules
    # the customer page of the register still works
    assert client.get(f"/customers/{customer_id}").status_code == 200
    assert client.get("/customers/").status_code == 200

    with app.app_context():  # enabled again: the grades are still there
        core_services.enable_module("test", "grading", db.session.get(Department, grading_dept.id))
        db.session.commit()
        import modules.grading as grading
        assert grading.grade_of(customer_id) == "important"
    assert client.get("/grading/chart.json").get_json()["graded"] == 1


def test_a_department_that_never_enabled_grading(client, login_as, make_customer, make_user, app):
    sales = make_user("plain_sales", "sales", "D9")
    customer_id = make_customer(sales)
    login_as(client, "plain_sales")
    assert client.get("/grading/").status_code == 404
    assert client.get("/customers/").status_code == 200
    with app.test_request_context():
        actor = db.session.get(User, sales)
        customer = db.session.get(Customer, customer_id)
        assert "grading" not in dict(hooks.call("customers.panels", customer, actor,
                                                department_id=actor.department_id))
        assert db.session.execute(select(Customer.id)).scalars().all() == [customer_id]
