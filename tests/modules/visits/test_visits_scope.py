"""Record rule and enablement: a visit outside the user's remit answers 404 on every route that
takes an id (the refusal audited, nothing changed); a department that has not enabled the module
sees no menu, no timeline entry and gets 404 everywhere."""
from sqlalchemy import MetaData, select

from core.db import db


def id_routes(app):
    """(method, rule) of every visits route with an id in its URL."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("visits.") and rule.arguments & {"visit_id", "customer_id"}:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, rule


def build(app, rule, visit_id, customer_id):
    values = {k: v for k, v in {"visit_id": visit_id, "customer_id": customer_id}.items() if k in rule.arguments}
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def snapshot(app):
    with app.app_context():
        meta = MetaData()
        meta.reflect(bind=db.engine)
        out = {}
        for name in ("visits_visit", "customers_customer"):
            table = meta.tables[name]
            out[name] = [tuple(r) for r in db.session.execute(select(table).order_by(*table.primary_key.columns))]
        db.session.rollback()
        return out


FORM = {"visited_on": "2026-01-05", "channel": "phone", "purpose": "越权", "notes": "越权", "version": "1"}


def test_foreign_sales_and_a_foreign_head_get_404_on_every_route_with_an_id(vw):
    visit_id = vw.visit(vw.c1, notes="甲部门的记录", next_contact_on=None)
    routes = list(id_routes(vw.app))
    assert {r.endpoint for _m, r in routes} >= {"visits.detail", "visits.edit", "visits.delete", "visits.report",
                                                 "visits.customer", "visits.new"}
    before = snapshot(vw.app)
    for username in ("sales2", "head2", "sales1b"):  # sales1b: same department, not their customer
        client = vw.client(username)
        denied_before = len(vw.audit("core.access.row_denied"))
        for method, rule in routes:
            url = build(vw.app, rule, visit_id, vw.c1)
            response = client.open(url, method=method, data=FORM if method == "POST" else None)
            assert response.status_code == 404, (username, method, url, response.status_code)
            assert "甲部门的记录" not in response.get_data(as_text=True)
        denied = vw.audit("core.access.row_denied")[denied_before:]
        assert len(denied) == len(routes)
        assert {e.actor for e in denied} == {username}
        assert all(e.details_dict["exists"] is True for e in denied)
    assert snapshot(vw.app) == before
    assert [e.action for e in vw.audit("visits.")] == ["visits.visit.created"]


def test_a_visit_that_does_not_exist_answers_the_same_404(vw):
    client = vw.client("sales1")
    assert client.get("/visits/999").status_code == 404
    assert vw.audit("core.access.row_denied")[-1].details_dict["exists"] is False


def test_admin_and_security_see_no_visits(vw, app, make_user):
    from modules.visits.models import Visit
    from modules.visits.services import visit_rule
    vw.visit(vw.c1)
    make_user("root", "admin", None)
    make_user("auditor", "security", "D1")
    with app.test_request_context():
        from core.api import scoped
        from core.models import User
        for name in ("root", "auditor", "head1", "sales1", "sales2"):
            user = db.session.query(User).filter_by(username=name).one()
            visible = db.session.scalars(scoped(select(Visit), user)).all()
            assert len(visible) == (1 if name in ("head1", "sales1") else 0), name
            assert db.session.scalar(select(db.func.count()).select_from(Visit).where(visit_rule(user))) == len(visible)


def test_disabled_for_the_department_404_and_no_menu_or_timeline(vw, make_customer, enable_module, app):
    c3 = make_customer("sales3", dept="D3", name="丙客户")
    visit_id = vw.visit(c3, actor="sales3", purpose="丙部门的拜访")
    client = vw.client("sales3")
    home = client.get("/").get_data(as_text=True)
    assert 'id="menu-visits-index"' not in home and 'id="menu-visits-due"' not in home
    for path in ("/visits/", "/visits/due", f"/visits/{visit_id}", f"/visits/{visit_id}/report.pdf",
                 f"/visits/customers/{c3}", f"/visits/customers/{c3}/new"):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/visits/{visit_id}/delete").status_code == 404
    assert client.post(f"/visits/customers/{c3}/new", data=FORM).status_code == 404
    page = client.get(f"/customers/{c3}").get_data(as_text=True)
    assert "丙部门的拜访" not in page and 'id="visits-panel"' not in page and "timeline-visits" not in page
    assert vw.get_visit(visit_id) is not None  # disabling hides, never deletes
    # enabled again: everything is back
    enable_module("D3", "visits")
    page = client.get(f"/customers/{c3}").get_data(as_text=True)
    assert "丙部门的拜访" in page and 'id="visits-panel"' in page
