"""Grading on the customer register's own pages: the list's column, sort and filter, and the
customer page's panel and timeline, with grading enabled and disabled for the department."""
import re

from core import services as core_services
from core.db import db
from core.models import Department, User
from modules.customers import Customer
from modules.grading import services


def _recompute(app, dept_id):
    with app.test_request_context():
        services.recompute("cli:test", db.session.get(Department, dept_id))
        db.session.commit()


def _numbers(app, *ids):
    with app.app_context():
        return {i: db.session.get(Customer, i).number for i in ids}


def _rows(html):
    return [int(i) for i in re.findall(r'<tr id="customer-(\d+)">', html)]


def _disable(app, dept_id):
    with app.app_context():
        core_services.disable_module("test", "grading", db.session.get(Department, dept_id))
        db.session.commit()


def test_customer_list_filters_and_sorts_by_grade(client, login_as, grading_dept, make_customer, app):
    important = make_customer(grading_dept.sales, transactions=[(150000, 5)])
    ordinary = make_customer(grading_dept.sales)
    _recompute(app, grading_dept.id)
    ungraded = make_customer(grading_dept.sales)
    login_as(client, "g_head")

    html = client.get("/customers/").get_data(as_text=True)
    assert 'id="filter-grading"' in html and "sort=grading" in html
    assert set(_rows(html)) == {important, ordinary, ungraded}
    assert _rows(client.get("/customers/?grading=important").get_data(as_text=True)) == [important]
    assert _rows(client.get("/customers/?grading=ordinary").get_data(as_text=True)) == [ordinary]
    assert _rows(client.get("/customers/?grading=none").get_data(as_text=True)) == [ungraded]
    assert _rows(client.get("/customers/?sort=grading&dir=desc").get_data(as_text=True)) == [
        important, ordinary, ungraded]
    assert _rows(client.get("/customers/?sort=grading&dir=asc").get_data(as_text=True)) == [
        ungraded, ordinary, important]
    row = client.get("/customers/?grading=important").get_data(as_text=True).split(f'id="customer-{important}"')[1]
    assert re.search(r"<td[^>]*>重要</td>", row.split("</tr>")[0])


def test_customer_list_without_grading(client, login_as, grading_dept, make_customer, app):
    important = make_customer(grading_dept.sales, transactions=[(150000, 5)])
    ordinary = make_customer(grading_dept.sales)
    _recompute(app, grading_dept.id)
    _disable(app, grading_dept.id)
    login_as(client, "g_head")
    response = client.get("/customers/?grading=important&sort=grading")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="filter-grading"' not in html and "sort=grading" not in html
    assert set(_rows(html)) == {important, ordinary}  # the parameter is ignored, not an error


def test_customer_page_shows_the_grade_panel_and_timeline(client, login_as, grading_dept, make_customer, app):
    customer = make_customer(grading_dept.sales, transactions=[(150000, 5)])
    _recompute(app, grading_dept.id)
    login_as(client, "g_head")
    html = client.get(f"/customers/{customer}").get_data(as_text=True)
    assert 'id="grading-panel"' in html and 'data-grade="important"' in html
    assert 'id="grading-override-form"' in html and f'value="/customers/{customer}"' in html
    assert "timeline-grading" in html

    # overriding from the customer page comes back to it
    response = client.post(f"/grading/customers/{customer}/override",
                           data={"grading-grade": "ordinary", "grading-reason": "客户要求降级",
                                 "grading-next": f"/customers/{customer}"})
    assert response.status_code == 302 and response.headers["Location"] == f"/customers/{customer}"
    html = client.get(f"/customers/{customer}").get_data(as_text=True)
    assert 'data-grade="ordinary"' in html and "客户要求降级" in html
    assert html.count("timeline-grading") == 2


def test_sales_sees_the_grade_without_the_override_form(client, login_as, grading_dept, make_customer, app):
    customer = make_customer(grading_dept.sales)
    _recompute(app, grading_dept.id)
    login_as(client, "g_sales")
    html = client.get(f"/customers/{customer}").get_data(as_text=True)
    assert 'id="grading-panel"' in html and 'id="grading-override-form"' not in html


def test_customer_page_works_with_grading_disabled(client, login_as, grading_dept, make_customer, app):
    customer = make_customer(grading_dept.sales, transactions=[(150000, 5)])
    _recompute(app, grading_dept.id)
    _disable(app, grading_dept.id)
    login_as(client, "g_head")
    response = client.get(f"/customers/{customer}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="grading-panel"' not in html and "timeline-grading" not in html
    assert _numbers(app, customer)[customer] in html


def test_customer_page_of_a_department_that_never_enabled_grading(client, login_as, make_customer, make_user,
                                                                  app):
    sales = make_user("plain_sales", "sales", "D9")
    customer = make_customer(sales)
    login_as(client, "plain_sales")
    response = client.get(f"/customers/{customer}")
    assert response.status_code == 200
    assert 'id="grading-panel"' not in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, sales).department_id is not None
